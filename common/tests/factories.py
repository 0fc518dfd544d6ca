from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from inventory.models import Product, Stock


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pass-word-123")


class StaffFactory(UserFactory):
    """A staff member: `is_staff` and in the "staff" group (its permissions)."""

    is_staff = True
    username = factory.Sequence(lambda n: f"staff{n}")

    @factory.post_generation
    def staff_group(self, create: bool, extracted: bool | None, **kwargs: object) -> None:
        if create and extracted is not False:
            from common.roles import staff_group_sync

            self.groups.add(staff_group_sync())


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        skip_postgeneration_save = True

    sku = factory.Sequence(lambda n: f"SKU-{n:04d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    description = "A fine product."
    price = Decimal("10.00")
    currency = "EUR"
    tax_rate = Decimal("0.2000")

    @factory.post_generation
    def on_hand(self, create: bool, extracted: int | None, **kwargs: object) -> None:
        if create:
            Stock.objects.create(product=self, on_hand=10 if extracted is None else extracted)
