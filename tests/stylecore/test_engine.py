"""The engine on tiny images with the real VGG19 weights: losses, optimisers, callbacks, errors."""

import math
import subprocess
import sys

import numpy as np
import pytest

import stylecore
from stylecore import RunSettings
from stylecore.settings import PREVIEW_ALPHA
from stylecore.images import resize
from stylecore.samples import landscape, swirls


def collect(reports):
    def callback(report):
        reports.append(report)
    return callback


def test_importing_stylecore_does_not_import_tensorflow_or_keras():
    code = ("import stylecore, sys; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_defaults_are_readable_as_attributes_and_a_dict():
    assert stylecore.DEFAULTS.rows == 400
    assert stylecore.DEFAULTS.as_dict()["iterations"] == 20
    assert stylecore.DEFAULTS.save_every == 10
    assert (stylecore.DEFAULTS.style_fit, stylecore.DEFAULTS.optimizer) == ("crop", "lbfgs")
    assert (stylecore.DEFAULTS.init, stylecore.DEFAULTS.precision, stylecore.DEFAULTS.start_rows) == (
        "content", "auto", stylecore.DEFAULTS.rows)  # one size, from the photo
    assert stylecore.DEFAULTS.adain_alpha == 0.2
    assert PREVIEW_ALPHA == 1.0
    assert all(weight > 0 for weight in stylecore.DEFAULTS.weights)


def test_engine_reports_its_device_and_backend(engine):
    assert engine.backend in ("tensorflow", "jax")
    assert engine.device in (f"CPU ({engine.backend})",) or engine.device.startswith("GPU:0")
    assert engine.device.endswith(f"({engine.backend})")


@pytest.mark.backends
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_the_loss_falls_over_a_few_iterations(engine, content_image, style_image, optimizer):
    reports = []
    result = engine.stylize(content_image, style_image, RunSettings(rows=64, iterations=3, optimizer=optimizer),
                            collect(reports))
    losses = [r.loss for r in reports]
    assert len(losses) == 4
    assert losses[-1] < 0.8 * losses[0], losses
    assert result.loss == pytest.approx(losses[-1])
    assert result.image.shape == (64, 85, 3) and result.image.dtype == np.uint8
    for r in reports:
        assert r.loss == pytest.approx(
            stylecore.DEFAULTS.content_weight * r.content_loss
            + stylecore.DEFAULTS.style_weight * r.style_loss
            + stylecore.DEFAULTS.tv_weight * r.tv_loss, rel=1e-4)
    # The image moved away from the content picture towards the style.
    assert np.abs(result.image.astype(int) - reports[0].image().astype(int)).mean() > 2


@pytest.mark.backends
def test_lbfgs_brings_pixels_pushed_beyond_black_back(engine, monkeypatch):
    """A near-black photo under a bright style: L-BFGS steps many pixels beyond black. Without a pull
    back (``BOUND_PULL``) such a pixel has no gradient and stays black for good: a quarter of the
    picture ended black, and the loss stalled 12 % above the pulled run's (measured on both backends)."""
    content = np.rint(landscape(48, 64) * 0.04).astype(np.uint8)  # mean 4.8 of 255
    settings = RunSettings(rows=48, start_rows=48, iterations=10, init="content", precision="float32")

    def run(pull):
        monkeypatch.setattr(stylecore.engine, "BOUND_PULL", pull)
        result = engine.stylize(content, swirls(48, 64), settings)
        return result.loss, (result.image.max(axis=2) == 0).mean()

    pulled_loss, pulled_black = run(stylecore.engine.BOUND_PULL)
    stuck_loss, stuck_black = run(0.0)
    assert stuck_black > 0.15 and pulled_black < 0.02, (stuck_black, pulled_black)
    assert pulled_loss < 0.95 * stuck_loss, (pulled_loss, stuck_loss)


@pytest.mark.backends
def test_the_callback_gets_the_start_and_every_iteration(engine, content_image, style_image):
    reports = []
    result = engine.stylize(content_image, style_image, RunSettings(rows=32, iterations=10), collect(reports),
                            first_iteration=7)
    assert [r.iteration for r in reports] == [7, 8, 9, 10]
    assert reports[0].evaluations == 1
    steps = np.diff([r.evaluations for r in reports])
    assert all(0 < s <= 20 for s in steps), steps
    assert all(b.seconds >= a.seconds for a, b in zip(reports, reports[1:]))
    assert result.iterations_done == 3 and result.last_iteration == 10
    assert not result.stopped
    assert result.evaluations == reports[-1].evaluations
    np.testing.assert_array_equal(result.image, reports[-1].image())


@pytest.mark.backends
def test_returning_true_from_the_callback_stops_the_run(engine, content_image, style_image):
    reports = []

    def callback(report):
        reports.append(report)
        return report.iteration == 1

    result = engine.stylize(content_image, style_image, RunSettings(rows=32, iterations=5), callback)
    assert [r.iteration for r in reports] == [0, 1]
    assert result.stopped and result.iterations_done == 1 and result.last_iteration == 1
    assert result.evaluations <= 21


def test_noise_init_is_reproducible_with_a_seed(engine, content_image, style_image):
    def run(seed, optimizer):
        return engine.stylize(content_image, style_image, RunSettings(rows=32, iterations=1, init="noise", seed=seed,
                              optimizer=optimizer)).image

    for optimizer in ("adam", "lbfgs"):
        first = run(3, optimizer)
        np.testing.assert_array_equal(first, run(3, optimizer))
        assert np.abs(first.astype(int) - run(4, optimizer).astype(int)).mean() > 5


def test_noise_init_starts_from_noise(engine, content_image, style_image):
    reports = []
    engine.stylize(content_image, style_image, RunSettings(rows=32, iterations=1, init="noise", seed=0),
                   collect(reports))
    start = reports[0].image().astype(float)
    assert start.std() > 60  # uniform noise, not a picture


def test_an_init_image_is_the_starting_point(engine, content_image, style_image):
    start = np.zeros((10, 10, 3), dtype=np.uint8)
    start[:] = (250, 20, 200)
    reports = []
    result = engine.stylize(content_image, style_image, RunSettings(rows=32, iterations=41, init="iteration"),
                            collect(reports), start=start, first_iteration=40)
    np.testing.assert_array_equal(reports[0].image(), resize(start, 32, 43))
    assert reports[0].iteration == 40 and result.last_iteration == 41
    # After one iteration the result still leans to the magenta start, unlike a run from the content.
    from_content = engine.stylize(content_image, style_image, RunSettings(rows=32, iterations=1, init="content")).image
    magenta = start[0, 0].astype(int)
    assert (np.abs(result.image.astype(int) - magenta).mean()
            < np.abs(from_content.astype(int) - magenta).mean() - 10)


def test_an_infinite_first_loss_raises_diverged_error_with_the_start_image(
        engine, content_image, style_image, monkeypatch):
    real = engine._loss_and_gradient

    def overflowing(*args):
        total, parts, gradient = real(*args)
        return total * float("inf"), parts, gradient

    monkeypatch.setattr(engine, "_loss_and_gradient", overflowing)
    with pytest.raises(stylecore.DivergedError, match="loss became inf") as caught:
        engine.stylize(content_image, style_image, RunSettings(rows=32, iterations=2, style_weight=1e12,
                       init="content"))
    assert caught.value.iteration == 0
    assert "style 1e+12" in str(caught.value)
    np.testing.assert_array_equal(caught.value.last_image, resize(content_image, 32, 43))


def test_a_weight_beyond_float32_is_refused_before_any_work(engine, content_image, style_image):
    with pytest.raises(stylecore.SettingsError, match="from 0 to 1e\\+12"):
        engine.stylize(content_image, style_image, RunSettings(rows=32, iterations=1, style_weight=1e38))


def test_a_content_image_too_narrow_for_vgg19_is_refused_clearly(engine, style_image):
    with pytest.raises(stylecore.SettingsError, match="64×8 pixels"):
        engine.stylize(np.zeros((256, 32, 3), np.uint8), style_image, RunSettings(rows=64, iterations=1))


def test_an_infinite_loss_mid_run_keeps_the_last_good_iteration(
        engine, content_image, style_image, monkeypatch):
    real = engine._loss_and_gradient
    calls = []

    def failing(*args):
        total, parts, gradient = real(*args)
        calls.append(1)
        if len(calls) > 30:
            return total * float("inf"), parts, gradient
        return total, parts, gradient

    monkeypatch.setattr(engine, "_loss_and_gradient", failing)
    reports = []
    with pytest.raises(stylecore.DivergedError) as caught:
        engine.stylize(content_image, style_image, RunSettings(rows=32, iterations=3, optimizer="adam"),
                       collect(reports))
    assert caught.value.iteration == 1
    np.testing.assert_array_equal(caught.value.last_image, reports[-1].image())
    assert [r.iteration for r in reports] == [0, 1]


@pytest.mark.parametrize("bad", [
    {"content_weight": -1.0},
    {"style_weight": math.nan},
    {"tv_weight": math.inf},
    {"content_weight": 0, "style_weight": 0, "tv_weight": 0},
    {"style_weight": "lots"},
    {"rows": 8},
    {"iterations": 0},
    {"first_iteration": -1},
    {"style_fit": "stretch"},
    {"optimizer": "sgd"},
    {"init": "nosie"},
    {"seed": -3},
])
def test_bad_settings_raise_settings_error(engine, content_image, style_image, bad):
    settings = dict(bad)
    first_iteration = settings.pop("first_iteration", 0)
    with pytest.raises(stylecore.SettingsError):
        engine.stylize(content_image, style_image, RunSettings(**settings), first_iteration=first_iteration)
    assert issubclass(stylecore.SettingsError, ValueError)


@pytest.mark.slow
def test_lbfgs_makes_progress_at_full_size(engine):
    """At 400×533 the per-pixel gradients of the mean losses are tiny; unscaled, L-BFGS-B's
    first step was lost in float32 rounding and the run stalled on its first image."""
    reports = []
    result = engine.stylize(landscape(300, 400), swirls(300, 300), RunSettings(rows=400, iterations=1), reports.append)
    assert reports[0].evaluations == 1 and reports[-1].iteration == 1
    assert result.image.shape == (400, 533, 3)
    assert result.loss < 0.8 * reports[0].loss
