"""Bad input corpus: every odd upload or form value is either handled correctly or refused with a
clear message. Never a 500, and a refusal leaves no Project or Run row and no file behind."""
import io
import threading
import time
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from django.core.files.storage import default_storage
from PIL import Image

from gallery.models import Project, Run
from tests.factories import create_project, make_image, upload


def files_under(root):
    root = Path(root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def png_bomb(width, height):
    """A real greyscale PNG of width×height black pixels, compressed to a few hundred kilobytes.

    Written row by row so that building it never holds the decoded image in memory."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + pixels
    idat = b"".join(compressor.compress(row * 100) for _ in range(height // 100)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def sixteen_bit_png():
    ramp = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, "PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).mode.startswith("I;16")
    return buffer.getvalue()


def animated_gif():
    frames = [Image.new("RGB", (32, 24), colour) for colour in [(200, 30, 30), (30, 200, 30), (30, 30, 200)]]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def exif_rotated_jpeg():
    """64 wide × 48 high pixels with EXIF orientation 6: a camera held upright, so 48 × 64 shown."""
    image = Image.open(io.BytesIO(make_image(64, 48))).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def transparent_png():
    image = Image.new("RGBA", (40, 30), (0, 0, 255, 0))
    image.paste((255, 0, 0, 255), (0, 0, 20, 30))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def float_colour_tiff():
    """A TIFF of three float32 channels (as scientific and HDR tools write): Pillow cannot decode it."""
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.random.default_rng(0).random((48, 64, 3), dtype=np.float32), photometric="rgb")
    return buffer.getvalue()


JPEG = make_image(64, 48, fmt="JPEG")
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48"><rect width="64" height="48"/></svg>'

# name: (file name, bytes, words the refusal message must contain)
REFUSED = {
    "zero bytes": ("empty.jpg", b"", "empty"),
    "text named .jpg": ("notes.jpg", b"Dear diary, this is not a picture.\n" * 20, "not an image we can read"),
    "truncated JPEG": ("cut.jpg", JPEG[: len(JPEG) // 2], "damaged or incomplete"),
    "SVG": ("drawing.svg", SVG, "not an image we can read"),
    "decompression bomb (400 megapixels)": ("bomb.png", None, "too many pixels"),
    "over the pixel limit (49 megapixels)": ("big.png", None, "megapixels"),
    "10000×10 strip": ("strip.png", make_image(10000, 10), "at most 4 times"),
    "10×10000 strip": ("tall.png", make_image(10, 10000), "at most 4 times"),
    # Just over the limit: a 64-row run of it would be 12 columns, too few for VGG19's pooling.
    "64×330 (1:5.2)": ("narrow.png", make_image(64, 330), "at most 4 times"),
    "1×1": ("dot.png", make_image(1, 1), "too small to paint"),
    "15×20": ("tiny.png", make_image(15, 20), "at least 16 pixels on each side"),
    "PDF": ("paper.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "not an image we can read"),
    # It is a TIFF: "not an image we can read; upload a … TIFF image" was no help.
    "TIFF of float colour": ("float.tif", float_colour_tiff(), "TIFF file is of a kind we cannot decode"),
    "ICO (a format we do not take)": ("icon.png", make_image(32, 32, fmt="ICO"), "not supported"),
}


@pytest.fixture(scope="module")
def bombs():
    return {"decompression bomb (400 megapixels)": png_bomb(20000, 20000), "over the pixel limit (49 megapixels)": png_bomb(7000, 7000)}


def refused_bytes(case, bombs):
    name, data, _ = REFUSED[case]
    return name, bombs[case] if data is None else data


def post_project(client, content, style):
    return client.post("/projects/new/", {"title": "Odd input", "content_image": content, "style_image": style})


@pytest.mark.parametrize("case", REFUSED)
@pytest.mark.parametrize("which", ["content_image", "style_image"])
def test_it_refuses_a_bad_upload_with_a_clear_message_and_saves_nothing(case, which, bombs, owner_client, media_root):
    name, data = refused_bytes(case, bombs)
    good = upload("good.png")
    bad = upload(name, data, "application/octet-stream")
    content, style = (bad, good) if which == "content_image" else (good, bad)
    response = post_project(owner_client, content, style)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == [which]
    assert REFUSED[case][2] in " ".join(errors[which])
    assert REFUSED[case][2].encode() in response.content  # shown on the page, next to the field
    assert Project.objects.count() == 0
    assert files_under(media_root) == []


def test_it_refuses_a_file_over_the_byte_limit(settings, owner_client, media_root):
    settings.UPLOAD_MAX_BYTES = 1000
    response = post_project(owner_client, upload("big.png", make_image(200, 150)), upload("good.png"))
    assert response.status_code == 200
    assert "the limit is" in " ".join(response.context["form"].errors["content_image"])
    assert Project.objects.count() == 0
    assert files_under(media_root) == []


def stored(project, which):
    with default_storage.open(getattr(project, f"{which}_image").name, "rb") as handle:
        data = handle.read()
    image = Image.open(io.BytesIO(data))
    image.load()
    return data, image


ACCEPTED = {
    # name: (file name, bytes, (width, height) stored, a check of the stored pixels)
    "16×16 (the smallest)": ("dot.png", make_image(16, 16), (16, 16), None),
    "4:1 panorama": ("wide.png", make_image(256, 64), (256, 64), None),
    "CMYK JPEG": ("print.jpg", make_image(64, 48, mode="CMYK", fmt="JPEG"), (64, 48), "colours_kept"),
    "16-bit PNG": ("deep.png", sixteen_bit_png(), (64, 48), "grey_ramp"),
    "RGBA with transparency": ("alpha.png", transparent_png(), (40, 30), "transparent_is_white"),
    "animated GIF": ("anim.gif", animated_gif(), (32, 24), "first_frame"),
    "EXIF-rotated JPEG": ("phone.jpg", exif_rotated_jpeg(), (48, 64), None),
    "PNG followed by HTML": (
        "mixed.png",
        make_image() + b"<html><body><script>alert(document.cookie)</script></body></html>",
        (64, 48),
        "no_payload",
    ),
    "greyscale": ("grey.png", make_image(mode="L"), (64, 48), None),
    "palette PNG": ("palette.png", make_image(mode="P"), (64, 48), None),
    "WebP": ("pic.webp", make_image(fmt="WEBP"), (64, 48), None),
    "TIFF": ("scan.tif", make_image(fmt="TIFF"), (64, 48), None),
    "BMP": ("old.bmp", make_image(fmt="BMP"), (64, 48), None),
}


def check_pixels(check, data, image):
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    if check == "colours_kept":
        original = np.asarray(Image.open(io.BytesIO(make_image(64, 48))).convert("RGB"), dtype=np.int16)
        assert np.abs(pixels - original).mean() < 20  # not inverted (a classic CMYK bug)
    elif check == "grey_ramp":
        assert pixels[0, 0].max() < 10 and pixels[-1, -1].min() > 240  # scaled from 16 bits, not clipped
    elif check == "transparent_is_white":
        assert tuple(pixels[15, 5]) == pytest.approx((255, 0, 0), abs=12)
        assert tuple(pixels[15, 35]) == pytest.approx((255, 255, 255), abs=12)
    elif check == "first_frame":
        assert tuple(pixels[12, 16]) == pytest.approx((200, 30, 30), abs=16)
    elif check == "no_payload":
        assert b"<html" not in data and b"script" not in data


@pytest.mark.parametrize("case", ACCEPTED)
def test_it_accepts_an_odd_but_valid_image_and_stores_clean_rgb(case, owner_client, media_root):
    name, data, size, check = ACCEPTED[case]
    response = post_project(owner_client, upload(name, data, "application/octet-stream"), upload("style.png"))
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    project = Project.objects.get()
    stored_data, image = stored(project, "content")
    assert image.format == "JPEG" and image.mode == "RGB"
    assert image.size == size
    check_pixels(check, stored_data, image)
    with default_storage.open(project.content_thumbnail.name, "rb") as handle:
        assert Image.open(handle).format == "JPEG"
    # The owner can see it back through the media view.
    assert owner_client.get(f"/projects/{project.id}/media/content/").status_code == 200


def test_it_accepts_a_style_image_that_is_odd_too(owner_client, media_root):
    response = post_project(owner_client, upload("good.png"), upload("anim.gif", animated_gif(), "image/gif"))
    assert response.status_code == 302
    _, image = stored(Project.objects.get(), "style")
    assert image.size == (32, 24)


@pytest.mark.parametrize("case", ["text named .jpg", "decompression bomb (400 megapixels)", "10000×10 strip"])
def test_it_keeps_the_project_and_its_files_when_an_edit_upload_is_bad(case, bombs, project, owner_client, media_root):
    before = files_under(media_root)
    name, data = refused_bytes(case, bombs)
    response = owner_client.post(
        f"/projects/{project.id}/edit/", {"title": "Renamed", "content_image": upload(name, data, "image/png")}
    )
    assert response.status_code == 200
    assert REFUSED[case][2] in " ".join(response.context["form"].errors["content_image"])
    project.refresh_from_db()
    assert project.title == "Bird and Scream"
    assert files_under(media_root) == before


@pytest.mark.parametrize(
    "title, message",
    [("", "This field is required."), ("   ", "This field is required."), ("x" * 121, "at most 120 characters")],
)
def test_it_refuses_a_bad_title_and_saves_nothing(title, message, owner_client, media_root):
    response = owner_client.post(
        "/projects/new/", {"title": title, "content_image": upload("a.png"), "style_image": upload("b.png")}
    )
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors["title"])
    assert Project.objects.count() == 0
    assert files_under(media_root) == []


def test_it_ignores_a_forged_owner_field(owner_client, other, media_root):
    response = owner_client.post(
        "/projects/new/",
        {"title": "Mine", "owner": other.id, "is_public": "on", "content_image": upload("a.png"), "style_image": upload("b.png")},
    )
    assert response.status_code == 302
    project = Project.objects.get()
    assert project.owner.username == "alice" and not project.is_public


def test_a_storage_failure_half_way_leaves_no_row_and_no_file(owner_client, media_root, monkeypatch):
    """The disk fills up after the content image is written: the view fails, but cleans up."""
    from gallery import files

    real = files.save_project_image

    def failing(project, which, image):
        if which == "style":
            raise OSError(28, "No space left on device")
        return real(project, which, image)

    monkeypatch.setattr(files, "save_project_image", failing)
    owner_client.raise_request_exception = False
    response = post_project(owner_client, upload("a.png"), upload("b.png"))
    assert response.status_code == 500
    assert Project.objects.count() == 0
    assert files_under(media_root) == []


def test_a_database_failure_after_the_files_leaves_no_file(owner_client, media_root, monkeypatch):
    def failing_save(self, *args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Project, "save", failing_save)
    owner_client.raise_request_exception = False
    response = post_project(owner_client, upload("a.png"), upload("b.png"))
    assert response.status_code == 500
    assert files_under(media_root) == []


def test_a_media_file_missing_on_disk_is_a_404_not_a_500(project, owner_client):
    default_storage.delete(project.content_image.name)
    assert owner_client.get(f"/projects/{project.id}/media/content/").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/projects/999999/",
        "/projects/999999/media/content/",
        "/projects/1/media/..%2F..%2Fsettings.py/",
        "/projects/99999999999999999999999/",
        "/runs/99999999999999999999999/",
        "/runs/1/iterations/99999999999999999999999/image/",
    ],
)
def test_odd_ids_and_paths_are_404s(path, project, owner_client):
    assert owner_client.get(path).status_code == 404


def test_a_run_row_is_never_created_by_a_refused_project(owner_client, media_root):
    post_project(owner_client, upload("bad.jpg", b"nope", "image/jpeg"), upload("b.png"))
    assert Run.objects.count() == 0 and Project.objects.count() == 0


def test_create_project_helper_still_matches_the_view(owner, media_root):
    """The fixture helper writes the same four files the view writes (so the matrix tests are fair)."""
    project = create_project(owner)
    assert len(files_under(media_root)) == 4 and all(f.name for f in project.image_files())


# ---------------------------------------------------------------------------------------------
# The launch form: odd values are refused before anything is saved or queued.

RUN_VALID = {
    "content_weight": "1", "style_weight": "0.01", "tv_weight": "0.001", "iterations": "3", "rows": "64",
    "save_every": "1", "style_fit": "crop", "optimizer": "lbfgs", "init": "content", "seed": "",
}

RUN_REFUSED = [
    ({"content_weight": "-0.5"}, "content_weight"),
    ({"style_weight": "NaN"}, "style_weight"),
    ({"tv_weight": "-inf"}, "tv_weight"),
    ({"style_weight": "1e400"}, "style_weight"),  # parses as infinity
    ({"content_weight": "abc"}, "content_weight"),
    ({"content_weight": ""}, "content_weight"),
    ({"content_weight": "0", "style_weight": "0.0", "tv_weight": "-0"}, "__all__"),
    ({"iterations": "0"}, "iterations"),
    ({"iterations": "-1"}, "iterations"),
    ({"iterations": "99999999999999999999999"}, "iterations"),
    ({"iterations": "2.5"}, "iterations"),
    ({"rows": "100000"}, "rows"),
    ({"rows": "1e3"}, "rows"),
    ({"rows": "0"}, "rows"),
    ({"save_every": "-10"}, "save_every"),
    ({"seed": "99999999999999999999999"}, "seed"),
    ({"style_fit": ""}, "style_fit"),
    ({"init": "../../etc/passwd"}, "init"),
]


def run_queue_size():
    from django_q.models import OrmQ

    return OrmQ.objects.count()


@pytest.mark.parametrize("changes, field", RUN_REFUSED, ids=[str(c) for c, _ in RUN_REFUSED])
def test_it_refuses_bad_run_settings_and_saves_or_queues_nothing(changes, field, project, owner_client, media_root):
    before = files_under(media_root)
    response = owner_client.post(f"/projects/{project.id}/runs/new/", {**RUN_VALID, **changes})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors and all(message.strip() for message in errors[field])
    assert b'role="alert"' in response.content
    assert Run.objects.count() == 0
    assert run_queue_size() == 0
    assert files_under(media_root) == before


def test_it_refuses_rows_over_the_sites_cap(settings, project, owner_client):
    settings.RUN_MAX_ROWS = 128
    response = owner_client.post(f"/projects/{project.id}/runs/new/", {**RUN_VALID, "rows": "129"})
    assert "128" in " ".join(response.context["form"].errors["rows"])
    assert Run.objects.count() == 0 and run_queue_size() == 0


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"seed": "-3"}, "seed", "Use a whole number of at least 0."),
        ({"content_weight": "-5"}, "content_weight", "Use a number from 0 to 1e12."),
        ({"iterations": "1000000"}, "iterations", "Use a whole number from 1 to 5000."),
        ({"iterations": "-3"}, "iterations", "Use a whole number from 1 to 5000."),
        ({"rows": "10"}, "rows", "Use a whole number from 64 to 2048."),
        ({"rows": "99999"}, "rows", "Use a whole number from 64 to 2048."),
        ({"start_rows": "8"}, "start_rows", "Use a whole number from 32 to 2048."),
        ({"save_every": "0"}, "save_every", "Use a whole number from 1 to 5000."),
        ({"adain_alpha": "7"}, "adain_alpha", "Use a number from 0 to 1."),
        ({"style_scale": "10"}, "style_scale", "Use a number from 0.25 to 4."),
    ],
)
def test_a_number_out_of_bounds_gets_one_message_naming_the_bounds(changes, field, message, project, owner_client):
    # Each bound once, from the schema (narrowed by the launch form): the model field's own minimum
    # and the schema's used to say the same thing twice, in Django's words.
    response = owner_client.post(f"/projects/{project.id}/runs/new/", {**RUN_VALID, **changes})
    assert response.context["form"].errors[field] == [message]


@pytest.mark.parametrize(
    "changes",
    [
        {"tv_weight": "0"},  # one zero weight is a fine experiment
        {"content_weight": "0", "tv_weight": "0"},
        {"style_weight": "1e300"},  # finite but huge: either refused, or the run fails with a clear message
        {"seed": "1099511627776"},
    ],
    ids=str,
)
def test_edge_values_are_accepted_and_queued_once_or_refused_clearly(changes, project, owner_client, media_root):
    response = owner_client.post(f"/projects/{project.id}/runs/new/", {**RUN_VALID, **changes})
    if response.status_code == 200:
        assert response.context["form"].errors
        assert Run.objects.count() == 0 and run_queue_size() == 0
    else:
        assert response.status_code == 302
        run = Run.objects.get()
        assert response["Location"] == f"/runs/{run.id}/"
        assert run.status == Run.Status.QUEUED and run_queue_size() == 1


def test_a_web_process_decodes_one_upload_at_a_time(monkeypatch):
    """A 40-megapixel decode takes about 0.5 GB for a second or two, however small its file: many at
    once, from one user or several, must not add up."""
    from gallery import images

    at_once, most = [], []
    lock = threading.Lock()
    decode = images.stylecore.load_image

    def counting(image):
        with lock:
            at_once.append(1)
            most.append(len(at_once))
        time.sleep(0.05)
        with lock:
            at_once.pop()
        return decode(image)

    monkeypatch.setattr(images.stylecore, "load_image", counting)
    threads = [threading.Thread(target=images.read_upload, args=(upload(),)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(most) == 4 and max(most) == 1
