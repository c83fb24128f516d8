"""Runs with the engine's second-version settings: precision, coarse-to-fine scales, the AdaIN start,
and runs that converge early. Real engine, tiny images."""
import io

import pytest
from django.urls import reverse
from PIL import Image

from gallery import jobs, launching, queue, tasks
from gallery.models import RUN_DEFAULTS, LossPoint, Run


def stored_size(field_file):
    with field_file.open("rb") as handle:
        return Image.open(io.BytesIO(handle.read())).size


def make_run(project, **settings):
    return Run.objects.create(project=project, **{"rows": 48, "iterations": 4, "save_every": 1, **settings})


@pytest.mark.slow
def test_a_coarse_to_fine_run_saves_each_iteration_at_the_size_it_was_computed(project):
    run = make_run(project, start_rows=24, init="content")
    assert tasks.execute_run(run.id) == "done"

    saved = list(Run.objects.get(id=run.id).saved_iterations.all())
    assert [i.number for i in saved] == [0, 1, 2, 3, 4]
    assert saved[0].rows == 24 and saved[-1].rows == 48
    assert [i.rows for i in saved] == sorted(i.rows for i in saved)
    for iteration in saved:
        assert stored_size(iteration.image) == (iteration.width, iteration.rows)
    assert stored_size(saved[-1].image) == (64, 48)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
@pytest.mark.slow
def test_the_run_records_the_precision_it_computed_in(project, precision, let_bfloat16_through):
    let_bfloat16_through(jobs.get_engine())
    run = make_run(project, iterations=1, precision=precision, init="content")
    tasks.execute_run(run.id)
    assert Run.objects.get(id=run.id).precision_used == precision


@pytest.mark.slow
def test_a_run_that_went_on_in_float32_says_so(owner, let_bfloat16_through):
    """A bfloat16 run converges early at 32 rows (its rounding stalls L-BFGS) and goes on in float32:
    the run records both, in order (stylecore's test_a_bfloat16_run_that_converges_early_goes_on_in_float32,
    with its 24 iterations: since L-BFGS pulls pixels stepped beyond their range back, the stall can come
    after iteration 16)."""
    from stylecore.samples import landscape, swirls
    from tests.factories import create_project, png_bytes

    let_bfloat16_through(jobs.get_engine())
    project = create_project(owner, content=png_bytes(landscape(32, 42)), style=png_bytes(swirls(32, 42)))
    run = make_run(project, rows=32, start_rows=32, iterations=24, save_every=4, precision="bfloat16",
                   init="content")
    assert tasks.execute_run(run.id) == "done"
    run = Run.objects.get(id=run.id)
    assert run.precision_used == "bfloat16, then float32" and not run.converged
    assert run.latest_iteration().number == 24


@pytest.mark.slow
def test_auto_precision_is_resolved_by_the_worker(project):
    run = make_run(project, iterations=1, precision="auto", init="content")
    tasks.execute_run(run.id)
    assert Run.objects.get(id=run.id).precision_used == jobs.get_engine().resolve_precision("auto", 48 * 64)


@pytest.mark.slow
def test_an_adain_start_begins_from_the_instant_picture(project):
    run = make_run(project, iterations=1, init="adain", adain_alpha=1.0, precision="float32")
    tasks.execute_run(run.id)
    first = Run.objects.get(id=run.id).saved_iterations.get(number=0)
    # The content image itself would have no content loss; the AdaIN picture is far from it.
    assert first.content_loss > 0.05


@pytest.mark.slow
def test_a_converged_run_is_done_early_keeps_its_last_picture_and_says_so(project):
    """Content loss alone from the content image: nothing can improve, so L-BFGS converges at once."""
    run = make_run(project, iterations=30, save_every=10, init="content", content_weight=1.0,
                   style_weight=0.0, tv_weight=0.0)
    assert tasks.execute_run(run.id) == "done"

    run.refresh_from_db()
    assert run.status == Run.Status.DONE and run.converged
    assert run.iterations_done < 30
    assert run.latest_iteration().number == run.iterations_done


def test_the_launch_form_offers_the_engines_new_settings_with_their_defaults(owner_client, project):
    response = owner_client.get(reverse("run_create", args=[project.id]))
    form = response.context["form"]
    for name in ("init", "precision", "start_rows", "adain_alpha"):
        assert form[name].value() == RUN_DEFAULTS[name]
    html = response.content.decode()
    assert "Instant AdaIN picture" in html and "bfloat16" in html


