"""gallery.tasks in the test process: real engine, tiny images (48 rows), a few iterations."""
import io
import re
from datetime import timedelta
from dataclasses import replace

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from gallery import cleanup, files, jobs, launching, queue, recovery, tasks
from gallery.models import Iteration, Run
from tests.engines import EngineProxy, StandIn, real_engine
from tests.factories import TINY, create_project, make_run


def stored_image(field_file):
    with field_file.open("rb") as handle:
        return Image.open(io.BytesIO(handle.read()))


def test_the_run_fields_default_to_the_engines_defaults_and_have_their_migration(db):
    import stylecore

    assert Run().settings == stylecore.DEFAULTS
    call_command("makemigrations", "gallery", "--check", "--dry-run", verbosity=0)


def test_a_changed_default_needs_no_migration(db, monkeypatch):
    from stylecore.schema import SETTING

    monkeypatch.setitem(SETTING, "style_weight", replace(SETTING["style_weight"], default=0.5))
    assert Run().style_weight == 0.5
    call_command("makemigrations", "gallery", "--check", "--dry-run", verbosity=0)


@pytest.mark.slow
def test_it_saves_iteration_zero_every_nth_and_the_last(project):
    run = make_run(project, iterations=3, save_every=2)

    assert tasks.execute_run(run.id) == "done"

    run.refresh_from_db()
    assert run.status == Run.Status.DONE
    assert run.error == ""
    assert [i.number for i in run.saved_iterations.all()] == [0, 2, 3]
    assert run.iterations_done == 3
    assert run.attempts == 1
    assert run.device.startswith(("CPU (", "GPU"))
    assert run.started <= run.finished
    assert run.seconds_per_iteration > 0
    last = run.latest_iteration()
    assert run.evaluations == last.evaluations > 3
    assert run.elapsed_seconds == pytest.approx(last.seconds)
    assert run.loss == pytest.approx(last.loss)


@pytest.mark.slow
def test_each_saved_iteration_has_a_png_a_jpeg_thumbnail_and_its_losses(project):
    run = make_run(project, iterations=2)
    tasks.execute_run(run.id)

    iterations = list(Run.objects.get(id=run.id).saved_iterations.all())
    assert [i.number for i in iterations] == [0, 1, 2]
    for iteration in iterations:
        image = stored_image(iteration.image)
        assert (image.format, image.size) == ("PNG", (64, 48))
        assert stored_image(iteration.thumbnail).format == "JPEG"
        assert iteration.loss > 0 and iteration.content_loss >= 0 and iteration.style_loss > 0 and iteration.tv_loss > 0
        assert iteration.loss == pytest.approx(
            run.content_weight * iteration.content_loss + run.style_weight * iteration.style_loss
            + run.tv_weight * iteration.tv_loss,
            rel=1e-3,
        )
    assert iterations[0].content_loss == pytest.approx(0, abs=1e-6)  # starts as the content image
    assert iterations[-1].loss < iterations[0].loss
    assert [i.evaluations for i in iterations] == sorted(i.evaluations for i in iterations)


@pytest.mark.slow
def test_it_keeps_the_base_and_style_images_as_the_engine_sees_them(project):
    run = make_run(project, iterations=1)
    tasks.execute_run(run.id)

    run.refresh_from_db()
    base, style = stored_image(run.base_image), stored_image(run.style_image)
    assert base.size == style.size == (64, 48)
    first = np.asarray(stored_image(run.saved_iterations.get(number=0).image))
    assert np.abs(first.astype(int) - np.asarray(base).astype(int)).max() <= 1


def test_the_label_is_the_notebook_folder_name(project):
    run = make_run(project, tv_weight=0.1, style_weight=1000, content_weight=1, optimizer="adam")
    assert run.label == "0.1_1000_1_48px_adam"
    run = make_run(project, tv_weight=0.1, style_weight=1000, content_weight=1, init="adain")
    assert run.label == "0.1_1000_1_48px_adain"  # a start other than the default's photo is named


