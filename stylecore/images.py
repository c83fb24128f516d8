"""Image reading, sizing and the caffe pre/deprocessing the VGG19 features expect.

Everything here is numpy + Pillow; nothing imports TensorFlow.
"""

import io
import math
import os
from fractions import Fraction

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, SettingsError

# ImageNet channel means in BGR order, as in keras.applications.vgg19.preprocess_input.
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)

STYLE_FITS = ("crop", "resize")

# VGG19 pools four times before block5_conv2: each side needs at least 16 pixels.
MIN_SIDE = 16
# The largest picture (pixels) that goes through the network on TensorFlow's CPU: its 3×3
# convolutions of 64 channels end the process with a segmentation fault above about 10.95 megapixels
# (TensorFlow 2.21, with oneDNN and without: 3000×3650 computes, 1000×11000 crashes; XLA's do not).
# ``stylecore.memory`` refuses larger runs and previews there.
MAX_NETWORK_PIXELS = 10_000_000
# A style image seen at a large style_scale is capped at this many pixels (the network's memory
# grows with them, and 4x of a 2048-row output would be about 90 megapixels), on every backend.
MAX_STYLE_PIXELS = MAX_NETWORK_PIXELS

_FORMATS = "JPEG, PNG, WebP, GIF, BMP or TIFF"
# The first bytes of each format the engine reads (TIFF and BigTIFF in both byte orders; WebP is RIFF….WEBP).
_SIGNATURES = ((b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"),
               (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
               (b"BM", "BMP"))


def signature_format(head):
    """The format (of those the engine reads) that a file's first bytes announce, or None: a file Pillow
    cannot identify may still be one, of a kind it cannot decode (a TIFF of floating-point colour)."""
    head = bytes(head[:12])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _SIGNATURES if head.startswith(magic)), None)


def _head(opener):
    """The first bytes of a path, bytes or binary file, or b"" where they cannot be read."""
    try:
        if isinstance(opener, (str, os.PathLike)):
            with open(opener, "rb") as handle:
                return handle.read(12)
        if isinstance(opener, io.BytesIO):
            return opener.getvalue()[:12]
        opener.seek(0)
        return opener.read(12)
    except (OSError, ValueError, AttributeError):
        return b""


def _unreadable(name, opener):
    kind = signature_format(_head(opener))
    if kind is None:
        return f"Cannot read image {name}: it is not a picture in a known format ({_FORMATS})."
    return (f"Cannot read image {name}: it is a {kind} file of a kind that cannot be decoded (a TIFF of "
            f"floating-point colour, say). Save it as an 8- or 16-bit {kind}, a PNG or a JPEG.")


