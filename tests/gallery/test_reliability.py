"""The worker side of issue #11: a fair queue, no cascading failures, hung runs resumed, recovery
that does not wait behind the backlog, runs with their own inputs, and a bounded shutdown."""
import io
import os
import threading
import time
from datetime import timedelta

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.db import OperationalError
from django.utils import timezone

import stylecore
from gallery import cleanup, jobs, recovery, tasks
from gallery.queue import another_user_waits, claim_next_run, next_queued_run
from gallery.models import Run
from tests.engines import EngineProxy, FailingEngine, ScriptedEngine, real_engine
from tests.factories import TINY_FORM, create_project, make_image, make_run


def queue(project, count, *, minutes_ago=0):
    runs = [make_run(project) for _ in range(count)]
    for offset, run in enumerate(runs):
        created = timezone.now() - timedelta(minutes=minutes_ago, seconds=count - offset)
        Run.objects.filter(id=run.id).update(created=created, queued_since=created)
    return runs


def running(project, **fields):
    now = timezone.now()
    deadline = now + timedelta(minutes=15)
    return make_run(project, status=Run.Status.RUNNING, heartbeat=now, stall_deadline=deadline, attempts=1, **fields)


# -- fair queue --------------------------------------------------------------------------------


def test_the_next_run_goes_to_the_user_with_fewest_runs_in_progress_not_the_oldest(project, other):
    flood = queue(project, 10, minutes_ago=60)
    running(project)
    late = queue(create_project(other), 1)[0]

    assert next_queued_run() == late.id
    Run.objects.filter(id=late.id).update(status=Run.Status.RUNNING)
    assert next_queued_run() == flood[0].id  # then the flooder's oldest


def test_users_with_as_many_runs_in_progress_take_turns_longest_waiting_first(project, other, db):
    carol = User.objects.create_user("carol")
    mine = queue(project, 3, minutes_ago=30)
    theirs = queue(create_project(other), 3, minutes_ago=20)
    hers = queue(create_project(carol), 1, minutes_ago=10)

    order = []
    for _ in range(3):
        order.append(next_queued_run())
        Run.objects.filter(id=order[-1]).update(status=Run.Status.RUNNING)
    assert order == [mine[0].id, theirs[0].id, hers[0].id]


def test_a_user_at_the_running_limit_waits_while_others_are_served(project, other, settings):
    settings.USER_MAX_RUNNING_RUNS = 1
    running(project)
    queue(project, 2, minutes_ago=60)
    assert next_queued_run() is None
    theirs = queue(create_project(other), 1)[0]
    assert next_queued_run() == theirs.id


def test_a_run_waiting_out_a_back_off_is_not_taken(project):
    run = make_run(project, not_before=timezone.now() + timedelta(minutes=5))
    assert next_queued_run() is None
    Run.objects.filter(id=run.id).update(not_before=timezone.now() - timedelta(seconds=1))
    assert next_queued_run() == run.id


def test_a_claim_takes_the_fairest_due_run_and_marks_it_running(project, other):
    mine = queue(project, 2, minutes_ago=60)
    running(project)
    theirs = queue(create_project(other), 1)[0]

    claimed = claim_next_run()

    assert claimed.id == theirs.id and claimed.project.owner == other
    theirs.refresh_from_db()
    assert (theirs.status, theirs.attempts, theirs.heartbeat is not None) == (Run.Status.RUNNING, 1, True)
    assert claim_next_run().id == mine[0].id
    assert claim_next_run() is None  # I am at the limit of 2


def test_a_run_that_had_its_turn_pauses_only_for_another_users_due_run_below_their_limit(project, other, settings):
    settings.USER_MAX_RUNNING_RUNS = 1
    mine = running(project)
    queue(project, 2)
    assert not another_user_waits(project.owner_id)  # my own queued runs do not pause mine
    theirs = create_project(other)
    waiting = make_run(theirs, not_before=timezone.now() + timedelta(minutes=5))
    assert not another_user_waits(project.owner_id)  # theirs waits out a back-off
    Run.objects.filter(id=waiting.id).update(not_before=None)
    assert another_user_waits(project.owner_id)
    their_running = running(theirs)
    assert not another_user_waits(project.owner_id)  # they are at their limit: a free worker would not take it
    assert not another_user_waits(other.id)  # nor theirs for mine: I am at my limit too
    settings.USER_MAX_RUNNING_RUNS = 2
    assert another_user_waits(project.owner_id) and another_user_waits(other.id)
    assert mine.status == their_running.status == Run.Status.RUNNING