@pytest.mark.slow
def test_a_continued_run_starts_from_the_saved_iteration_image(project, queued):
    first = make_run(project, iterations=2)
    tasks.execute_run(first.id)
    source = first.saved_iterations.get(number=2)

    second = launching.launch_run(Run(project=project, **{**TINY, "iterations": 1}), init_iteration=source)
    assert queued == [second.id]
    assert second.init == Run.Init.ITERATION and second.init_iteration == source
    assert second.label.endswith("_cont")
    source_pixels = np.asarray(stored_image(source.image))
    assert np.array_equal(np.asarray(stored_image(second.init_image)), source_pixels)

    first.delete()  # the continued run keeps its own copy of the starting image
    tasks.execute_run(second.id)

    second.refresh_from_db()
    assert second.status == Run.Status.DONE
    assert second.init_iteration is None
    start = np.asarray(stored_image(second.saved_iterations.get(number=0).image))
    assert np.abs(start.astype(int) - source_pixels.astype(int)).max() <= 1


@pytest.mark.slow
def test_a_noise_start_is_repeatable_with_a_seed(project):
    runs = [make_run(project, iterations=1, init="noise", seed=7) for _ in range(2)]
    for run in runs:
        tasks.execute_run(run.id)
    first, second = (np.asarray(stored_image(run.saved_iterations.get(number=0).image)) for run in runs)
    assert np.array_equal(first, second)


@pytest.mark.slow
def test_a_duplicate_delivery_exits_at_once(project):
    run = make_run(project, iterations=1)
    tasks.execute_run(run.id)

    assert tasks.execute_run(run.id) == "skipped"
    run.refresh_from_db()
    assert run.attempts == 1
    assert run.saved_iterations.count() == 2


@pytest.mark.slow
def test_a_worker_then_takes_the_runs_still_queued(project):
    first, second = make_run(project, iterations=1), make_run(project, iterations=1)

    assert tasks.execute_run(first.id) == "done"

    assert Run.objects.get(id=second.id).status == Run.Status.DONE
    assert tasks.execute_run(second.id) == "skipped"  # its own task, delivered later


def test_a_run_whose_task_was_lost_gets_a_new_one_even_while_another_runs(project, queued):
    make_run(project, status=Run.Status.RUNNING, heartbeat=timezone.now(), attempts=1)
    waiting = make_run(project)
    Run.objects.filter(id=waiting.id).update(created=timezone.now() - timedelta(hours=1))

    recovery.recover()
    recovery.recover()  # once: it now has a task, and waits for it
    assert queued == [waiting.id]


def test_a_run_that_waited_gets_a_token_although_the_broker_holds_tasks(project, other, queued, monkeypatch):
    """The prefetch case: the broker still counts tasks (another cluster's, or spare ones) while the
    run's own token went down with a killed cluster that had prefetched it."""
    from django_q.brokers import orm

    waiting = make_run(project)
    Run.objects.filter(id=waiting.id).update(created=timezone.now() - timedelta(hours=1))
    make_run(create_project(other))  # just launched: its token is in the broker
    monkeypatch.setattr(orm.ORM, "queue_size", lambda self: 5)

    recovery.recover()
    assert queued == [waiting.id]
    recovery.recover()  # one token per cutoff: it now waits for this one
    assert queued == [waiting.id]

    Run.objects.filter(id=waiting.id).update(heartbeat=timezone.now() - timedelta(hours=1))
    recovery.recover()  # still unclaimed a cutoff later: another token
    assert queued == [waiting.id, waiting.id]


def test_the_wake_up_gives_no_token_to_a_user_at_the_running_limit(project, other, queued, settings):
    settings.USER_MAX_RUNNING_RUNS = 1
    long_ago = timezone.now() - timedelta(hours=1)
    make_run(project, status=Run.Status.RUNNING, heartbeat=timezone.now(), attempts=1)
    mine = [make_run(project) for _ in range(2)]
    theirs = [make_run(create_project(other)) for _ in range(2)]
    Run.objects.filter(id__in=[run.id for run in mine + theirs]).update(created=long_ago)

    recovery.recover()
    assert queued == [theirs[0].id]  # one start left for them, none for me


