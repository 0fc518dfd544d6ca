"""Demo data for `make run`: a catalog with stock, a shopper, a staff clerk and an admin. Idempotent."""

from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from common.roles import staff_group_sync
from inventory.images import image_demo
from inventory.models import Category, Product, Stock
from inventory.services import product_image_set

PRODUCTS = [
    ("MUG-001", "Enamel camp mug", "A chip-resistant enamel mug for coffee at the campsite.", "12.50", 40),
    ("TEE-002", "Organic cotton tee", "Heavyweight organic cotton T-shirt, unisex cut.", "24.00", 25),
    ("CAP-003", "Canvas cap", "Six-panel waxed canvas cap with a brass buckle.", "19.90", 18),
    ("BAG-004", "Canvas tote bag", "Sturdy 14 oz canvas tote with inner pocket.", "16.00", 30),
    ("NBK-005", "Dot-grid notebook", "A5 notebook, 160 pages of 100 g/m² paper.", "9.75", 60),
    ("PEN-006", "Brass pen", "Solid brass ballpoint that ages beautifully.", "34.00", 12),
    ("BTL-007", "Steel water bottle", "Insulated 750 ml bottle, cold for 24 hours.", "27.50", 20),
    ("SCK-008", "Merino socks", "Two pairs of merino wool hiking socks.", "18.00", 35),
    ("LMP-009", "Desk lamp", "Dimmable LED desk lamp with a walnut base.", "79.00", 7),
    ("PLN-010", "Ceramic planter", "Hand-glazed planter with drainage tray.", "22.00", 15),
    ("BLK-011", "Wool blanket", "Recycled wool throw, 130 × 170 cm.", "89.00", 5),
    ("KEY-012", "Leather key ring", "Vegetable-tanned leather key ring.", "8.50", 50),
]


# Shelves of the demo catalog (slug, name) and which products sit on them.
CATEGORIES = [("kitchen", "Kitchen & drink"), ("clothing", "Clothing"), ("stationery", "Stationery"), ("home", "Home")]
PRODUCT_CATEGORY = {
    "MUG-001": "kitchen",
    "BTL-007": "kitchen",
    "TEE-002": "clothing",
    "CAP-003": "clothing",
    "SCK-008": "clothing",
    "BAG-004": "clothing",
    "NBK-005": "stationery",
    "PEN-006": "stationery",
    "KEY-012": "stationery",
    "LMP-009": "home",
    "PLN-010": "home",
    "BLK-011": "home",
}


class Command(BaseCommand):
    help = "Load demo products and users (safe to run again)."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            categories = {
                slug: Category.objects.get_or_create(slug=slug, defaults={"name": name, "position": position})[0]
                for position, (slug, name) in enumerate(CATEGORIES)
            }
            for sku, name, description, price, on_hand in PRODUCTS:
                product, created = Product.objects.get_or_create(
                    sku=sku,
                    defaults={"name": name, "description": description, "price": Decimal(price), "currency": "EUR"},
                )
                if created:
                    Stock.objects.create(product=product, on_hand=on_hand)
                else:
                    Stock.objects.get_or_create(product=product, defaults={"on_hand": on_hand})
                if product.category_id is None:
                    Product.objects.filter(pk=product.pk).update(category=categories[PRODUCT_CATEGORY[sku]])
                if not product.image:  # drawn here, no download (inventory.images)
                    picture = image_demo(label=name, name=sku.lower())
                    product_image_set(product=product, image=picture)
            user_model = get_user_model()
            if not user_model.objects.filter(username="shopper").exists():
                user_model.objects.create_user("shopper", "shopper@example.com", "shopper-pass")
            if not user_model.objects.filter(username="admin").exists():
                user_model.objects.create_superuser("admin", "admin@example.com", "admin-pass")
            if not user_model.objects.filter(username="staff").exists():
                # The staff role (not a superuser): the "staff" group's permissions only.
                clerk = user_model.objects.create_user("staff", "staff@example.com", "staff-pass", is_staff=True)
                clerk.groups.add(staff_group_sync())
        self.stdout.write(
            self.style.SUCCESS(f"Demo data ready: {len(PRODUCTS)} products, users shopper, staff and admin.")
        )