def test_a_paused_run_goes_behind_the_runs_waiting_when_it_paused(project, other):
    mine = queue(project, 1, minutes_ago=60)[0]  # launched first, paused just now
    Run.objects.filter(id=mine.id).update(queued_since=timezone.now(), iterations_done=5)
    theirs = queue(create_project(other), 1, minutes_ago=10)[0]
    assert claim_next_run().id == theirs.id
    assert claim_next_run().id == mine.id
    mine.refresh_from_db()
    assert mine.claimed is not None and mine.claimed >= mine.queued_since


def test_the_claims_update_rechecks_the_owners_running_limit(project, settings):
    """Whatever a claim read before (a stale count), its UPDATE starts no run beyond the limit."""
    from gallery.queue import _claim

    settings.USER_MAX_RUNNING_RUNS = 1
    running(project)
    run = make_run(project)

    assert not _claim(run.id, project.owner_id, timezone.now())
    assert Run.objects.get(id=run.id).status == Run.Status.QUEUED


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_take_a_run_twice_nor_exceed_the_running_limit(db, settings, monkeypatch):
    """Eight workers claim at once from three users' queues; the fair rule is slowed down so that
    each worker's read of the running counts is old by the time it claims, unless the claim is
    one transaction that serialises per owner."""
    from django.db import connection

    import gallery.queue

    settings.USER_MAX_RUNNING_RUNS = 2
    owners = [User.objects.create_user(name) for name in ("ann", "ben", "cat")]
    for owner in owners:
        queue(create_project(owner), 6, minutes_ago=10)
    fairest_owner = gallery.queue.fairest_owner

    def slow_fairest_owner(waiting, running):
        time.sleep(0.02)
        return fairest_owner(waiting, running)

    monkeypatch.setattr(gallery.queue, "fairest_owner", slow_fairest_owner)
    claimed, errors = [], []
    start = threading.Barrier(8)

    def worker():
        try:
            start.wait()
            while (run := claim_next_run()) is not None:
                claimed.append(run.id)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(claimed) == len(set(claimed)) == 6  # each run once; two per user
    for owner in owners:
        runs = Run.objects.filter(project__owner=owner)
        assert runs.filter(status=Run.Status.RUNNING).count() == 2
        assert set(runs.filter(id__in=claimed).values_list("attempts", flat=True)) == {1}
    assert Run.objects.filter(status=Run.Status.RUNNING).count() == 6


# -- cascading failures ------------------------------------------------------------------------


def test_a_storage_error_requeues_the_run_with_back_off_and_fails_nothing_else(project, monkeypatch, queued):
    engine = FailingEngine(OSError(28, "No space left on device"))
    monkeypatch.setattr(jobs, "get_engine", lambda: engine)
    first, second, third = queue(project, 3)

    assert tasks.execute_run(first.id) == "retry"

    assert engine.calls == 1  # the chain stopped: the next run would have met the same disk
    first.refresh_from_db()
    assert first.status == Run.Status.QUEUED
    assert first.infra_failures == 1
    assert first.not_before > timezone.now() + timedelta(seconds=30)
    assert first.notice.startswith("Waiting to retry after a storage error (OSError")
    assert first.error == ""
    assert set(Run.objects.filter(id__in=[second.id, third.id]).values_list("status", flat=True)) == {"queued"}


def test_the_run_page_says_why_a_run_waits_to_retry(owner_client, project):
    run = make_run(project, notice="Waiting to retry after a storage error (OSError: disk full).")
    assert b"Waiting to retry after a storage error" in owner_client.get(f"/runs/{run.id}/").content


def test_a_missing_weights_file_is_an_infrastructure_error_but_a_bad_setting_is_the_runs_own(project, monkeypatch):
    monkeypatch.setattr(jobs, "get_engine", lambda: FailingEngine(stylecore.WeightsError("weights file missing")))
    run = make_run(project)
    assert tasks.execute_run(run.id) == "retry"

    monkeypatch.setattr(jobs, "get_engine", lambda: FailingEngine(stylecore.SettingsError("rows too small")))
    Run.objects.filter(id=run.id).update(not_before=None)
    assert tasks.execute_run(run.id) == "failed"
    run.refresh_from_db()
    assert (run.status, run.error) == (Run.Status.FAILED, "rows too small")