def test_a_cancelled_queued_run_is_never_started(project):
    run = make_run(project, status=Run.Status.CANCELLED, cancel_requested=True)

    assert tasks.execute_run(run.id) == "skipped"
    assert not Run.objects.get(id=run.id).saved_iterations.exists()


@pytest.mark.slow
def test_a_cancelled_run_stops_within_its_iteration(project, monkeypatch):
    """The cancel is looked up between evaluations, not only when an iteration ends."""
    monkeypatch.setattr(jobs, "STOP_CHECK_SECONDS", 0.0)
    run = make_run(project, iterations=6)
    evaluations = []

    class Counting(EngineProxy):
        def stylize(self, *args, on_evaluation, **kwargs):
            def counted(seconds, count):
                evaluations.append(count)
                return on_evaluation(seconds, count)

            return super().stylize(*args, on_evaluation=counted, **kwargs)

    def cancel_after(number):
        if number == 1:
            Run.objects.filter(id=run.id).update(cancel_requested=True)
            evaluations.clear()

    monkeypatch.setattr(jobs, "get_engine", lambda: Counting(cancel_after))
    assert tasks.execute_run(run.id) == "cancelled"

    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED and run.iterations_done == 1
    assert run.finished is not None
    assert [i.number for i in run.saved_iterations.all()] == [0, 1]
    assert evaluations == [1]  # iteration 2's first evaluation, of its 20, was the last


@pytest.mark.slow
def test_a_run_cancelled_between_its_saves_keeps_the_iteration_it_reached_and_goes_on_from_there(
        owner_client, project, monkeypatch, queued):
    """Cancelled in iteration 4 of 10, saving every 10th: iteration 3 is kept, exact pixels and all."""
    monkeypatch.setattr(jobs, "STOP_CHECK_SECONDS", 0.0)
    run = make_run(project, rows=64, iterations=10, save_every=10)  # the launch form's least rows

    def cancel_after(number):
        if number == 3:
            Run.objects.filter(id=run.id).update(cancel_requested=True)

    monkeypatch.setattr(jobs, "get_engine", lambda: EngineProxy(cancel_after))
    assert tasks.execute_run(run.id) == "cancelled"

    run.refresh_from_db()
    assert (run.status, run.iterations_done) == (Run.Status.CANCELLED, 3)
    assert [i.number for i in run.saved_iterations.all()] == [0, 3]
    kept = run.saved_iterations.get(number=3)
    image = stored_image(kept.image)
    assert (image.format, image.size, stored_image(kept.thumbnail).format) == ("PNG", (85, 64), "JPEG")
    assert (kept.loss, kept.evaluations) == (pytest.approx(run.loss), run.evaluations)
    page = owner_client.get(reverse("run_detail", args=[run.id])).content.decode()
    assert "This run was cancelled at iteration 3. Its saved iterations are kept, iteration 3 included." in page
    assert "Continue from iteration 3" in page

    form = owner_client.get(kept.continue_url).context["form"]
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    response = owner_client.post(kept.continue_url, {**data, "iterations": 1})
    assert response.status_code == 302, response.context["form"].errors
    continued = Run.objects.get(init_iteration=kept)
    np.testing.assert_array_equal(files.read_checkpoint(continued.init_checkpoint),
                                  files.read_checkpoint(kept.checkpoint))
    monkeypatch.setattr(jobs, "get_engine", real_engine)
    assert tasks.execute_run(continued.id) == "done"
    start = continued.saved_iterations.get(number=0)
    assert start.loss == pytest.approx(kept.loss, rel=1e-5)  # it goes on from where the cancel left it


