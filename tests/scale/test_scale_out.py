"""Scale-out on real PostgreSQL and Redis: two worker clusters share one queue, one database and one
media folder, as two GPU hosts would (docs/DEPLOY.md).

Six tiny runs complete exactly once each with every iteration record; one user's flood of runs
does not keep another user's single run waiting; a storage error mid-run fails no run; then one
worker is killed with SIGKILL in the middle of a run, and the stale-heartbeat resume on the other
worker finishes it with no gap and no duplicate. The Redis broker has no delivery receipts: the
killed worker's task is simply gone, and only the resume brings the run back. Last, a worker
stopped with SIGTERM exits within 30 s and its run resumes on the other.
"""
import json
import signal
import time
from pathlib import Path

import psycopg
import pytest

from tests.workers import kill_worker, start_worker, stop_worker

pytestmark = [pytest.mark.scale, pytest.mark.timeout(900)]

STALE_AFTER = 8  # seconds without a heartbeat before a running run counts as abandoned


class Worker:
    def __init__(self, name, deployment, tmp_dir):
        self.name = name
        self.log_path = Path(tmp_dir) / f"{name}.log"
        self.process = start_worker(
            deployment.env(RUN_STALE_AFTER_SECONDS=STALE_AFTER, RUN_RETRY_SECONDS=2, Q_WORKERS=1), self.log_path
        )

    def runs_started(self):
        """How many execute_run tasks this cluster has picked up (django-q2 logs each one)."""
        if not self.log_path.exists():
            return 0
        return sum(
            1 for line in self.log_path.read_text(errors="replace").splitlines()
            if " processing " in line and "gallery.tasks.execute_run" in line
        )

    def computed(self, run_id):
        return self.log_path.exists() and f"Computing run {run_id} " in self.log_path.read_text(errors="replace")

    def log_tail(self, lines=40):
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def alive(self):
        return self.process.poll() is None


@pytest.fixture(scope="module")
def workers(deployment, tmp_path_factory):
    tmp_dir = tmp_path_factory.mktemp("workers")
    started = []
    try:
        for name in ("worker-a", "worker-b"):
            started.append(Worker(name, deployment, tmp_dir))
        yield started
    finally:
        for worker in started:
            stop_worker(worker.process)


def submit(deployment, **spec):
    output = deployment.python("-m", "tests.scale.submit", json.dumps(spec))
    return json.loads(output.strip().splitlines()[-1])


def runs_state(deployment, run_ids):
    columns = ("id", "status", "attempts", "iterations_done", "iterations", "error", "infra_failures", "started")
    rows = deployment.query(f"SELECT {', '.join(columns)} FROM gallery_run WHERE id = ANY(%s)", list(run_ids))
    return {row[0]: dict(zip(columns, row)) for row in rows}


def all_finished(deployment, run_ids):
    state = runs_state(deployment, run_ids)
    return len(state) == len(run_ids) and all(run["status"] in ("done", "failed", "cancelled") for run in state.values()) and state


def iteration_numbers(deployment, run_id):
    return [n for (n,) in deployment.query(
        "SELECT number FROM gallery_iteration WHERE run_id = %s ORDER BY number", run_id
    )]