def test_the_run_page_names_an_error_without_the_servers_paths_or_hosts(project, monkeypatch):
    """Readers of a public project see the run's notice and error; the worker's log has the details."""
    disk = OSError(28, "No space left on device", "/srv/stylegallery/media/runs/secret.png")
    monkeypatch.setattr(jobs, "get_engine", lambda: FailingEngine(disk))
    run = make_run(project)
    assert tasks.execute_run(run.id) == "retry"
    run.refresh_from_db()
    assert "(OSError: No space left on device)" in run.notice and "/srv" not in run.notice

    bug = KeyError("postgres://gallery:hunter2@10.0.0.3/gallery")
    monkeypatch.setattr(jobs, "get_engine", lambda: FailingEngine(bug))
    Run.objects.filter(id=run.id).update(not_before=None)
    assert tasks.execute_run(run.id) == "failed"
    run.refresh_from_db()
    assert run.error.startswith("The run stopped on an unexpected error (KeyError); the worker's log has the details.")
    assert "hunter2" not in run.error and "10.0.0.3" not in run.error


def test_an_infrastructure_error_fails_the_run_only_after_several_retries(project, monkeypatch, settings):
    settings.RUN_MAX_INFRA_RETRIES = 3
    monkeypatch.setattr(jobs, "get_engine", lambda: FailingEngine(OSError("NFS went away")))
    run = make_run(project)
    delays = []
    for _ in range(2):
        assert tasks.execute_run(run.id) == "retry"
        run.refresh_from_db()
        delays.append((run.not_before - timezone.now()).total_seconds())
        Run.objects.filter(id=run.id).update(not_before=timezone.now())
    assert delays[1] > 1.5 * delays[0]  # back-off

    assert tasks.execute_run(run.id) == "failed"
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert "gave up after 3 attempts" in run.error


def test_a_database_error_in_a_progress_write_requeues_the_run_and_keeps_its_iterations(project, monkeypatch, queued):
    monkeypatch.setattr(jobs, "get_engine", lambda: ScriptedEngine(3))
    record_progress = jobs._Job._record_progress

    def locked_at_iteration_two(job, report):
        if report.iteration == 2:
            raise OperationalError("database is locked")
        record_progress(job, report)

    monkeypatch.setattr(jobs._Job, "_record_progress", locked_at_iteration_two)
    run = make_run(project, save_every=10)

    assert tasks.execute_run(run.id) == "retry"

    run.refresh_from_db()
    assert (run.status, run.error, run.infra_failures) == (Run.Status.QUEUED, "", 1)
    assert run.notice.startswith("Waiting to retry after a database error (OperationalError)")
    assert [i.number for i in run.saved_iterations.all()] == [0]


def test_a_diverging_run_keeps_its_last_good_iteration_to_continue_from(project, monkeypatch):
    diverged = stylecore.DivergedError(
        "The loss became nan (after iteration 2); … or continue from iteration 2.",
        last_image=np.zeros((48, 64, 3), np.uint8), iteration=2,
    )
    monkeypatch.setattr(jobs, "get_engine", lambda: ScriptedEngine(2, error=diverged))
    run = make_run(project, iterations=20, save_every=10)

    assert tasks.execute_run(run.id) == "failed"

    run.refresh_from_db()
    assert (run.status, run.error) == (Run.Status.FAILED, str(diverged))
    assert [i.number for i in run.saved_iterations.all()] == [0, 2]
    assert run.latest_iteration().checkpoint  # continued from its exact pixels


def test_a_worker_stopping_keeps_the_iteration_it_reached_and_the_run_resumes_there(project, monkeypatch, queued):
    """Ctrl-C on `make run` (or SIGTERM) mid-run: the run goes back to the queue, and resumes from the
    iteration it reached, not from its last scheduled save (with Save every 10, iteration 0: minutes
    of computing on a CPU computed again, and the run page going back to iteration 0)."""
    monkeypatch.setattr(jobs, "shutdown", threading.Event())

    def stop_after_two(report):
        if report.iteration == 2:
            jobs.shutdown.set()

    monkeypatch.setattr(jobs, "get_engine", lambda: ScriptedEngine(10, during=stop_after_two))
    run = make_run(project, iterations=10, save_every=10)

    assert tasks.execute_run(run.id) == "stopped"

    run.refresh_from_db()
    assert (run.status, run.iterations_done) == (Run.Status.QUEUED, 3)
    assert [i.number for i in run.saved_iterations.all()] == [0, 3]
    assert run.latest_iteration().checkpoint  # resumed from its exact pixels
    assert queued == [run.id]

    monkeypatch.setattr(jobs, "shutdown", threading.Event())
    started = []
    engine = ScriptedEngine(10)
    original = engine.stylize
    engine.stylize = lambda *args, first_iteration=0, **kwargs: started.append(first_iteration) or original(
        *args, first_iteration=first_iteration, **kwargs)
    monkeypatch.setattr(jobs, "get_engine", lambda: engine)
    assert tasks.execute_run(run.id) == "done"
    assert started == [3]
    assert [i.number for i in Run.objects.get(id=run.id).saved_iterations.all()] == [0, 3, 10]


