"""Colour and style controls: preserved colours, blended styles, style scale, layer choices (issue 13)."""

import numpy as np
import pytest

import stylecore
from stylecore import RunSettings
from stylecore.colour import matched_colours, to_ycbcr
from stylecore.errors import SettingsError
from stylecore.images import resize
from stylecore.samples import landscape, swirls
from stylecore.settings import STYLE_LAYER_PRESETS, parse_style_blend, parse_style_layers, style_layers_text


def chroma_error(image, reference):
    """Mean absolute difference of Cb and Cr (0–255 units) between two pictures of one size."""
    return np.abs(to_ycbcr(image)[..., 1:] - to_ycbcr(reference)[..., 1:]).mean()


@pytest.mark.backends
def test_luminance_keeps_the_contents_chroma(engine, content_image, style_image):
    result = engine.stylize(content_image, style_image, RunSettings(rows=32, iterations=1, init="content",
                            preserve_colors="luminance"))
    base = resize(content_image, *result.image.shape[:2])
    assert chroma_error(result.image, base) < 1.5
    # ... while the luminance was restyled, and a plain run takes the style's colours.
    assert np.abs(to_ycbcr(result.image)[..., 0] - to_ycbcr(base)[..., 0]).mean() > 3
    preview = engine.preview(content_image, style_image, rows=32)
    assert chroma_error(preview, base) > 3 * chroma_error(result.image, base)


def test_the_preview_keeps_the_contents_chroma_too(engine, content_image, style_image):
    preview = engine.preview(content_image, style_image, rows=32, preserve_colors="luminance")
    assert chroma_error(preview, resize(content_image, *preview.shape[:2])) < 1.5


def colour_statistics(image):
    pixels = image.reshape(-1, 3).astype(float)
    return pixels.mean(axis=0), np.cov(pixels, rowvar=False)


def test_histogram_moves_the_styles_colour_statistics_to_the_contents():
    content, style = landscape(48, 64), swirls(60, 60)
    recoloured = matched_colours(style, content)
    content_mean, content_cov = colour_statistics(content)
    style_mean, style_cov = colour_statistics(style)
    mean, cov = colour_statistics(recoloured)
    assert np.abs(mean - content_mean).max() < 3 < np.abs(style_mean - content_mean).max()
    assert np.abs(cov - content_cov).max() < 0.1 * np.abs(content_cov).max() < np.abs(style_cov - content_cov).max()
    _, (seen,) = stylecore.engine_inputs(content, style, rows=48, preserve_colors="histogram")
    assert np.abs(colour_statistics(seen)[0] - content_mean).max() < 6


def test_a_blend_of_two_styles_with_weights_1_0_equals_the_single_style_run(engine, content_image, style_image):
    options = dict(rows=32, iterations=1, init="adain")
    single = engine.stylize(content_image, style_image, RunSettings(**options))
    blend = engine.stylize(content_image, [style_image, content_image], RunSettings(**options),
                           style_blend_weights=[1, 0])
    np.testing.assert_array_equal(single.pixels, blend.pixels)
    half = engine.stylize(content_image, [style_image, content_image], RunSettings(**options),
                          style_blend_weights="0.5, 0.5")
    assert np.abs(half.pixels - single.pixels).mean() > 1


def test_style_scale_changes_the_size_the_style_targets_are_computed_at(engine, content_image, style_image,
                                                                        monkeypatch):
    shapes = []
    real = engine._targets

    def recording(key, image):
        shapes.append(tuple(image.shape[1:3]))
        return real(key, image)

    monkeypatch.setattr(engine, "_targets", recording)
    engine.stylize(content_image, style_image, RunSettings(rows=48, iterations=1, init="content", style_scale=0.5))
    assert shapes == [(48, 64), (24, 32)]  # the content's target, then the style's at half the size
    _, (large,) = stylecore.engine_inputs(content_image, style_image, rows=48, style_scale=2)
    _, (small,) = stylecore.engine_inputs(content_image, style_image, rows=48, style_scale=0.25)
    assert large.shape == (96, 128, 3) and small.shape == (16, 16, 3)  # at least 16 pixels a side