def test_leaving_out_the_new_settings_launches_with_the_defaults(owner_client, project, monkeypatch):
    monkeypatch.setattr(queue, "async_task", lambda *args, **kwargs: None)
    data = {"content_weight": "1", "style_weight": "0.3", "tv_weight": "0.0001", "iterations": "10",
            "rows": "128", "save_every": "5", "style_fit": "crop", "optimizer": "lbfgs"}
    response = owner_client.post(reverse("run_create", args=[project.id]), data)
    assert response.status_code == 302
    run = Run.objects.get()
    assert (run.init, run.precision, run.start_rows, run.adain_alpha) == tuple(
        RUN_DEFAULTS[name] for name in ("init", "precision", "start_rows", "adain_alpha"))


@pytest.mark.parametrize("changes, field", [
    ({"adain_alpha": "1.5"}, "adain_alpha"),
    ({"adain_alpha": "-0.1"}, "adain_alpha"),
    ({"adain_alpha": "nan"}, "adain_alpha"),
    ({"precision": "int8"}, "precision"),
    ({"start_rows": "8"}, "start_rows"),
    ({"start_rows": "999999999999"}, "start_rows"),
    ({"init": "iteration"}, "init"),
])
def test_bad_engine_settings_are_refused_with_nothing_saved(owner_client, project, changes, field):
    data = {"content_weight": "1", "style_weight": "0.3", "tv_weight": "0.0001", "iterations": "10",
            "rows": "128", "save_every": "5", "style_fit": "crop", "optimizer": "lbfgs", **changes}
    response = owner_client.post(reverse("run_create", args=[project.id]), data)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not Run.objects.exists()


# -- exact resume --------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_latest_saved_iteration_keeps_the_engines_exact_pixels(project):
    import numpy as np

    from gallery import files

    run = make_run(project, iterations=3, init="content")
    tasks.execute_run(run.id)

    saved = list(Run.objects.get(id=run.id).saved_iterations.all())
    assert [bool(i.checkpoint) for i in saved] == [False, False, False, True]  # the latest only
    pixels = files.read_checkpoint(saved[-1].checkpoint)
    assert pixels.dtype == np.float32 and pixels.shape == (48, 64, 3)
    with saved[-1].image.open("rb") as handle:
        png = np.asarray(Image.open(io.BytesIO(handle.read())))
    from stylecore.images import deprocess

    np.testing.assert_array_equal(deprocess(pixels), png)  # the PNG is the checkpoint rounded
    # The launch form's disk estimate is an upper bound on what the finished run keeps.
    from gallery.quotas import estimated_run_bytes

    run.refresh_from_db()
    assert 0 < run.stored_bytes <= estimated_run_bytes(run, 64 / 48)


@pytest.mark.slow
def test_a_resumed_run_starts_from_the_exact_checkpoint(project, monkeypatch):
    import numpy as np

    from gallery import files

    run = make_run(project, iterations=2, init="content")
    tasks.execute_run(run.id)
    checkpoint = files.read_checkpoint(Run.objects.get(id=run.id).latest_iteration().checkpoint)
    # As if the worker had died after iteration 2 of 4.
    Run.objects.filter(id=run.id).update(iterations=4, status=Run.Status.QUEUED)
    engine = jobs.get_engine()
    real, seen = engine.stylize, {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "stylize", spy)
    assert tasks.execute_run(run.id) == "done"

    assert seen["first_iteration"] == 2
    np.testing.assert_array_equal(seen["start"], checkpoint)
    saved = list(Run.objects.get(id=run.id).saved_iterations.all())
    assert [i.number for i in saved] == [0, 1, 2, 3, 4]
    assert [bool(i.checkpoint) for i in saved] == [False] * 4 + [True]