def test_a_cancelled_run_keeps_the_iteration_it_reached_to_continue_from(project, monkeypatch):
    def cancel_after_two(report):
        if report.iteration == 2:
            Run.objects.filter(id=run.id).update(cancel_requested=True)

    monkeypatch.setattr(jobs, "get_engine", lambda: ScriptedEngine(10, during=cancel_after_two))
    run = make_run(project, iterations=10, save_every=10)

    assert tasks.execute_run(run.id) == "cancelled"

    run.refresh_from_db()
    assert (run.status, run.iterations_done) == (Run.Status.CANCELLED, 3)
    assert [i.number for i in run.saved_iterations.all()] == [0, 3]
    last = run.latest_iteration()
    assert (last.loss, last.evaluations) == (7.0, 61)
    assert last.checkpoint and default_storage.exists(last.image.name)  # continued from its exact pixels


def test_a_run_failing_part_way_on_its_own_error_keeps_the_last_iteration_it_computed(project, monkeypatch):
    monkeypatch.setattr(jobs, "get_engine", lambda: ScriptedEngine(2, error=ValueError("a bug")))
    run = make_run(project, iterations=20, save_every=10)

    assert tasks.execute_run(run.id) == "failed"

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error.startswith("The run stopped on an unexpected error (ValueError); the worker's log has the details.")
    assert [i.number for i in run.saved_iterations.all()] == [0, 2]
    assert run.latest_iteration().checkpoint


def test_a_run_whose_last_iteration_cannot_be_kept_fails_with_its_own_error(project, monkeypatch):
    monkeypatch.setattr(jobs, "get_engine", lambda: ScriptedEngine(2, error=ValueError("a bug")))
    save_iteration = jobs._Job._save_iteration

    def unwritable_after_zero(job, report):
        if report.iteration > 0:
            raise TypeError("cannot write this picture")
        save_iteration(job, report)

    monkeypatch.setattr(jobs._Job, "_save_iteration", unwritable_after_zero)
    run = make_run(project, iterations=20, save_every=10)

    assert tasks.execute_run(run.id) == "failed"

    run.refresh_from_db()
    assert run.error.startswith("The run stopped on an unexpected error (ValueError); the worker's log has the details.")
    assert [i.number for i in run.saved_iterations.all()] == [0]


# -- hangs -------------------------------------------------------------------------------------


def test_a_run_with_a_fresh_heartbeat_past_its_stall_deadline_is_resumed(project, queued):
    hung = running(project)
    Run.objects.filter(id=hung.id).update(stall_deadline=timezone.now() - timedelta(seconds=1))

    assert recovery.recover() == 1
    assert Run.objects.get(id=hung.id).status == Run.Status.QUEUED
    assert queued == [hung.id]


def test_a_slow_run_gets_ten_of_its_iterations_before_it_counts_as_hung(project, monkeypatch, settings):
    settings.RUN_STALL_SECONDS = 900
    patience = []

    def read_the_deadline(report):
        if report.iteration == 2:
            patience.append((Run.objects.get(id=run.id).stall_deadline - timezone.now()).total_seconds())

    engine = ScriptedEngine(2, seconds_per_iteration=300, during=read_the_deadline)
    monkeypatch.setattr(jobs, "get_engine", lambda: engine)
    run = make_run(project, iterations=2)

    assert tasks.execute_run(run.id) == "done"
    assert patience == [pytest.approx(3000, abs=5)]


