"""The storefront catalog: images and thumbnails, categories, search, sorting, pagination,
and the price display setting."""

import io
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from common.tests.factories import ProductFactory, StaffFactory
from inventory.images import THUMBNAIL_SIZE, image_demo
from inventory.models import Category, Product
from inventory.services import product_image_set

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)


def _png(width: int, height: int, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), "red" if mode == "RGB" else (255, 0, 0, 0)).save(out, format="PNG")
    return out.getvalue()


def _names(response) -> list[str]:
    return [p.name for p in response.context["products"]]


# --- Images ---------------------------------------------------------------------------------


def test_an_image_gets_a_thumbnail_no_larger_than_the_catalog_size():
    product = ProductFactory(sku="MUG-1")

    product_image_set(product=product, image=SimpleUploadedFile("big.png", _png(1600, 800)))

    product.refresh_from_db()
    assert product.image.name == "products/mug-1.png"
    with Image.open(product.thumbnail.path) as thumb:
        assert thumb.format == "JPEG"
        assert thumb.size == (THUMBNAIL_SIZE[0], 240)  # aspect ratio kept


def test_a_transparent_image_gets_a_white_background_thumbnail():
    product = ProductFactory()

    product_image_set(product=product, image=SimpleUploadedFile("t.png", _png(100, 100, mode="RGBA")))

    with Image.open(product.thumbnail.path) as thumb:
        assert thumb.mode == "RGB"
        assert thumb.getpixel((50, 50)) == (255, 255, 255)


def test_removing_the_image_removes_the_thumbnail_and_the_files(django_capture_on_commit_callbacks):
    product = ProductFactory()
    product_image_set(product=product, image=image_demo(label="Mug", name="mug"))
    paths = [product.image.path, product.thumbnail.path]

    with django_capture_on_commit_callbacks(execute=True):
        product_image_set(product=product, image=None)

    product.refresh_from_db()
    assert not product.image
    assert not product.thumbnail
    assert [__import__("os").path.exists(p) for p in paths] == [False, False]


def test_the_admin_upload_makes_the_thumbnail_and_refuses_a_non_image(client):
    client.force_login(StaffFactory(is_superuser=True))
    product = ProductFactory(sku="CAP-1", name="Cap")
    form = {
        "sku": "CAP-1",
        "name": "Cap",
        "description": "",
        "price": "10.00",
        "currency": "EUR",
        "tax_rate": "20",  # percent (common.admin_display.PercentRateField)
        "is_active": "on",
        "on_hand": "10",
        "image_alt": "A red cap",
    }

    refused = client.post(
        f"/admin/inventory/product/{product.pk}/change/",
        {**form, "image": SimpleUploadedFile("x.png", b"not an image")},
    )
    saved = client.post(
        f"/admin/inventory/product/{product.pk}/change/", {**form, "image": SimpleUploadedFile("x.png", _png(900, 900))}
    )

    assert refused.status_code == 200
    assert "image" in refused.context["adminform"].form.errors
    assert saved.status_code == 302
    product.refresh_from_db()
    assert product.image.name == "products/cap-1.png"
    assert product.thumbnail.name == "products/thumbs/cap-1.jpg"
    with Image.open(product.thumbnail.path) as thumb:
        assert thumb.size == THUMBNAIL_SIZE
    page = client.get(f"/admin/inventory/product/{product.pk}/change/").content.decode()
    assert '<img src="/media/products/thumbs/cap-1.jpg" alt="A red cap"' in page  # the preview


def test_catalog_shows_the_thumbnail_and_the_product_page_the_image_with_its_alt(client):
    product = ProductFactory(sku="MUG-1", name="Mug")
    product_image_set(product=product, image=image_demo(label="Mug", name="x"))
    Product.objects.filter(pk=product.pk).update(image_alt="An enamel mug")

    catalog = client.get("/").content.decode()
    page = client.get("/products/MUG-1/").content.decode()

    assert 'src="/media/products/thumbs/mug-1.jpg"' in catalog
    assert 'src="/media/products/mug-1.png" alt="An enamel mug"' in page


def test_demo_data_draws_its_own_pictures_and_shelves(settings):
    from django.core.management import call_command

    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())  # idempotent

    assert Product.objects.filter(thumbnail="").count() == 0
    assert Product.objects.filter(category=None).count() == 0
    assert Category.objects.count() == 4


# --- Search, categories, sorting, pagination -----------------------------------------------


def test_search_matches_name_description_or_sku_word_by_word(client):
    ProductFactory(sku="MUG-1", name="Enamel mug", description="For camp coffee.")
    ProductFactory(sku="TEE-2", name="Cotton tee", description="Organic cotton.")
    ProductFactory(sku="PEN-3", name="Brass pen", description="Ages well.")

    assert _names(client.get("/?q=mug")) == ["Enamel mug"]
    assert _names(client.get("/?q=organic")) == ["Cotton tee"]
    assert _names(client.get("/?q=pen-3")) == ["Brass pen"]
    assert _names(client.get("/?q=enamel+coffee")) == ["Enamel mug"]
    empty = client.get("/?q=nothing-like-this")
    assert _names(empty) == []
    assert "No products match" in empty.content.decode()


