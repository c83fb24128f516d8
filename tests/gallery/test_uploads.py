"""Uploads are judged by content: bad files are refused with a message and nothing is stored."""
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gallery.models import Project
from tests.factories import make_image, upload


def stored_files(media_root):
    root = Path(media_root)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def decompression_bomb(side=20000):
    """A 1-bit PNG of side×side pixels (400 megapixels) that is only a few kilobytes on disk."""
    row = b"\x00" + b"\x00" * (side // 8)
    pixels = zlib.compress(row * side, 9)
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", pixels) + png_chunk(b"IEND", b"")


def post_project(client, style_file):
    return client.post(
        "/projects/new/", {"title": "Upload test", "content_image": upload("content.png"), "style_image": style_file}
    )


def stored_style(project):
    with project.style_image.open("rb") as handle:
        image = Image.open(handle)
        image.load()
    return image


REJECTED = {
    "zero bytes": (lambda: upload("empty.png", b"", "image/png"), "The file is empty"),
    "text named .jpg": (lambda: upload("notes.jpg", b"just some text\n" * 20, "image/jpeg"), "not an image we can read"),
    "truncated JPEG": (
        lambda: upload("cut.jpg", make_image(200, 150, fmt="JPEG")[:1500], "image/jpeg"),
        "damaged or incomplete",
    ),
    "decompression bomb": (lambda: upload("bomb.png", decompression_bomb(), "image/png"), "megapixels"),
    "SVG": (
        lambda: upload(
            "drawing.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>',
            "image/svg+xml",
        ),
        "not an image we can read",
    ),
}


@pytest.mark.parametrize("case", REJECTED, ids=list(REJECTED))
def test_it_rejects_a_bad_upload_with_a_message_and_stores_nothing(case, owner_client, media_root):
    make_file, message = REJECTED[case]
    response = post_project(owner_client, make_file())
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Project.objects.count() == 0
    assert stored_files(media_root) == []


def test_it_rejects_a_file_over_the_size_limit(owner_client, media_root, settings):
    settings.UPLOAD_MAX_BYTES = 1000
    response = post_project(owner_client, upload("big.png", make_image(64, 64)))
    assert "the limit is" in response.content.decode()
    assert Project.objects.count() == 0
    assert stored_files(media_root) == []


def test_it_rejects_an_image_over_the_configured_pixel_limit(owner_client, media_root, settings):
    settings.UPLOAD_MAX_PIXELS = 1000
    response = post_project(owner_client, upload("wide.png", make_image(64, 48)))
    assert "64×48 pixels" in response.content.decode()
    assert Project.objects.count() == 0


def test_it_accepts_a_cmyk_jpeg_and_stores_rgb(owner_client):
    response = post_project(owner_client, upload("cmyk.jpg", make_image(fmt="JPEG", mode="CMYK"), "image/jpeg"))
    assert response.status_code == 302
    image = stored_style(Project.objects.get())
    assert image.mode == "RGB" and image.size == (64, 48)


def test_it_accepts_a_16_bit_png_and_scales_it_to_8_bits(owner_client):
    values = np.tile(np.array([0, 32896, 65535], dtype=np.uint16), (40, 16))  # 40×48
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, "PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).mode.startswith("I")
    response = post_project(owner_client, upload("deep.png", buffer.getvalue()))
    assert response.status_code == 302
    image = stored_style(Project.objects.get())
    assert image.mode == "RGB" and image.size == (48, 40)
    pixels = np.asarray(image)[0, :3, 0].astype(int)
    assert abs(pixels[0] - 0) <= 3 and abs(pixels[1] - 128) <= 3 and abs(pixels[2] - 255) <= 3


def test_it_accepts_rgba_and_puts_transparency_on_white(owner_client):
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # red, but fully transparent on the left half
    rgba[:, 10:, 3] = 255
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG")
    response = post_project(owner_client, upload("alpha.png", buffer.getvalue()))
    assert response.status_code == 302
    pixels = np.asarray(stored_style(Project.objects.get())).astype(int)
    assert np.all(np.abs(pixels[10, 2] - [255, 255, 255]) <= 4)
    assert np.all(np.abs(pixels[10, 15] - [200, 0, 0]) <= 6)


def test_it_turns_an_exif_rotated_photo_upright(owner_client):
    original = Image.open(io.BytesIO(make_image(64, 48, fmt="JPEG"))).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    buffer = io.BytesIO()
    original.save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    response = post_project(owner_client, upload("phone.jpg", buffer.getvalue(), "image/jpeg"))
    assert response.status_code == 302
    image = stored_style(Project.objects.get())
    assert image.size == (48, 64)
    assert 0x0112 not in image.getexif()


def test_it_stores_a_reencoded_copy_without_trailing_payload(owner_client):
    payload = make_image() + b"<html><script>alert('x')</script></html>"
    response = post_project(owner_client, upload("sneaky.png", payload))
    assert response.status_code == 302
    with Project.objects.get().style_image.open("rb") as handle:
        data = handle.read()
    assert b"<script>" not in data
    assert data.startswith(b"\xff\xd8")  # stored as a fresh JPEG