def load_image(source):
    """Read ``source`` as an 8-bit RGB uint8 array of shape (H, W, 3).

    ``source`` may be a path (str or os.PathLike), bytes, a binary file object,
    a PIL Image or a uint8 ndarray (HxW, HxWx3 or HxWx4). EXIF orientation is
    applied, the first frame of an animation is used, transparency is
    composited on white, and every Pillow mode (L, LA, P, RGBA, CMYK, 16-bit,
    32-bit integer and float) is converted to 8-bit RGB.
    Raises ImageError with a readable message when the input is not an image.
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source)
    if isinstance(source, Image.Image):
        return _pil_to_rgb(source)
    name = "image"
    if isinstance(source, (str, os.PathLike)):
        name = f"'{os.fspath(source)}'"
        if not os.path.isfile(source):
            raise ImageError(f"Cannot read image {name}: no such file.")
        opener = source
    elif isinstance(source, (bytes, bytearray, memoryview)):
        opener = io.BytesIO(bytes(source))
    elif hasattr(source, "read"):
        opener = source
        name = f"'{getattr(source, 'name', 'uploaded file')}'"
    else:
        raise ImageError(
            f"Cannot read an image from a {type(source).__name__}; pass a path, "
            "bytes, a binary file, a PIL Image or a uint8 array."
        )
    try:
        with Image.open(opener) as image:
            image.seek(0)
            image.load()
            return _pil_to_rgb(image)
    except UnidentifiedImageError:
        raise ImageError(_unreadable(name, opener)) from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"Cannot read image {name}: it is too large ({exc}).") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(
            f"Cannot read image {name}: the file is truncated or damaged ({exc})."
        ) from None


def _pil_to_rgb(image):
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _gray_to_rgb(_scale_wide(np.asarray(image), is_float=(mode == "F")))
    if mode == "P" or mode == "PA":
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return np.array(image.convert("RGB"), dtype=np.uint8)


# Wide samples are converted this many rows at a time: a 40-megapixel upload never has a whole
# float64 copy (320 MB each), only a few megabytes of one.
_BLOCK_ROWS = 256


def _wide_blocks(values):
    for start in range(0, values.shape[0], _BLOCK_ROWS):
        block = values[start:start + _BLOCK_ROWS].astype(np.float64)
        yield start, np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0, copy=False)


def _scale_wide(values, *, is_float):
    """Map 16/32-bit integer or float samples to 0..255.

    Floats whose values all lie in [0, 1] are taken as fractions, and floats in [0, 255] reaching at
    least 128 as 8-bit values. Other floats have no fixed range (high dynamic range, normalised to
    [-1, 1], counts): they are spread from 0 (or from their minimum where it is negative) to their
    maximum; read as 0..255 or as 16-bit samples, such pictures came out black. Integers with any
    value above 255 are taken as 16-bit (0..65535) samples.
    """
    low, high = 0.0, 0.0
    if values.size:
        ranges = [(block.min(), block.max()) for _, block in _wide_blocks(values)]
        low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
    fractions = is_float and values.size and low >= 0.0 and high <= 1.0
    eight_bit = 0.0 <= low and 128.0 <= high <= 255.0
    spread = is_float and values.size and not fractions and not eight_bit
    sixteen_bit = not is_float and values.size and high > 255.0
    base = min(low, 0.0)
    gray = np.empty(values.shape, dtype=np.uint8)
    for start, block in _wide_blocks(values):
        if fractions:
            block *= 255.0
        elif spread:
            block -= base
            block *= 255.0 / (high - base)
        elif sixteen_bit:
            block /= 257.0
        gray[start:start + _BLOCK_ROWS] = np.clip(np.rint(block), 0, 255)
    return gray


def _gray_to_rgb(gray):
    return np.repeat(gray[:, :, None], 3, axis=2)


def _array_to_rgb(array):
    if array.dtype != np.uint8:
        raise ImageError(f"Image arrays must be uint8, not {array.dtype}.")
    if array.ndim == 2:
        return _gray_to_rgb(array)
    if array.ndim == 3 and array.shape[2] == 3:
        return np.ascontiguousarray(array)
    if array.ndim == 3 and array.shape[2] == 4:
        return _pil_to_rgb(Image.fromarray(array, "RGBA"))
    raise ImageError(f"Image arrays must be HxW, HxWx3 or HxWx4, not {array.shape}.")


def content_aspect(width, height):
    """A content image's width over height, exactly (a Fraction): what ``output_width`` takes."""
    return Fraction(int(width), int(height))


def output_width(rows, aspect):
    """The width of an output ``rows`` high of a content image ``aspect`` (width / height) wide per row,
    written once for the engine, the estimates and the quotas: the nearest whole pixel (ties to even,
    as Python's round), at least 1. Exact for an aspect from ``content_aspect``; a float aspect is
    taken at its exact binary value (473 / 800 as a float is a hair above it: at 400 rows that is
    236.50000000000003, 237 pixels, where the image's 473×800 gives 236.5, 236)."""
    return max(1, round(Fraction(aspect) * rows))


def output_size(content_shape, rows):
    """(rows, cols) of a run: ``rows`` high, columns keep the content's aspect ratio (``output_width``)."""
    height, width = content_shape[:2]
    cols = output_width(rows, content_aspect(width, height))
    if cols < MIN_SIDE:
        raise SettingsError(
            f"The output would be {rows}×{cols} pixels; VGG19 needs at least {MIN_SIDE} on each side. "
            f"Use more rows or a less narrow content image."
        )
    return rows, cols


