"""Upload checking and image encoding for the web side (Pillow and stylecore's reader, no TensorFlow).

Uploads are judged by their content, not their name: each one is opened and fully decoded with
Pillow, checked against the size and pixel limits, turned upright and into 8-bit RGB, and
re-encoded, so that nothing but pixels is ever stored.
"""
import io
import struct
import threading
import warnings

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from PIL import Image, ImageOps, UnidentifiedImageError

import stylecore
from stylecore.images import signature_format

ALLOWED_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "GIF": "GIF", "BMP": "BMP", "TIFF": "TIFF"}
ALLOWED_LABEL = "JPEG, PNG, WebP, GIF, BMP or TIFF"
# A strip such as 10000×10 would become a run of hundreds of thousands of columns, or of a few: the
# engine needs 16 pixels on the short side (VGG19 pools 4 times before block5_conv2), so at the
# launch form's 64 rows the long side may be at most 4 times the short one.
MAX_ASPECT_RATIO = 4
# Smaller pictures hold no shapes to keep or strokes to borrow: a run enlarges them into a blur.
MIN_SIDE = 16


# Decoding a 40-megapixel upload takes about half a gigabyte for a second or two, whatever its file
# size (a flat PNG of 130 kB will do): a web process decodes this many at once, the others wait.
_DECODES = threading.BoundedSemaphore(settings.UPLOAD_DECODES_AT_ONCE)


def _megabytes(size):
    return f"{size / (1024 * 1024):.0f} MB"


def read_upload(uploaded):
    """Decode an uploaded file into an upright RGB Pillow image or raise a ValidationError."""
    size = getattr(uploaded, "size", None)
    if not size:
        raise ValidationError("The file is empty.", code="empty")
    if size > settings.UPLOAD_MAX_BYTES:
        raise ValidationError(
            f"The file is {_megabytes(size)}; the limit is {_megabytes(settings.UPLOAD_MAX_BYTES)}.", code="too_large"
        )
    uploaded.seek(0)
    data = uploaded.read()
    with _DECODES:
        return _decode(data)


def _decode(data):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            kind = image.format
            if kind not in ALLOWED_FORMATS:
                raise ValidationError(
                    f"{kind or 'This'} images are not supported; upload a {ALLOWED_LABEL} image.", code="format"
                )
            width, height = image.size
            if width * height > settings.UPLOAD_MAX_PIXELS:
                raise ValidationError(
                    f"The image is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); "
                    f"the limit is {settings.UPLOAD_MAX_PIXELS / 1e6:.0f} megapixels.",
                    code="too_many_pixels",
                )
            if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
                raise ValidationError(
                    f"The image is {width}×{height} pixels; its long side may be at most "
                    f"{MAX_ASPECT_RATIO} times its short side. Crop it and upload it again.",
                    code="aspect_ratio",
                )
            if min(width, height) < MIN_SIDE:
                raise ValidationError(
                    f"The image is {width}×{height} pixels, too small to paint: it needs at least {MIN_SIDE} "
                    "pixels on each side. Upload a larger picture.",
                    code="too_small",
                )
            image.seek(0)
            image.load()
            # Upright from EXIF, any mode to 8-bit RGB: the engine's own reader, so the web side
            # stores exactly what the engine will see.
            rgb = Image.fromarray(stylecore.load_image(image))
    except ValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationError(
            f"The image has too many pixels; the limit is {settings.UPLOAD_MAX_PIXELS / 1e6:.0f} megapixels.",
            code="too_many_pixels",
        )
    except UnidentifiedImageError:
        kind = signature_format(data)
        if kind is not None:  # a TIFF of floating-point colour, say: the format is right, the file's kind is not
            raise ValidationError(
                f"This {kind} file is of a kind we cannot decode (a TIFF of floating-point colour, say); save it "
                f"as an 8- or 16-bit {kind}, a PNG or a JPEG and upload it again.", code="undecodable")
        raise ValidationError(f"This file is not an image we can read; upload a {ALLOWED_LABEL} image.", code="not_image")
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error):
        raise ValidationError("The image is damaged or incomplete (it could not be fully decoded).", code="corrupt")
    if rgb.width < 1 or rgb.height < 1:
        raise ValidationError("The image has no pixels.", code="empty")
    return rgb


def encode_jpeg(image, quality=95):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, subsampling=0, optimize=True)
    return buffer.getvalue()


def encode_png(image):
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=3)
    return buffer.getvalue()


def thumbnail_of(image):
    """A small JPEG for grids and lists; the long side is THUMBNAIL_SIZE pixels at most."""
    small = ImageOps.contain(image, (settings.THUMBNAIL_SIZE, settings.THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
    return encode_jpeg(small, quality=85)


def stored_copy(image):
    """The full image as stored for an upload: re-encoded, so no payload rides along."""
    return ContentFile(encode_jpeg(image))


def image_file(image, fmt="PNG"):
    data = encode_png(image) if fmt == "PNG" else encode_jpeg(image)
    return ContentFile(data)


def thumbnail_file(image):
    return ContentFile(thumbnail_of(image))