@pytest.mark.parametrize("scale", [0.1, 4.5, float("nan"), "2", True])
def test_style_scale_out_of_range_is_refused(engine, content_image, style_image, scale):
    with pytest.raises(SettingsError, match="style_scale must be a number from 0.25 to 4"):
        engine.stylize(content_image, style_image, RunSettings(rows=32, iterations=1, style_scale=scale))


def test_layer_presets_and_custom_lists_are_parsed_and_validated():
    assert parse_style_layers("balanced") == tuple((f"block{i}_conv1", 1.0) for i in range(1, 6))
    assert set(STYLE_LAYER_PRESETS) == {"balanced", "fine", "large"}
    assert parse_style_layers(" block3_conv1:0.5,block1_conv1 , block5_conv4:0") == (
        ("block1_conv1", 1.0), ("block3_conv1", 0.5))
    assert style_layers_text("block3_conv1:0.5,block1_conv1") == "block1_conv1:1, block3_conv1:0.5"
    refusals = {
        "block6_conv1:1": "not a VGG19 layer",
        "block1_conv1:-1": "finite numbers >= 0",
        "block1_conv1:nan": "finite numbers >= 0",
        "block1_conv1:x": "is not a number",
        "block1_conv1:0, block2_conv1:0": "at least one layer",
        "block1_conv1, block1_conv1": "named twice",
        " , ": "is empty",
    }
    for spec, message in refusals.items():
        with pytest.raises(SettingsError, match=message):
            parse_style_layers(spec)


def test_vgg19_is_cut_after_the_deepest_layer_used(engine):
    def last(content_layer, style_layers):
        names = tuple(name for name, _weight in parse_style_layers(style_layers))
        return engine._ensure_model("float32", content_layer, names).convolutions[-1]

    assert last("block5_conv2", "balanced") == "block5_conv2"
    assert last("block4_conv2", "fine") == "block4_conv2"
    assert last("block4_conv2", "large") == "block5_conv1"
    assert last("block4_conv2", "block5_conv4:1") == "block5_conv4"


def test_other_layers_give_another_picture(engine, content_image, style_image):
    options = dict(rows=32, iterations=1, init="content")
    plain = engine.stylize(content_image, style_image, RunSettings(**options))
    other = engine.stylize(content_image, style_image, RunSettings(content_layer="block4_conv2", style_layers="fine",
                           **options))
    assert np.abs(plain.pixels - other.pixels).mean() > 0.5


@pytest.mark.parametrize("options, message", [
    (dict(style_blend_weights=[1]), "1 weight for 2 style images"),
    (dict(style_blend_weights=[0, 0]), "at least one style image's weight"),
    (dict(style_blend_weights="1,-2"), "finite numbers >= 0"),
    (dict(preserve_colors="sepia"), "preserve_colors must be none, luminance or histogram"),
    (dict(content_layer="block3_conv1"), "content_layer must be block5_conv2 or block4_conv2"),
    (dict(style_layers="coarse"), "not a VGG19 layer"),
])
def test_bad_colour_and_style_settings_are_refused_before_any_work(engine, content_image, style_image, options,
                                                                   message):
    settings = dict(options)
    blend = settings.pop("style_blend_weights", None)
    with pytest.raises(SettingsError, match=message):
        engine.stylize(content_image, [style_image, style_image], RunSettings(rows=32, iterations=1, **settings),
                       style_blend_weights=blend)


def test_blend_weights_parse_from_text():
    assert parse_style_blend("0.7, 0.3", 2) == (0.7, 0.3)
    with pytest.raises(SettingsError, match="is not a number"):
        parse_style_blend("0.7;0.3")