@pytest.mark.slow
def test_a_run_that_had_its_turn_pauses_for_another_users_run_then_goes_on(project, other, settings, queued):
    """Runs take turns: one user's long run does not keep another's waiting until it ends."""
    settings.RUN_TURN_SECONDS = 0  # every turn is over after an iteration
    mine = make_run(project, iterations=3, save_every=10)  # saves 0 and 3 on its own
    theirs = make_run(create_project(other), iterations=1)

    claimed = queue.claim_next_run()
    assert claimed.id == mine.id  # launched first
    assert jobs.compute(claimed) == "paused"

    mine.refresh_from_db()
    assert (mine.status, mine.iterations_done, mine.attempts) == (Run.Status.QUEUED, 1, 1)
    paused_at = mine.saved_iterations.get(number=1)  # saved for the pause, with its exact pixels
    assert [i.number for i in mine.saved_iterations.all()] == [0, 1] and paused_at.checkpoint
    assert mine.notice.startswith("Paused at iteration 1 of 3 after ")
    assert "so that another user's waiting run could start. It goes on from iteration 1" in mine.notice
    assert mine.queued_since > Run.objects.get(id=theirs.id).queued_since
    assert queued == [mine.id]

    # The worker's chain: theirs first (mine is behind it now), then mine again, from iteration 1.
    # Nobody waits any more, so mine computes to its end.
    assert tasks.execute_run(mine.id) == "done"
    theirs.refresh_from_db()
    mine.refresh_from_db()
    assert theirs.status == mine.status == Run.Status.DONE
    assert theirs.finished <= mine.claimed
    assert (mine.attempts, mine.iterations_done, mine.notice) == (2, 3, "")
    saved = list(mine.saved_iterations.all())
    assert [i.number for i in saved] == [0, 1, 3]
    assert saved[1].id == paused_at.id and saved[2].evaluations > paused_at.evaluations
    assert saved[2].loss < paused_at.loss


@pytest.mark.slow
def test_a_run_does_not_pause_for_its_owners_other_runs(project, settings, queued):
    settings.RUN_TURN_SECONDS = 0
    first, second = make_run(project, iterations=2), make_run(project, iterations=1)
    assert jobs.compute(queue.claim_next_run()) == "done"
    assert Run.objects.get(id=first.id).attempts == 1
    assert Run.objects.get(id=second.id).status == Run.Status.QUEUED


@pytest.mark.slow
def test_the_run_records_the_evaluations_of_the_iteration_in_progress(project, monkeypatch):
    monkeypatch.setattr(jobs, "STOP_CHECK_SECONDS", 0.0)
    monkeypatch.setattr(jobs, "PROGRESS_SECONDS", 0.0)
    run = make_run(project, iterations=2, save_every=1, start_rows=TINY["rows"], init="content")
    seen = []

    class Watching(EngineProxy):
        def stylize(self, *args, on_evaluation, **kwargs):
            def watched(seconds, count):
                stop = on_evaluation(seconds, count)
                seen.append(Run.objects.values_list("iterations_done", "next_iteration_evaluations",
                                                    "elapsed_seconds").get(id=run.id))
                return stop

            return super().stylize(*args, on_evaluation=watched, **kwargs)

    monkeypatch.setattr(jobs, "get_engine", lambda: Watching(lambda number: None))
    assert tasks.execute_run(run.id) == "done"

    # The start image's evaluation, before iteration 0 is reported; then 1 … 19 of each iteration
    # (its 20th is reported as the iteration, which sets the count back to 0).
    counts = [(done, evaluations) for done, evaluations, _ in seen]
    assert counts[:1] == [(0, 1)]
    assert counts[1:20] == [(0, k) for k in range(1, 20)] and counts[20] == (0, 20)
    assert counts[21:40] == [(1, k) for k in range(1, 20)]
    elapsed = [seconds for _, _, seconds in seen[21:40]]  # the clock moves inside the iteration too
    assert elapsed == sorted(elapsed) and elapsed[-1] > elapsed[0] > 0
    assert Run.objects.values_list("iterations_done", "next_iteration_evaluations").get(id=run.id) == (2, 0)