def test_category_filter_and_links(client):
    kitchen = Category.objects.create(name="Kitchen", slug="kitchen")
    Category.objects.create(name="Empty shelf", slug="empty")
    ProductFactory(name="Mug", category=kitchen)
    ProductFactory(name="Tee")

    response = client.get("/?category=kitchen")

    assert _names(response) == ["Mug"]
    assert [c.slug for c in response.context["categories"]] == ["kitchen"]  # shelves with products only
    assert _names(client.get("/?category=unknown")) == ["Mug", "Tee"]  # unknown: everything


def test_sorting_by_price_name_and_newest(client, settings):
    settings.PRICES_INCLUDE_TAX = True
    ProductFactory(name="B cheap, high VAT", price=Decimal("10.00"), tax_rate=Decimal("0.25"))  # 12.50 shown
    ProductFactory(name="A mid, no VAT", price=Decimal("12.00"), tax_rate=Decimal("0"))  # 12.00 shown
    ProductFactory(name="C dear", price=Decimal("30.00"))

    assert _names(client.get("/?sort=price")) == ["A mid, no VAT", "B cheap, high VAT", "C dear"]
    assert _names(client.get("/?sort=-price")) == ["C dear", "B cheap, high VAT", "A mid, no VAT"]
    assert _names(client.get("/?sort=newest")) == ["C dear", "A mid, no VAT", "B cheap, high VAT"]
    assert _names(client.get("/?sort=name")) == ["A mid, no VAT", "B cheap, high VAT", "C dear"]
    assert _names(client.get("/?sort=bogus")) == ["A mid, no VAT", "B cheap, high VAT", "C dear"]
    settings.PRICES_INCLUDE_TAX = False
    assert _names(client.get("/?sort=price")) == ["B cheap, high VAT", "A mid, no VAT", "C dear"]


def test_pagination_keeps_the_filters_and_clamps_the_page(client):
    kitchen = Category.objects.create(name="Kitchen", slug="kitchen")
    for n in range(14):
        ProductFactory(name=f"Mug {n:02d}", category=kitchen)
    ProductFactory(name="Mug elsewhere")

    first = client.get("/?category=kitchen&q=mug&sort=-price")
    second = client.get("/?category=kitchen&q=mug&sort=-price&page=2")
    past = client.get("/?category=kitchen&q=mug&page=99")

    assert len(first.context["products"]) == 12
    assert len(second.context["products"]) == 2
    assert 'href="?q=mug&amp;category=kitchen&amp;sort=-price&amp;page=2"' in first.content.decode()
    assert past.context["page"].number == 2


# --- Price display ---------------------------------------------------------------------------


def test_consumer_shop_shows_prices_with_vat_and_the_rate(client, settings):
    settings.PRICES_INCLUDE_TAX = True
    ProductFactory(sku="WID-1", price=Decimal("12.50"), tax_rate=Decimal("0.2000"))

    catalog = client.get("/").content.decode()
    page = client.get("/products/WID-1/").content.decode()

    assert "15.00 EUR" in catalog
    assert "12.50" not in catalog
    assert "15.00 EUR" in page
    assert "incl. 20\u00a0% VAT" in page


def test_business_shop_shows_net_prices(client, settings):
    settings.PRICES_INCLUDE_TAX = False
    ProductFactory(sku="WID-1", price=Decimal("12.50"), tax_rate=Decimal("0.2000"))

    page = client.get("/products/WID-1/").content.decode()

    assert "12.50 EUR" in page
    assert "excl. 20\u00a0% VAT" in page


def test_the_api_keeps_the_net_price_whatever_the_display(client, settings):
    settings.PRICES_INCLUDE_TAX = True
    ProductFactory(sku="WID-1", price=Decimal("12.50"))

    assert client.get("/api/v1/products/WID-1/").json()["price"] == "12.50"


# --- Serving the pictures --------------------------------------------------------------------


def test_pictures_are_served_with_debug_off(client, settings):
    settings.DEBUG = False
    product = ProductFactory(sku="MUG-1")
    product_image_set(product=product, image=image_demo(label="Mug", name="x"))

    thumb = client.get("/media/products/thumbs/mug-1.jpg")
    missing = client.get("/media/products/thumbs/nope.jpg")
    escape = client.get("/media/products/..%2F..%2Fdb.sqlite3")

    assert thumb.status_code == 200
    assert thumb["Content-Type"] == "image/jpeg"
    assert b"".join(thumb.streaming_content)[:3] == b"\xff\xd8\xff"  # a JPEG
    assert missing.status_code == 404
    assert escape.status_code in (400, 404)
