"""The engine's options for benchmarks and tools: L-BFGS's memory and the evaluation hook (stylize keywords)."""

import numpy as np
import pytest

import stylecore
from stylecore import RunSettings, SettingsError

# One size, from the photo, float32: two iterations (about 41 evaluations) at 48×64.
SETTINGS = RunSettings(rows=48, start_rows=48, iterations=2, init="content", precision="float32")


def test_the_options_are_checked_before_anything_is_computed(content_image, style_image):
    engine = stylecore.Engine()  # nothing is built: the checks come first
    for memory in (0, -3, 2.5, True, "10"):
        with pytest.raises(SettingsError, match="lbfgs_memory"):
            engine.stylize(content_image, style_image, SETTINGS, lbfgs_memory=memory)
    with pytest.raises(SettingsError, match="on_evaluation must be callable"):
        engine.stylize(content_image, style_image, SETTINGS, on_evaluation="print")


@pytest.mark.backends
def test_the_lbfgs_memory_changes_the_optimiser_and_the_same_memory_repeats_exactly(engine, content_image,
                                                                                    style_image):
    def run(**options):
        return engine.stylize(content_image, style_image, SETTINGS, **options)

    short, again, default = run(lbfgs_memory=3), run(lbfgs_memory=3), run()
    assert np.array_equal(short.pixels, again.pixels) and short.loss == again.loss
    assert short.evaluations == again.evaluations
    assert not np.array_equal(short.pixels, default.pixels)  # 3 steps kept, not the default's 30
    assert short.loss != default.loss
    # The default is the engine's own choice, so asking for it explicitly changes nothing.
    from stylecore.engine import lbfgs_memory

    explicit = run(lbfgs_memory=lbfgs_memory(48 * 64 * 3))
    assert np.array_equal(explicit.pixels, default.pixels)


@pytest.mark.backends
def test_the_evaluation_hook_sees_every_evaluation_with_its_seconds(engine, content_image, style_image):
    calls = []
    result = engine.stylize(content_image, style_image, SETTINGS,
                            on_evaluation=lambda seconds, evaluations: calls.append((seconds, evaluations)))
    assert all(seconds > 0 for seconds, _ in calls)
    assert sum(evaluations for _, evaluations in calls) == result.evaluations
    if engine.backend == "tensorflow":
        # scipy's L-BFGS on the host: one call per loss-and-gradient evaluation, each timed alone.
        assert len(calls) == result.evaluations and {evaluations for _, evaluations in calls} == {1}
    else:
        # JAX: the start image's evaluation, then one call per compiled iteration with its count.
        assert calls[0][1] == 1 and len(calls) == 1 + SETTINGS.iterations


@pytest.mark.backends
def test_the_evaluation_hook_can_stop_the_run_before_its_iteration_ends(engine, content_image, style_image):
    calls, reports = [], []

    def stop(seconds, evaluations):
        calls.append(evaluations)
        return True  # ignored before the first report: the callback has its say then

    result = engine.stylize(content_image, style_image, SETTINGS, lambda report: reports.append(report.iteration),
                            on_evaluation=stop)
    assert result.stopped and result.evaluations == sum(calls)
    if engine.backend == "tensorflow":
        # On the host: at the evaluation after the start image's report, 19 before iteration 1.
        assert reports == [0] and result.last_iteration == 0 and result.evaluations == 2
    else:
        # JAX: after the compiled iteration it was told in, and its report.
        assert reports == [0, 1] and result.last_iteration == 1 and len(calls) == 2
    assert np.isfinite(result.loss) and result.image.shape[0] == SETTINGS.rows


def test_the_evaluation_hook_is_called_by_adam_too(engine, content_image, style_image):
    calls = []
    settings = SETTINGS.replace(optimizer="adam", iterations=1)
    result = engine.stylize(content_image, style_image, settings, on_evaluation=lambda s, n: calls.append((s, n)))
    assert len(calls) == result.evaluations and all(s > 0 and n == 1 for s, n in calls)