@pytest.mark.slow
def test_a_worker_that_lost_its_run_stops_without_writing(project, monkeypatch):
    monkeypatch.setattr(jobs, "STOP_CHECK_SECONDS", 0.0)  # found at the next evaluation
    run = make_run(project, iterations=6)

    def another_worker_claims(number):
        if number == 1:
            Run.objects.filter(id=run.id).update(attempts=F("attempts") + 1)

    monkeypatch.setattr(jobs, "get_engine", lambda: EngineProxy(another_worker_claims))
    assert tasks.execute_run(run.id) == "lost"

    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING  # left to its new owner
    assert [i.number for i in run.saved_iterations.all()] == [0, 1]
    # base, style, 2 × (image, thumb) and the checkpoint of the latest saved iteration
    assert len(list(default_storage.listdir("runs")[1])) == 2 + 2 * 2 + 1


@pytest.mark.slow
def test_a_diverging_run_is_marked_failed_with_the_engines_message(project, monkeypatch):
    engine = jobs.get_engine()
    engine._ensure_model()
    real = engine._loss_and_gradient

    def overflowing(*args):
        total, parts, gradient = real(*args)
        return total * float("inf"), parts, gradient

    monkeypatch.setattr(engine, "_loss_and_gradient", overflowing)
    run = make_run(project)

    assert tasks.execute_run(run.id) == "failed"

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert "The loss became" in run.error
    assert run.finished is not None


def test_a_broken_image_file_fails_the_run_with_a_readable_message(project):
    with default_storage.open(project.content_image.name, "wb") as handle:
        handle.write(b"this is not a picture")
    run = make_run(project)

    tasks.execute_run(run.id)

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error.startswith("Content image: Cannot read image")
    assert not run.saved_iterations.exists()


def test_a_run_too_large_for_the_machine_fails_at_once_saying_how_many_rows_fit(project, monkeypatch):
    monkeypatch.setenv("STYLECORE_MEMORY_LIMIT", "2G")
    run = make_run(project, rows=2048)

    assert tasks.execute_run(run.id) == "failed"

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert re.match(r"A 2048×\d+-pixel picture needs about \d+ GB of memory to compute, and this machine lets a "
                    r"run use 1\.9 GB\. Use at most \d+ rows", run.error), run.error
    assert not run.base_image and not run.style_image and not run.saved_iterations.exists()


class _OutOfMemoryEngine(StandIn):
    device = "GPU:0 Test"

    def stylize(self, *args, **kwargs):
        raise MemoryError()


def test_running_out_of_memory_retries_then_fails_the_run_and_suggests_fewer_rows(project, monkeypatch, settings):
    settings.RUN_MAX_INFRA_RETRIES = 2
    monkeypatch.setattr(jobs, "get_engine", lambda: _OutOfMemoryEngine())
    run = make_run(project, rows=2048)

    assert tasks.execute_run(run.id) == "retry"
    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED
    assert run.notice.startswith("Waiting to retry after running out of memory")
    Run.objects.filter(id=run.id).update(not_before=timezone.now())
    assert tasks.execute_run(run.id) == "failed"

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert "ran out of memory at 2048 rows" in run.error


def _stale(run, **fields):
    long_ago = timezone.now() - timedelta(hours=1)
    Run.objects.filter(id=run.id).update(status=Run.Status.RUNNING, heartbeat=long_ago, **fields)