def resize(image, rows, cols):
    """Resize a uint8 RGB array to exactly rows x cols (no-op when already that size)."""
    if image.shape[:2] == (rows, cols):
        return image
    resized = Image.fromarray(image).resize((cols, rows), Image.Resampling.LANCZOS)
    return np.asarray(resized, dtype=np.uint8)


def centre_crop_to_aspect(image, rows, cols):
    """Crop the centre of ``image`` to the aspect ratio cols/rows (no resize)."""
    height, width = image.shape[:2]
    target = cols / rows
    if abs(width / height - target) < 1e-9:
        return image
    if width / height > target:
        new_width = max(1, int(round(height * target)))
        left = (width - new_width) // 2
        return image[:, left:left + new_width]
    new_height = max(1, int(round(width / target)))
    top = (height - new_height) // 2
    return image[top:top + new_height, :]


def validate_rows(rows, name="rows"):
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < MIN_SIDE:
        raise SettingsError(f"{name} must be an integer of at least {MIN_SIDE}, not {rows!r}.")
    return int(rows)


def validate_style_fit(style_fit):
    if style_fit not in STYLE_FITS:
        raise SettingsError(f"style_fit must be 'crop' or 'resize', not {style_fit!r}.")
    return style_fit


def _load_as(role, source):
    try:
        return load_image(source)
    except ImageError as exc:
        raise ImageError(f"{role} image: {exc}") from None


def style_size(rows, cols, style_scale=1.0):
    """(rows, cols) a style image is seen at for an output of rows x cols: ``style_scale`` times its
    size, at least MIN_SIDE a side, at most MAX_STYLE_PIXELS."""
    shrink = min(1.0, math.sqrt(MAX_STYLE_PIXELS / (rows * cols * style_scale ** 2)))
    return (max(MIN_SIDE, int(round(rows * style_scale * shrink))),
            max(MIN_SIDE, int(round(cols * style_scale * shrink))))


def fit_style(style, rows, cols, style_fit="crop", style_scale=1.0):
    """A uint8 style picture fitted to an output of rows x cols: ``"crop"`` cuts its centre to the
    output's aspect ratio first (no distortion), ``"resize"`` squashes it; then it is resized to
    ``style_size`` (the output's size at ``style_scale`` 1)."""
    if style_fit == "crop":
        style = centre_crop_to_aspect(style, rows, cols)
    return resize(style, *style_size(rows, cols, style_scale))


def prepare_images(content, style, *, rows=400, style_fit="crop", style_scale=1.0):
    """Return (content, style) as the engine sees them: two uint8 (rows, cols, 3) arrays.

    The content is resized to ``rows`` high keeping its aspect ratio. The style is fitted to the
    same size (``fit_style``), or to ``style_scale`` times it.
    """
    rows = validate_rows(rows)
    style_fit = validate_style_fit(style_fit)
    content = _load_as("Content", content)
    style = _load_as("Style", style)
    rows, cols = output_size(content.shape, rows)
    return resize(content, rows, cols), fit_style(style, rows, cols, style_fit, style_scale)


def preprocess(image):
    """uint8 RGB (H, W, 3) -> float32 BGR with the ImageNet mean removed (caffe style)."""
    return image[:, :, ::-1].astype(np.float32) - CAFFE_MEAN_BGR


def deprocess(x):
    """Inverse of ``preprocess``: caffe BGR floats -> uint8 RGB, clipped and rounded."""
    x = np.asarray(x, dtype=np.float32).reshape(x.shape[-3:]) + CAFFE_MEAN_BGR
    return np.clip(np.rint(x[:, :, ::-1]), 0, 255).astype(np.uint8)


def caffe_bounds(shape):
    """Per-element (low, high) arrays of valid caffe values for an image of ``shape``."""
    low = np.broadcast_to(-CAFFE_MEAN_BGR, shape)
    return low, low + 255.0
