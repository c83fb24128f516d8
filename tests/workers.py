"""Start and stop real django-q2 worker clusters (``manage.py worker``) from tests.

The worker runs in its own process group against the same SQLite file and media folder as the
test process, so use it from tests marked ``@pytest.mark.django_db(transaction=True)`` (the test
database is a file; see ``django_db_modify_db_settings`` in tests/conftest.py)::

    from tests.workers import start_worker, stop_worker, wait_until, worker_env_for_test_db

    env = worker_env_for_test_db(settings.MEDIA_ROOT, RUN_STALE_AFTER_SECONDS=5)
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        wait_until(lambda: Run.objects.get(id=run.id).status == "done", timeout=120, worker=worker)
    finally:
        stop_worker(worker)

Each start forks a worker that imports TensorFlow and builds VGG19 on its first run (10–20 s on
two cores), so start as few as a test needs.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker_env(db_path, media_root, **extra):
    """Environment for a worker that shares this SQLite file and media folder.

    ``extra`` adds or overrides variables, e.g. ``Q_WORKERS=2`` or ``RUN_STALE_AFTER_SECONDS=5``
    (values are turned into strings). The queue is polled every 0.2 s unless Q_POLL says otherwise.
    The worker's start-up speed calibration is off unless WORKER_CALIBRATE=1 (it costs seconds);
    WORKER_LANE=preview starts the preview lane's worker instead of a run worker.
    """
    env = dict(os.environ)
    env.pop("Q_SYNC", None)
    env.update(
        DJANGO_SETTINGS_MODULE="gallery.settings",
        DATABASE_URL=f"sqlite:///{Path(db_path).resolve()}",
        DATA_DIR=str(Path(media_root).resolve().parent),
        MEDIA_ROOT=str(Path(media_root).resolve()),
        Q_POLL="0.2",
        WORKER_CALIBRATE="0",
        PYTHONUNBUFFERED="1",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    env.update({name: str(value) for name, value in extra.items()})
    return env


def worker_env_for_test_db(media_root, **extra):
    """worker_env for the test database this pytest process uses (call it inside a django_db test)."""
    from django.db import connection

    return worker_env(connection.settings_dict["NAME"], media_root, **extra)


def start_worker(env, log_path):
    """Start ``manage.py worker`` (stale-run check, then qcluster) in a new process group.

    stdout and stderr go to ``log_path``; returns the Popen. Stop it with stop_worker or kill_worker.
    """
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "worker"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


def _signal_group(proc, signum):
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        pass


def kill_worker(proc):
    """SIGKILL the whole cluster (sentinel, pusher, workers, monitor) at once, like a power cut."""
    _signal_group(proc, signal.SIGKILL)
    proc.wait(timeout=30)


def stop_worker(proc, timeout=20):
    """Ask the cluster to stop (SIGTERM); SIGKILL its process group if it has not gone in time.

    Only the cluster's main process gets SIGTERM: it stops its workers itself, and would wait
    forever for workers that the same signal had already ended.
    """
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    # Forked workers busy with a run may outlive the sentinel: clear the whole group.
    _signal_group(proc, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(timeout=30)


def wait_until(predicate, timeout, *, interval=0.25, worker=None, log_path=None):
    """Poll ``predicate()`` until it is truthy and return its value; fail after ``timeout`` seconds.

    With ``worker`` given, fail at once if that process exits; ``log_path`` is quoted on failure.
    """
    from django.db import close_old_connections, connection

    deadline = time.monotonic() + timeout
    while True:
        if not connection.in_atomic_block:
            close_old_connections()
        value = predicate()
        if value:
            return value
        if worker is not None and worker.poll() is not None:
            raise AssertionError(f"The worker exited with code {worker.returncode}.{_tail(log_path)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout} s waiting for {predicate}.{_tail(log_path)}")
        time.sleep(interval)


def _tail(log_path, lines=40):
    if not log_path or not Path(log_path).exists():
        return ""
    text = Path(log_path).read_text(errors="replace").splitlines()[-lines:]
    return "\nWorker log:\n" + "\n".join(text)
