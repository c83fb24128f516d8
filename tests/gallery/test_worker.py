"""Real `manage.py worker` (qcluster) processes against the test database: launch, kill, resume.

Each worker start imports TensorFlow and builds VGG19 in the forked worker, so these tests start
three clusters in all and keep runs tiny (48–64 rows, a few iterations).
"""
import signal
import time
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ, Task

from gallery import queue
from gallery.models import Iteration, Run
from tests.workers import kill_worker, start_worker, stop_worker, wait_until, worker_env_for_test_db

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TINY_FORM = {
    "content_weight": "1",
    "style_weight": "0.001",
    "tv_weight": "0.001",
    "iterations": "3",
    "rows": "64",
    "save_every": "1",
    "style_fit": "crop",
    "optimizer": "lbfgs",
    "init": "content",
    "seed": "",
}


def run_tasks():
    return Task.objects.filter(func=queue.EXECUTE_RUN)


def finished(*run_ids):
    return not Run.objects.filter(id__in=run_ids, status__in=Run.ACTIVE).exists()


def saved_numbers(run):
    return list(Iteration.objects.filter(run=run).order_by("number").values_list("number", flat=True))


def assert_files_exist(run):
    run.refresh_from_db()
    names = [run.base_image.name, run.style_image.name]
    for iteration in run.saved_iterations.all():
        names += [iteration.image.name, iteration.thumbnail.name]
    assert all(name and default_storage.exists(name) for name in names)


def start_worker_mid_run(env, run, log):
    """Start a worker for the run and return it once the run has saved iteration 2 (stopped if not)."""
    worker = start_worker(env, log)
    try:
        wait_until(lambda: Iteration.objects.filter(run=run, number__gte=2).exists(), timeout=180, worker=worker,
                   log_path=log)
    except BaseException:
        kill_worker(worker)
        raise
    return worker


def finish_with_a_new_worker(env, run, log, *others):
    worker = start_worker(env, log)
    try:
        wait_until(lambda: finished(run.id, *[other.id for other in others]), timeout=400, worker=worker, log_path=log)
    finally:
        stop_worker(worker)
    for each in (run, *others):
        each.refresh_from_db()


def test_runs_launched_through_the_form_are_computed_once_each(owner_client, project, settings, tmp_path):
    for _ in range(2):
        response = owner_client.post(reverse("run_create", args=[project.id]), TINY_FORM)
        assert response.status_code == 302
    first, second = Run.objects.order_by("id")
    queue.enqueue_run(first.id)  # the broker delivers one of them twice
    log = tmp_path / "worker.log"

    worker = start_worker(worker_env_for_test_db(settings.MEDIA_ROOT, Q_WORKERS=2), log)
    try:
        wait_until(lambda: finished(first.id, second.id), timeout=240, worker=worker, log_path=log)
        wait_until(lambda: run_tasks().count() == 3, timeout=30, worker=worker, log_path=log)
    finally:
        stop_worker(worker)

    for run in (first, second):
        run.refresh_from_db()
        assert (run.status, run.error) == (Run.Status.DONE, "")
        assert run.attempts == 1
        assert run.device.startswith(("CPU (", "GPU"))
        assert saved_numbers(run) == [0, 1, 2, 3]
        assert_files_exist(run)
    # The duplicate found its run claimed and exited (a worker may also take a waiting run itself).
    assert "skipped" in run_tasks().values_list("result", flat=True)
    assert not OrmQ.objects.exists()  # every delivery acknowledged
    page = owner_client.get(reverse("run_progress", args=[first.id])).json()
    assert page["status"] == "done" and [item["number"] for item in page["saved"]] == [0, 1, 2, 3]


def test_a_killed_worker_is_resumed_from_the_last_saved_iteration(project, settings, tmp_path):
    stale_after = 6
    env = worker_env_for_test_db(settings.MEDIA_ROOT, RUN_STALE_AFTER_SECONDS=stale_after)
    run = Run.objects.create(project=project, rows=48, iterations=8, save_every=2)
    # The same settings, computed without interruption (after the killed run, by the second worker).
    twin = Run.objects.create(project=project, rows=48, iterations=8, save_every=2)
    queue.enqueue_run(run.id)
    queue.enqueue_run(twin.id)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"

    kill_worker(start_worker_mid_run(env, run, first_log))  # SIGKILL to the whole process group, mid-run

    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING and run.iterations_done < run.iterations
    before = dict(Iteration.objects.filter(run=run).values_list("number", "id"))
    evaluations_before = max(Iteration.objects.filter(run=run).values_list("evaluations", flat=True))
    wait_until(
        lambda: Run.objects.filter(id=run.id, heartbeat__lt=timezone.now() - timedelta(seconds=stale_after)).exists(),
        timeout=stale_after + 10,
    )

    finish_with_a_new_worker(env, run, second_log, twin)

    assert (run.status, run.error) == (Run.Status.DONE, "")
    assert run.attempts == 2
    # Resumed from the exact float checkpoint, the run ends within 1 % of the uninterrupted one.
    assert (twin.status, twin.attempts) == (Run.Status.DONE, 1)
    assert abs(run.loss - twin.loss) <= 0.01 * twin.loss, (run.loss, twin.loss)
    assert saved_numbers(run) == [0, 2, 4, 6, 8]
    kept = dict(Iteration.objects.filter(run=run, number__in=before).values_list("number", "id"))
    assert kept == before  # nothing saved before the kill was lost or written again
    assert run.evaluations > evaluations_before
    assert_files_exist(run)
    assert "Resumed 1 run" in second_log.read_text()


def test_a_worker_stopped_with_sigterm_exits_at_once_and_its_run_resumes_elsewhere(project, settings, tmp_path):
    env = worker_env_for_test_db(settings.MEDIA_ROOT)
    run = Run.objects.create(project=project, rows=48, iterations=16, save_every=2)
    queue.enqueue_run(run.id)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"

    worker = start_worker_mid_run(env, run, first_log)
    try:
        stopping = time.monotonic()
        worker.send_signal(signal.SIGTERM)  # to the cluster's main process only, as systemd's KillMode=mixed
        worker.wait(timeout=30)
        assert time.monotonic() - stopping < 30
    finally:
        stop_worker(worker)

    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED and run.iterations_done < run.iterations
    assert run.error == ""
    before = dict(Iteration.objects.filter(run=run).values_list("number", "id"))

    finish_with_a_new_worker(env, run, second_log)

    assert (run.status, run.error) == (Run.Status.DONE, "")
    assert saved_numbers(run) == list(range(0, 17, 2))
    kept = dict(Iteration.objects.filter(run=run, number__in=before).values_list("number", "id"))
    assert kept == before