@pytest.mark.slow
def test_a_stale_run_resumes_from_its_last_saved_iteration(project, monkeypatch, queued):
    run = make_run(project, iterations=5, save_every=2)

    def worker_dies(number):
        if number == 3:
            raise KeyboardInterrupt  # stands in for SIGKILL: nothing after this runs

    monkeypatch.setattr(jobs, "get_engine", lambda: EngineProxy(worker_dies))
    with pytest.raises(KeyboardInterrupt):
        tasks.execute_run(run.id)
    before = {i.number: i for i in Run.objects.get(id=run.id).saved_iterations.all()}
    assert sorted(before) == [0, 2]
    _stale(run)
    monkeypatch.undo()
    monkeypatch.setattr(queue, "async_task", lambda func, run_id, **kwargs: tasks.execute_run(run_id))

    assert recovery.recover() == 1

    run.refresh_from_db()
    assert run.status == Run.Status.DONE
    assert run.attempts == 2
    after = list(run.saved_iterations.all())
    assert [i.number for i in after] == [0, 2, 4, 5]
    assert {i.number: i.id for i in after if i.number in before} == {n: i.id for n, i in before.items()}
    assert after[2].evaluations > before[2].evaluations
    assert after[2].seconds > before[2].seconds
    assert run.evaluations == after[-1].evaluations


def test_resuming_skips_fresh_runs_and_requeues_a_stale_one_only_once(project, queued):
    fresh = make_run(project, status=Run.Status.RUNNING, heartbeat=timezone.now(), attempts=1)
    stale = make_run(project, attempts=1)
    _stale(stale)

    assert recovery.recover() == 1
    assert recovery.recover() == 0

    assert queued == [stale.id]
    assert Run.objects.get(id=stale.id).status == Run.Status.QUEUED
    assert Run.objects.get(id=fresh.id).status == Run.Status.RUNNING


def test_a_stale_run_asked_to_cancel_is_cancelled_not_resumed(project, queued):
    run = make_run(project, attempts=1, cancel_requested=True)
    _stale(run)

    assert recovery.recover() == 0
    assert Run.objects.get(id=run.id).status == Run.Status.CANCELLED
    assert queued == []


def test_a_run_whose_worker_keeps_dying_is_failed(project, queued):
    run = make_run(project, attempts=recovery.MAX_CRASHES, crashes=recovery.MAX_CRASHES - 1)
    _stale(run)

    assert recovery.recover() == 0
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert "stopped 5 times" in run.error


def test_a_run_requeued_by_deploys_is_resumed_at_its_first_crash_and_the_crash_is_counted(project, queued):
    run = make_run(project, attempts=recovery.MAX_CRASHES + 1)  # four rolling deploys re-queued it, then a crash
    _stale(run)

    assert recovery.recover() == 1
    run.refresh_from_db()
    assert (run.status, run.crashes, run.error) == (Run.Status.QUEUED, 1, "")


def test_a_stale_run_is_requeued_when_its_token_cannot_be_and_the_wake_up_queues_one_later(project, monkeypatch):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(queue, "async_task", broker_down)
    run = make_run(project, attempts=1)
    _stale(run)

    assert recovery.recover() == 1
    assert Run.objects.get(id=run.id).status == Run.Status.QUEUED

    tokens = []
    monkeypatch.setattr(queue, "async_task", lambda func, run_id, **kwargs: tokens.append(run_id))
    Run.objects.filter(id=run.id).update(heartbeat=timezone.now() - timedelta(hours=1))
    recovery.recover()
    assert tokens == [run.id]


def test_the_file_sweep_is_scheduled_once_and_the_old_recovery_schedule_removed(db):
    from django_q.models import Schedule

    Schedule.objects.get_or_create(name=recovery.RESUME_SCHEDULE_NAME, func=recovery.RESUME_STALE_RUNS,
                                   schedule_type="I", minutes=1)  # what migration 0003 made
    recovery.ensure_schedules()
    recovery.ensure_schedules()

    assert not Schedule.objects.filter(name=recovery.RESUME_SCHEDULE_NAME).exists()
    sweep = Schedule.objects.get(name=cleanup.SWEEP_SCHEDULE_NAME)
    assert (sweep.func, sweep.schedule_type) == (cleanup.SWEEP_ORPHANED_FILES, "H")