def wait_for(predicate, timeout, workers, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except psycopg.OperationalError:
            value = None  # a connect timeout while the machine is saturated: ask again
        if value:
            return value
        time.sleep(0.5)
    logs = "\n\n".join(f"--- {w.name} (alive: {w.alive()}) ---\n{w.log_tail()}" for w in workers)
    raise AssertionError(f"Timed out after {timeout} s waiting for {what}.\n{logs}")


def referenced_files(deployment):
    names = set()
    for row in deployment.query("SELECT image, thumbnail, checkpoint FROM gallery_iteration"):
        names.update(name for name in row if name)
    for row in deployment.query(
            "SELECT base_image, style_image, init_image, init_checkpoint, content_source, style_source FROM gallery_run"):
        names.update(name for name in row if name)
    return names


def files_under(folder):
    folder = Path(folder)
    return {str(path.relative_to(folder.parent)) for path in folder.rglob("*") if path.is_file()}


def test_two_workers_complete_six_runs_exactly_once(deployment, workers):
    submitted = submit(deployment, count=6, iterations=3, rows=48, save_every=1)
    run_ids = submitted["runs"]
    assert len(run_ids) == 6

    def all_finished():
        state = runs_state(deployment, run_ids)
        return len(state) == 6 and all(run["status"] in ("done", "failed", "cancelled") for run in state.values())

    wait_for(all_finished, 420, workers, "six runs to finish")
    for run_id, run in runs_state(deployment, run_ids).items():
        assert run["status"] == "done", run
        assert run["attempts"] == 1, f"run {run_id} was started {run['attempts']} times"
        assert run["iterations_done"] == 3
        assert iteration_numbers(deployment, run_id) == [0, 1, 2, 3]

    # Exactly once: each run claimed once (attempts == 1 above). A task is only a token that wakes a
    # worker, which claims the fairest due run in the database; recovery's wake-up adds one for a
    # run left unclaimed past the cutoff (its own may sit prefetched in a busy cluster), and such a
    # spare token finds nothing to do. None failed.
    assert all(worker.runs_started() >= 1 for worker in workers), "both workers should have taken runs"
    (failures,) = deployment.query(
        "SELECT count(*) FROM django_q_task WHERE func = 'gallery.tasks.execute_run' AND NOT success"
    )[0]
    assert failures == 0
    # Every file on the shared folder belongs to a row, and every row's file is there.
    on_disk = files_under(deployment.media_root / "runs")
    assert on_disk == {name for name in referenced_files(deployment) if name.startswith("runs/")}


def test_a_users_single_run_starts_before_another_users_flood_is_done(deployment, workers):
    flood = submit(deployment, user="flood", count=10, iterations=2, rows=48, save_every=1, title="Flood")["runs"]

    def both_workers_busy():
        return sum(run["status"] == "running" for run in runs_state(deployment, flood).values()) == 2

    wait_for(both_workers_busy, 240, workers, "the flood to occupy both workers")
    (late,) = submit(deployment, user="late", count=1, iterations=2, rows=48, save_every=1, title="Late")["runs"]

    state = wait_for(lambda: all_finished(deployment, [*flood, late]), 600, workers, "the flood and the late run")
    assert all(run["status"] == "done" for run in state.values()), state
    started_before = [run_id for run_id in flood if state[run_id]["started"] < state[late]["started"]]
    # Two flood runs were running when it came; it waited at most for one of them to end (plus one
    # start per worker while it was being submitted), not for the other eight.
    assert len(started_before) <= 4, f"{len(started_before)} flood runs started first"


def test_a_storage_error_mid_run_fails_no_run(deployment, workers):
    runs = submit(deployment, count=3, iterations=12, rows=48, save_every=1, title="Disk")["runs"]

    def under_way():
        return any(len(iteration_numbers(deployment, run_id)) >= 2 for run_id in runs)

    wait_for(under_way, 240, workers, "a run to save a few iterations")
    folder = deployment.media_root / "runs"
    aside = folder.with_name("runs-aside")
    folder.rename(aside)
    folder.write_bytes(b"")  # a file where the folder was: every read and write under runs/ fails
    try:
        wait_for(
            lambda: any(run["infra_failures"] for run in runs_state(deployment, runs).values()),
            120, workers, "a run to meet the storage error",
        )
    finally:
        folder.unlink()
        aside.rename(folder)

    state = wait_for(lambda: all_finished(deployment, runs), 420, workers, "the runs to finish after the disk is back")
    assert all(run["status"] == "done" for run in state.values()), state
    for run_id in runs:
        numbers = iteration_numbers(deployment, run_id)
        assert numbers == list(range(13)), f"gaps or duplicates: {numbers}"


def test_a_run_on_a_killed_worker_completes_on_the_other(deployment, workers):
    assert all(worker.alive() for worker in workers), "both workers must be up for this test"
    before = {worker.name: worker.runs_started() for worker in workers}
    (run_id,) = submit(deployment, count=1, iterations=24, rows=48, save_every=1, title="Kill me")["runs"]

    def well_under_way():
        run = runs_state(deployment, [run_id]).get(run_id)
        return run and run["status"] == "running" and len(iteration_numbers(deployment, run_id)) >= 4

    wait_for(well_under_way, 240, workers, "the run to save a few iterations")
    (victim,) = [worker for worker in workers if worker.runs_started() > before[worker.name]]
    (survivor,) = [worker for worker in workers if worker is not victim]
    kill_worker(victim.process)
    saved_at_kill = iteration_numbers(deployment, run_id)
    assert runs_state(deployment, [run_id])[run_id]["iterations_done"] < 24, "the run ended before the kill"

    def finished():
        run = runs_state(deployment, [run_id])[run_id]
        return run["status"] in ("done", "failed", "cancelled") and run

    # The survivor's worker command runs recovery every STALE_AFTER s (recovery_interval); the run is
    # stale after STALE_AFTER s.
    run = wait_for(finished, 240, [survivor, victim], "the survivor to resume and finish the run")
    assert run["status"] == "done", run
    assert run["attempts"] == 2
    numbers = iteration_numbers(deployment, run_id)
    assert numbers == list(range(25)), f"gaps or duplicates: {numbers}"
    assert numbers[: len(saved_at_kill)] == saved_at_kill
    assert survivor.computed(run_id)

    # Nothing lost: each iteration's image and thumbnail are on the shared folder. At most the one
    # iteration being written at the moment of the kill may have left its two files unreferenced.
    on_disk = files_under(deployment.media_root / "runs")
    referenced = {name for name in referenced_files(deployment) if name.startswith("runs/")}
    assert referenced <= on_disk, f"missing files: {sorted(referenced - on_disk)}"
    # At most the image, thumbnail and checkpoint of the iteration the killed worker was writing.
    assert len(on_disk - referenced) <= 3, f"orphaned files: {sorted(on_disk - referenced)}"


def test_runs_prefetched_by_a_killed_worker_are_not_stranded(deployment, workers, tmp_path):
    """The upgrade case: a cluster is stopped while it computes one run and holds the tasks of two
    more that it has already taken off Redis (django-q2's pusher prefetches). A new worker must
    finish all three: the killed run through the stale-heartbeat resume, the other two although
    their tasks went down with the cluster."""
    alive = [worker for worker in workers if worker.alive()]
    assert len(alive) == 1, "runs after the kill test: exactly one worker is left"
    (old,) = alive
    queue_key = f"django_q:scale-{deployment.database}:q"
    redis = deployment.redis.client()
    long_run, *short_runs = submit(deployment, iterations=[30, 2, 2], rows=48, save_every=1, title="Upgrade")["runs"]

    taken_off_redis = False

    def prefetched_while_computing():
        nonlocal taken_off_redis
        # Once the pusher has taken all three tasks off Redis, the Redis list may fill again: recovery's
        # wake-up gives a token to each short run left unclaimed for RUN_STALE_AFTER_SECONDS while the
        # long run occupies the only worker (it asks the database, not the broker, and cannot tell a
        # prefetched token from a lost one). The prefetched tasks are still the ones that go down with
        # the cluster, and the new worker must finish the runs whatever tokens are left.
        taken_off_redis = taken_off_redis or redis.llen(queue_key) == 0
        run = runs_state(deployment, [long_run])[long_run]
        return taken_off_redis and run["status"] == "running" and len(iteration_numbers(deployment, long_run)) >= 2

    wait_for(prefetched_while_computing, 240, [old], "the old worker to compute one run and prefetch the others")
    assert all(run["status"] == "queued" for run in runs_state(deployment, short_runs).values())
    kill_worker(old.process)

    new = Worker("worker-new", deployment, tmp_path)
    workers.append(new)  # stopped by the workers fixture
    everything = [long_run, *short_runs]

    def all_finished():
        state = runs_state(deployment, everything)
        return all(run["status"] in ("done", "failed", "cancelled") for run in state.values()) and state

    state = wait_for(all_finished, 300, [new, old], "the new worker to finish the old worker's runs")
    assert all(run["status"] == "done" for run in state.values()), state
    assert state[long_run]["attempts"] == 2
    assert iteration_numbers(deployment, long_run) == list(range(31))
    for run_id in short_runs:
        assert state[run_id]["attempts"] == 1
        assert iteration_numbers(deployment, run_id) == [0, 1, 2]


def test_a_worker_stopped_with_sigterm_exits_within_30_s_and_its_run_resumes_elsewhere(deployment, workers, tmp_path):
    other = Worker("worker-other", deployment, tmp_path)
    workers.append(other)  # stopped by the workers fixture
    alive = [worker for worker in workers if worker.alive()]
    assert len(alive) == 2
    (run_id,) = submit(deployment, count=1, iterations=30, rows=48, save_every=1, title="SIGTERM")["runs"]

    def under_way():
        run = runs_state(deployment, [run_id])[run_id]
        return run["status"] == "running" and len(iteration_numbers(deployment, run_id)) >= 3

    wait_for(under_way, 240, alive, "the run to save a few iterations")
    (victim,) = [worker for worker in alive if worker.computed(run_id)]
    (survivor,) = [worker for worker in alive if worker is not victim]
    stopping = time.monotonic()
    victim.process.send_signal(signal.SIGTERM)
    victim.process.wait(timeout=30)
    assert time.monotonic() - stopping < 30
    assert runs_state(deployment, [run_id])[run_id]["iterations_done"] < 30, "the run ended before the SIGTERM"

    state = wait_for(lambda: all_finished(deployment, [run_id]), 240, [survivor], "the other worker to finish it")
    assert state[run_id]["status"] == "done", state
    assert survivor.computed(run_id)
    assert iteration_numbers(deployment, run_id) == list(range(31))