@pytest.mark.slow
def test_every_computed_iteration_keeps_its_losses_and_a_resume_replaces_those_after_the_checkpoint(project):
    run = make_run(project, iterations=3, save_every=10, init="content")
    assert tasks.execute_run(run.id) == "done"
    points = {point.number: point for point in run.loss_points.all()}
    assert sorted(points) == [0, 1, 2, 3]
    for iteration in run.saved_iterations.all():  # 0 and 3
        assert points[iteration.number].loss == pytest.approx(iteration.loss)
        assert points[iteration.number].style_loss == pytest.approx(iteration.style_loss)
    assert points[3].loss < points[1].loss < points[0].loss

    # As if the worker had computed iterations 4 and 6 after saving 3, then died: the resumed
    # attempt computes them again, and the dead attempt's losses go.
    Run.objects.filter(id=run.id).update(iterations=5, status=Run.Status.QUEUED)
    LossPoint.objects.create(run=run, number=4, loss=123.0, content_loss=1, style_loss=1, tv_loss=1)
    LossPoint.objects.create(run=run, number=6, loss=123.0, content_loss=1, style_loss=1, tv_loss=1)
    assert tasks.execute_run(run.id) == "done"
    resumed = list(run.loss_points.all())
    assert [point.number for point in resumed] == [0, 1, 2, 3, 4, 5]
    assert resumed[4].loss != 123.0 and resumed[5].loss == pytest.approx(run.saved_iterations.last().loss)


@pytest.mark.slow
def test_an_unreadable_checkpoint_falls_back_to_the_png(project, monkeypatch):
    run = make_run(project, iterations=1, init="content")
    tasks.execute_run(run.id)
    last = Run.objects.get(id=run.id).latest_iteration()
    with last.checkpoint.open("wb") as handle:
        handle.write(b"not an npz")
    Run.objects.filter(id=run.id).update(iterations=2, status=Run.Status.QUEUED)
    assert tasks.execute_run(run.id) == "done"
    assert Run.objects.get(id=run.id).iterations_done == 2


@pytest.mark.slow
def test_continuing_a_finished_run_copies_its_checkpoint(owner_client, project, monkeypatch):
    import numpy as np

    from gallery import files

    source = make_run(project, iterations=2, init="content")
    tasks.execute_run(source.id)
    monkeypatch.setattr(queue, "async_task", lambda *args, **kwargs: None)
    data = {"content_weight": "1", "style_weight": "0.3", "tv_weight": "0.0001", "iterations": "2",
            "rows": "64", "save_every": "1", "style_fit": "crop", "optimizer": "lbfgs"}
    url = reverse("run_create", args=[project.id]) + f"?from_run={source.id}&from_iteration=2"
    response = owner_client.post(url, data)
    assert response.status_code == 302, response.context["form"].errors
    continued = Run.objects.exclude(id=source.id).get()
    np.testing.assert_array_equal(files.read_checkpoint(continued.init_checkpoint),
                                  files.read_checkpoint(source.saved_iterations.get(number=2).checkpoint))


@pytest.mark.slow
def test_a_run_blends_two_style_images_and_keeps_the_photos_colours(project, monkeypatch):
    """The worker hands the run's own style copies, blend and colour settings to the engine."""
    import numpy as np

    from gallery import styles
    from stylecore.colour import to_ycbcr
    from tests.factories import make_image

    monkeypatch.setattr(queue, "async_task", lambda *args, **kwargs: None)
    styles.add_style(project, Image.open(io.BytesIO(make_image(50, 40, seed=7))).convert("RGB"))
    run = Run(project=project, rows=48, iterations=1, save_every=1, init="content", precision="float32",
              preserve_colors="luminance", style_blend="0.5,0.5", style_scale=0.5, content_layer="block4_conv2",
              style_layers="fine")
    launching.launch_run(run, style_slots=project.style_slots())
    assert tasks.execute_run(run.id) == "done"

    run = Run.objects.get(id=run.id)
    assert stored_size(run.style_image) == (32, 24)  # the first style as the engine saw it: half size
    with run.style_image.open("rb") as handle:
        seen = np.asarray(Image.open(io.BytesIO(handle.read())).convert("RGB")).astype(int)
    assert (seen[..., 0] == seen[..., 1]).all()  # grey: luminance only
    with run.base_image.open("rb") as base_file, run.saved_iterations.get(number=1).image.open("rb") as out_file:
        base = np.asarray(Image.open(io.BytesIO(base_file.read())).convert("RGB"))
        result = np.asarray(Image.open(io.BytesIO(out_file.read())).convert("RGB"))
    assert np.abs(to_ycbcr(result)[..., 1:] - to_ycbcr(base)[..., 1:]).mean() < 1.5
