"""Image loading, sizing and caffe pre/deprocessing (no TensorFlow needed)."""

import io

import numpy as np
import pytest
from PIL import Image, features

import stylecore
from stylecore.images import deprocess, preprocess


def encode(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_it_reads_a_path_bytes_file_object_pil_image_and_array(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    image = Image.fromarray(array)
    path = tmp_path / "picture.png"
    image.save(path)
    data = path.read_bytes()
    for source in (path, str(path), data, io.BytesIO(data), image, array):
        loaded = stylecore.load_image(source)
        assert loaded.dtype == np.uint8
        np.testing.assert_array_equal(loaded, array)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "TIFF", "WEBP", "GIF"])
def test_it_reads_every_supported_format(fmt):
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    image = Image.new("RGB", (30, 20), (200, 40, 40))
    loaded = stylecore.load_image(encode(image, fmt))
    assert loaded.shape == (20, 30, 3)
    assert np.abs(loaded.astype(int) - (200, 40, 40)).max() <= 8


def test_it_reads_the_first_frame_of_an_animated_gif():
    frames = [Image.new("RGB", (10, 10), colour) for colour in ((255, 0, 0), (0, 255, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    loaded = stylecore.load_image(data)
    assert tuple(loaded[5, 5]) == (255, 0, 0)


@pytest.mark.parametrize("image, expected", [
    (Image.new("L", (4, 4), 100), (100, 100, 100)),
    (Image.new("LA", (4, 4), (100, 255)), (100, 100, 100)),
    (Image.new("LA", (4, 4), (100, 0)), (255, 255, 255)),
    (Image.new("RGBA", (4, 4), (255, 0, 0, 0)), (255, 255, 255)),
    (Image.new("RGBA", (4, 4), (0, 0, 255, 255)), (0, 0, 255)),
    (Image.new("RGBA", (4, 4), (0, 0, 0, 128)), (127, 127, 127)),
    (Image.new("RGB", (4, 4), (255, 0, 0)).convert("P"), (255, 0, 0)),
    (Image.new("CMYK", (4, 4), (0, 255, 255, 0)), (255, 0, 0)),
    (Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)), (255, 255, 255)),
    (Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16)), (128, 128, 128)),
    (Image.fromarray(np.full((4, 4), 200, dtype=np.int32)), (200, 200, 200)),
    (Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32)), (128, 128, 128)),
])
def test_it_converts_every_mode_to_8_bit_rgb(image, expected):
    loaded = stylecore.load_image(image)
    assert loaded.dtype == np.uint8 and loaded.shape == (4, 4, 3)
    assert np.abs(loaded.astype(int) - expected).max() <= 1, (image.mode, loaded[0, 0])


@pytest.mark.parametrize("values", [(0.0, 1.5, 3.0), (-1.0, 0.0, 1.0), (0.0, 2000.0, 4000.0)])
def test_a_float_picture_outside_0_to_1_keeps_its_contrast(values):
    # A float picture has no fixed range: one in [0, 1] is fractions; one of high dynamic range (0-3), one
    # normalised to [-1, 1] or one of counts (0-4000) came out black or nearly (0-3 read as 0-255, 0-4000
    # as 16-bit samples). Each is now spread over 0-255 from 0, or from its minimum where it is negative.
    samples = np.repeat(np.array(values, dtype=np.float32)[None, :], 2, axis=0)
    loaded = stylecore.load_image(Image.fromarray(samples))
    assert np.abs(loaded[0, :, 0].astype(int) - [0, 128, 255]).max() <= 1, loaded[0, :, 0]
    eight_bit = np.repeat(np.array([(0.0, 100.0, 200.0)], dtype=np.float32), 2, axis=0)  # 8-bit values kept
    assert list(stylecore.load_image(Image.fromarray(eight_bit))[0, :, 0]) == [0, 100, 200]


def test_it_composites_a_transparent_palette_png_on_white():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([10, 20, 30] + [0, 0, 0] * 255)
    data = encode(image, "PNG", transparency=0)
    assert tuple(stylecore.load_image(data)[0, 0]) == (255, 255, 255)


def test_it_reads_a_16_bit_png_file(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 6), 65535 // 4 * 3, dtype=np.uint16)).save(path)
    loaded = stylecore.load_image(path)
    assert loaded.shape == (4, 6, 3)
    assert abs(int(loaded[0, 0, 0]) - 191) <= 1