def test_a_slow_but_healthy_first_iteration_is_not_taken_for_a_hang(project, monkeypatch, queued, settings):
    # No measurements: the estimate falls back to ~870 s per float32 iteration at 2048 rows.
    settings.RUN_STALL_SECONDS = 900
    real_now = timezone.now
    checks = []

    def fifteen_minutes_later(report):
        if report.iteration == 0:
            later = real_now() + timedelta(seconds=901)
            monkeypatch.setattr(timezone, "now", lambda: later)
            Run.objects.filter(id=run.id).update(heartbeat=later)  # the heartbeat thread keeps beating
            checks.append(recovery.recover())

    monkeypatch.setattr(jobs, "get_engine", lambda: ScriptedEngine(2, during=fifteen_minutes_later))
    run = make_run(project, rows=2048, precision="float32", iterations=2, save_every=10,
                   base_image="runs/base.png", style_image="runs/style.png")

    assert tasks.execute_run(run.id) == "done"
    assert checks == [0]


def test_a_run_that_reported_after_the_check_read_it_is_not_requeued(project, monkeypatch, queued):
    run = running(project)
    # What a check read a moment ago, before the worker's report made the run fresh again.
    monkeypatch.setattr(recovery, "_stale_runs", lambda now: [(run.id, run.attempts, run.crashes, False)])

    assert recovery.recover() == 0
    assert Run.objects.get(id=run.id).status == Run.Status.RUNNING
    assert queued == []


def test_every_iteration_moves_the_stall_deadline_on(project, settings, monkeypatch):
    settings.RUN_STALL_SECONDS = 900
    monkeypatch.setattr(jobs, "get_engine", lambda: ScriptedEngine(2))
    run = make_run(project, iterations=2)
    started = timezone.now()
    tasks.execute_run(run.id)
    assert Run.objects.get(id=run.id).stall_deadline >= started + timedelta(seconds=900)


# -- recovery does not wait behind the backlog ---------------------------------------------------


def _stale_run(project):
    run = make_run(project, attempts=1)
    long_ago = timezone.now() - timedelta(hours=1)
    Run.objects.filter(id=run.id).update(status=Run.Status.RUNNING, heartbeat=long_ago, stall_deadline=long_ago)
    return run


@pytest.mark.django_db(transaction=True)
def test_the_worker_commands_supervisor_resumes_stale_runs_while_every_worker_is_busy(project, queued, settings,
                                                                                     monkeypatch):
    """Recovery runs in the worker command's own process (recovery.supervise), not in a task that
    would wait behind the runs, nor between runs, nor in a heartbeat thread."""
    settings.RUN_STALE_AFTER_SECONDS = 2
    running(project)  # the only worker is busy for hours
    crashed = _stale_run(project)
    passes = []

    def alive():
        return len(passes) < 3 and Run.objects.get(id=crashed.id).status != Run.Status.QUEUED

    real_recover = recovery.recover
    monkeypatch.setattr(recovery, "recover", lambda: passes.append(1) or real_recover())
    supervisor = threading.Thread(target=recovery.supervise, args=(alive,), kwargs={"interval": 0.2, "tick": 0.05})
    supervisor.start()
    supervisor.join(timeout=10)
    assert Run.objects.get(id=crashed.id).status == Run.Status.QUEUED
    assert crashed.id in queued


def test_a_chain_runs_no_recovery_between_its_runs(project, monkeypatch, queued):
    monkeypatch.setattr(jobs, "get_engine", lambda: ScriptedEngine(1))
    monkeypatch.setattr(recovery, "recover", lambda: pytest.fail("recovery ran inside a task"))
    crashed = _stale_run(project)
    first, second = make_run(project, iterations=1), make_run(project, iterations=1)

    assert tasks.execute_run(first.id) == "done"
    assert Run.objects.get(id=second.id).status == Run.Status.DONE
    assert Run.objects.get(id=crashed.id).status == Run.Status.RUNNING  # left to the supervisor


# -- runs keep their own inputs ------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_reads_the_images_it_was_launched_with_not_the_projects_current_ones(owner_client, project):
    response = owner_client.post(f"/projects/{project.id}/runs/new/", {**TINY_FORM, "iterations": 1})
    run = Run.objects.get()
    assert response.status_code == 302
    launched = run.content_source.read()
    run.content_source.close()
    new_content = io.BytesIO(make_image(64, 48, seed=99))
    owner_client.post(f"/projects/{project.id}/edit/", {"title": "x", "content_image": _named(new_content)})
    project.refresh_from_db()
    assert project.content_image.read() != launched

    tasks.execute_run(run.id)
    run.refresh_from_db()
    with run.content_source.open("rb") as handle:
        assert handle.read() == launched
    assert run.status == Run.Status.DONE
    assert run.stored_bytes > len(launched)


