"""Product pictures with Pillow alone: the catalog thumbnail generated from an upload, and
the small pictures the demo data draws for itself (no downloads, nothing shipped)."""

import io
import zlib

from django.core.files.base import ContentFile, File
from PIL import Image, ImageDraw, ImageOps

THUMBNAIL_SIZE = (480, 480)
# The largest upload accepted (admin form); Pillow's decompression-bomb guard covers the pixels.
IMAGE_MAX_BYTES = 5 * 1024 * 1024


def image_thumbnail(*, source: File, name: str) -> ContentFile:
    """A JPEG no larger than THUMBNAIL_SIZE, upright (EXIF orientation applied), on white
    where the source was transparent. Raises PIL.UnidentifiedImageError for a non-image."""
    source.seek(0)
    with Image.open(source) as opened:
        picture = ImageOps.exif_transpose(opened)
        picture.thumbnail(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
        if picture.mode in ("RGBA", "LA", "P"):
            rgba = picture.convert("RGBA")
            flat = Image.new("RGB", rgba.size, "white")
            flat.paste(rgba, mask=rgba.getchannel("A"))
            picture = flat
        else:
            picture = picture.convert("RGB")
        out = io.BytesIO()
        picture.save(out, format="JPEG", quality=82, optimize=True, progressive=True)
    return ContentFile(out.getvalue(), name=f"{name}.jpg")


def image_demo(*, label: str, name: str, size: int = 640) -> ContentFile:
    """A square PNG in a colour derived from `label`, with a simple drawn motif and the
    label's initials: a stand-in product photo for the demo catalog."""
    hue = zlib.crc32(label.encode()) % 360
    background = _hsl(hue, 0.45, 0.86)
    ink = _hsl(hue, 0.55, 0.32)
    picture = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(picture)
    margin = size // 5
    draw.ellipse((margin, margin, size - margin, size - margin), fill=_hsl(hue, 0.5, 0.72), outline=ink, width=6)
    initials = "".join(word[0] for word in label.split()[:2]).upper()
    draw.text((size / 2, size / 2), initials, fill=ink, anchor="mm", font_size=size // 5)
    out = io.BytesIO()
    picture.save(out, format="PNG", optimize=True)
    return ContentFile(out.getvalue(), name=f"{name}.png")


def _hsl(hue: int, saturation: float, lightness: float) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hls_to_rgb(hue / 360, lightness, saturation)
    return round(r * 255), round(g * 255), round(b * 255)