def test_it_turns_an_exif_rotated_jpeg_upright():
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red
    stored[:, 20:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    data = encode(Image.fromarray(stored), "JPEG", exif=exif, quality=95)
    loaded = stylecore.load_image(data)
    assert loaded.shape == (40, 20, 3)  # portrait once upright
    assert loaded[2, 10, 0] > 200 and loaded[2, 10, 2] < 60  # red on top
    assert loaded[-3, 10, 2] > 200 and loaded[-3, 10, 0] < 60  # blue at the bottom


def test_it_rejects_a_text_file_with_a_clear_message(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not an image at all")
    with pytest.raises(stylecore.ImageError, match="not a picture in a known format"):
        stylecore.load_image(path)


def test_a_tiff_pillow_cannot_decode_is_not_called_an_unknown_format(tmp_path):
    # A TIFF of three float32 channels: "not a picture in a known format (…, TIFF)" sent the user looking
    # for the wrong problem.
    tifffile = pytest.importorskip("tifffile")
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, np.zeros((20, 30, 3), dtype=np.float32), photometric="rgb")
    with open(path, "rb") as handle:
        for source in (path, path.read_bytes(), handle):
            with pytest.raises(stylecore.ImageError, match=r"it is a TIFF file of a kind that cannot be decoded"):
                stylecore.load_image(source)


def test_it_rejects_a_truncated_file():
    data = encode(Image.fromarray(np.random.default_rng(1).integers(
        0, 256, (64, 64, 3), dtype=np.uint8)), "PNG")
    with pytest.raises(stylecore.ImageError, match="truncated or damaged"):
        stylecore.load_image(data[: len(data) // 2])


def test_it_rejects_a_missing_file_and_odd_inputs(tmp_path):
    with pytest.raises(stylecore.ImageError, match="no such file"):
        stylecore.load_image(tmp_path / "missing.png")
    with pytest.raises(stylecore.ImageError, match="uint8"):
        stylecore.load_image(np.zeros((4, 4, 3), dtype=np.float64))
    with pytest.raises(stylecore.ImageError):
        stylecore.load_image(12345)
    assert issubclass(stylecore.ImageError, stylecore.StyleCoreError)


def three_stripes():
    """60 wide x 20 high: blue left third, red middle third, green right third."""
    image = np.zeros((20, 60, 3), dtype=np.uint8)
    image[:, :20] = (0, 0, 255)
    image[:, 20:40] = (255, 0, 0)
    image[:, 40:] = (0, 255, 0)
    return image


def test_prepare_images_keeps_the_content_aspect_ratio():
    content = np.zeros((30, 45, 3), dtype=np.uint8)
    base, style = stylecore.prepare_images(content, three_stripes(), rows=20)
    assert base.shape == (20, 30, 3)
    assert style.shape == (20, 30, 3)


def test_crop_fit_takes_the_centre_of_the_style_image():
    content = np.zeros((32, 32, 3), dtype=np.uint8)
    _, style = stylecore.prepare_images(content, three_stripes(), rows=32, style_fit="crop")
    assert style.shape == (32, 32, 3)
    # Only the red middle third survives the centre crop to a square.
    assert style[:, :, 0].min() > 200 and style[:, :, 2].max() < 40


def test_resize_fit_squashes_the_whole_style_image():
    content = np.zeros((32, 32, 3), dtype=np.uint8)
    _, style = stylecore.prepare_images(content, three_stripes(), rows=32, style_fit="resize")
    assert style.shape == (32, 32, 3)
    assert style[16, 0, 2] > 200 and style[16, 31, 1] > 200  # blue left edge, green right edge


def test_prepare_images_names_the_bad_image_and_checks_settings():
    good = np.zeros((20, 20, 3), dtype=np.uint8)
    with pytest.raises(stylecore.ImageError, match="^Style image"):
        stylecore.prepare_images(good, b"garbage")
    with pytest.raises(stylecore.SettingsError):
        stylecore.prepare_images(good, good, rows=8)
    with pytest.raises(stylecore.SettingsError):
        stylecore.prepare_images(good, good, style_fit="stretch")


def test_caffe_preprocess_round_trips_and_matches_keras():
    image = np.random.default_rng(2).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    x = preprocess(image)
    # BGR order, ImageNet mean removed (keras.applications.vgg19.preprocess_input, mode "caffe").
    np.testing.assert_allclose(x[0, 0], image[0, 0, ::-1] - np.array([103.939, 116.779, 123.68]), rtol=1e-6)
    np.testing.assert_array_equal(deprocess(x), image)
    np.testing.assert_array_equal(deprocess(x + 1000)[0, 0], (255, 255, 255))


def test_the_output_width_is_one_rule_exact_for_the_contents_own_width_and_height():
    from stylecore.images import content_aspect, output_size, output_width

    # 473 × 800 at 400 rows is 236.5 columns: ties go to even, 236, for the engine and for every
    # caller that passes the image's exact aspect (a float aspect, 473 / 800, is a hair above it).
    assert output_size((800, 473), 400) == (400, 236)
    assert output_width(400, content_aspect(473, 800)) == 236
    assert output_width(400, 473 / 800) == 237
    assert output_width(10, content_aspect(1, 100)) == 1