def test_two_workers_that_created_the_sweep_at_once_converge_on_the_oldest(db):
    # Seen in the scale-out test: two workers starting together each created the schedule (get_or_create
    # is not atomic and the name is not unique), and the next worker to start failed on the duplicate.
    from django_q.models import Schedule

    first, second = (Schedule.objects.create(name=cleanup.SWEEP_SCHEDULE_NAME, func=cleanup.SWEEP_ORPHANED_FILES,
                                             schedule_type="H", repeats=-1, kwargs=kwargs)
                     for kwargs in ("{'after': 'runs/b.png'}", "{}"))
    recovery.ensure_schedules()

    (kept,) = Schedule.objects.filter(name=cleanup.SWEEP_SCHEDULE_NAME)
    assert kept.id == first.id and kept.kwargs == "{'after': 'runs/b.png'}"  # the one with the sweep's cursor


def test_the_task_paths_stored_in_queues_and_schedules_still_resolve():
    from django.utils.module_loading import import_string

    for path in (queue.EXECUTE_RUN, recovery.RESUME_STALE_RUNS, cleanup.SWEEP_ORPHANED_FILES, jobs.CALIBRATE_SPEED):
        assert path.startswith("gallery.tasks.") and callable(import_string(path))


def test_the_recovery_pass_does_not_list_the_run_files(db, monkeypatch):
    listed = []
    monkeypatch.setattr(default_storage, "listdir", lambda path: listed.append(path) or ([], []))

    recovery.recover()

    assert listed == []  # the hourly sweep does


@pytest.mark.django_db(transaction=True)
def test_launching_a_sweep_copies_its_inputs_before_it_takes_the_write_lock(project, monkeypatch, queued):
    from django.db import connection

    from gallery.models import Sweep

    save_file = launching.files.save_file
    in_transaction = []

    def recording_save(field_file, extension, content):
        in_transaction.append(connection.in_atomic_block)
        return save_file(field_file, extension, content)

    monkeypatch.setattr(launching.files, "save_file", recording_save)
    sweep = Sweep(project=project, axis1="style_weight", axis1_values=[1, 10, 100])
    runs = [Run(project=project, style_weight=weight, sweep_row=row, **TINY) for row, weight in enumerate([1, 10, 100])]

    launching.launch_sweep(sweep, runs)

    assert in_transaction == [False] * 2  # the content and the style, stored once for the three runs
    assert Run.objects.filter(sweep=sweep).count() == 3


def test_a_launch_whose_tokens_cannot_be_queued_keeps_its_runs_queued_for_the_wake_up(project, monkeypatch, caplog):
    from gallery.models import Sweep

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(queue, "async_task", broker_down)
    single = launching.launch_run(Run(project=project, **TINY))
    sweep = Sweep(project=project, axis1="style_weight", axis1_values=[1, 10])
    launching.launch_sweep(sweep, [Run(project=project, style_weight=w, sweep_row=row, **TINY)
                                   for row, w in enumerate([1, 10])])

    launched = Run.objects.order_by("id")
    assert list(launched.values_list("status", flat=True)) == [Run.Status.QUEUED] * 3
    assert Sweep.objects.get(id=sweep.id).runs.count() == 2
    assert all(default_storage.exists(run.content_source.name) for run in launched)
    assert "recovery's wake-up queues them later" in caplog.text

    tokens = []
    monkeypatch.setattr(queue, "async_task", lambda func, run_id, **kwargs: tokens.append(run_id))
    launched.update(created=timezone.now() - timedelta(hours=1))
    recovery.recover()
    assert tokens == [single.id, *sweep.runs.order_by("id").values_list("id", flat=True)][:2]  # the limit: 2


def test_a_run_of_a_deleted_project_is_skipped(owner):
    project = create_project(owner)
    run = make_run(project)
    project.delete()

    assert tasks.execute_run(run.id) == "skipped"
    assert not Iteration.objects.exists()