def test_deleting_a_project_removes_its_runs_copies(owner_client, project, django_capture_on_commit_callbacks):
    owner_client.post(f"/projects/{project.id}/runs/new/", {**TINY_FORM, "iterations": 1})
    run = Run.objects.get()
    names = [run.content_source.name, run.style_source.name]
    assert all(default_storage.exists(name) for name in names)

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(f"/projects/{project.id}/delete/")
    assert not any(default_storage.exists(name) for name in names)


def test_the_hourly_sweep_removes_old_run_files_no_row_names(project, queued, monkeypatch):
    monkeypatch.setattr(jobs, "get_engine", lambda: ScriptedEngine(1))
    run = make_run(project, iterations=1)
    tasks.execute_run(run.id)
    kept = Run.objects.get(id=run.id).latest_iteration().image.name
    orphan = default_storage.save("runs/orphan.png", io.BytesIO(b"left by a killed worker"))
    fresh = default_storage.save("runs/fresh.png", io.BytesIO(b"its row is being written"))
    hour_ago = time.time() - 3700
    for name in (orphan, kept):
        os.utime(default_storage.path(name), (hour_ago, hour_ago))

    assert cleanup.sweep_orphaned_files() == 1

    assert not default_storage.exists(orphan)
    assert default_storage.exists(fresh)
    assert default_storage.exists(kept)


def test_each_sweep_pass_looks_at_a_bounded_batch_and_the_next_pass_goes_on_from_there(db, monkeypatch):
    import ast

    from django_q.models import Schedule

    recovery.ensure_schedules()
    monkeypatch.setattr(cleanup, "ORPHAN_BATCH", 2)
    hour_ago = time.time() - 3700
    orphans = []
    for letter in "edcba":
        orphans.append(default_storage.save(f"runs/{letter}.png", io.BytesIO(b"left by a killed worker")))
        os.utime(default_storage.path(orphans[-1]), (hour_ago, hour_ago))
    stat = []
    modified_time = default_storage.get_modified_time
    monkeypatch.setattr(default_storage, "get_modified_time", lambda name: stat.append(name) or modified_time(name))

    def cursor():
        return ast.literal_eval(Schedule.objects.get(name=cleanup.SWEEP_SCHEDULE_NAME).kwargs)

    assert cleanup.sweep_orphaned_files() == 2
    assert stat == ["runs/a.png", "runs/b.png"]
    assert cursor() == {"after": "b.png"}  # what the scheduler hands the next pass
    assert cleanup.sweep_orphaned_files(**cursor()) == 2
    assert stat[2:] == ["runs/c.png", "runs/d.png"]
    assert cleanup.sweep_orphaned_files() == 1
    assert cursor() == {"after": ""}  # the next pass starts again from the first name
    assert default_storage.listdir("runs")[1] == []


# -- bounded shutdown --------------------------------------------------------------------------


@pytest.mark.slow
def test_on_shutdown_the_run_stops_within_its_iteration_and_goes_back_to_the_queue(project, monkeypatch, queued):
    monkeypatch.setattr(jobs, "shutdown", threading.Event())
    first, second = make_run(project, iterations=6), make_run(project, iterations=1)
    later = timezone.now() + timedelta(seconds=1)
    Run.objects.filter(id=second.id).update(created=later, queued_since=later)

    def asked_to_stop(number):
        if number == 1:
            jobs.shutdown.set()

    monkeypatch.setattr(jobs, "get_engine", lambda: EngineProxy(asked_to_stop))
    assert tasks.execute_run(first.id) == "stopped"

    first.refresh_from_db()
    assert first.status == Run.Status.QUEUED
    # Stopped at the next evaluation, inside iteration 2 (an iteration at a large size on a CPU takes
    # minutes): it resumes from iteration 1.
    assert [i.number for i in first.saved_iterations.all()] == [0, 1] and first.iterations_done == 1
    assert queued == [first.id]  # a task for the re-queued run
    assert Run.objects.get(id=second.id).status == Run.Status.QUEUED  # not started

    monkeypatch.setattr(jobs, "shutdown", threading.Event())
    monkeypatch.setattr(jobs, "get_engine", real_engine)
    assert tasks.execute_run(first.id) == "done"
    assert Run.objects.get(id=first.id).status == Run.Status.DONE


def _named(buffer, name="new.png"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")
