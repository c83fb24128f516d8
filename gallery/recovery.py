"""Heartbeats and recovery: one recovery path, run from one place that never waits for a worker.

A computing run's ``Heartbeat`` thread keeps ``Run.heartbeat`` fresh while the engine computes (an
iteration can take minutes), so a stale heartbeat means its worker is gone; a run whose stall
deadline passed without a new iteration is hung (the heartbeat only proves that the process lives).

``recover()`` is the one recovery path. It does two things:

1. Re-queue stale runs (``_resume_stale``), with a token each: they continue from their last saved
   iteration. A stale run that was asked to cancel is cancelled; one whose worker died or hung
   MAX_CRASHES times is failed.
2. Wake waiting runs (``wake_up_waiting_runs``): a due queued run that has gone unclaimed for
   RUN_STALE_AFTER_SECONDS since its last token (``heartbeat`` of a queued run is when it last got
   one) gets a new token. The broker is not asked how many tasks it holds: a cluster's pusher
   prefetches tasks the broker no longer counts, and a cluster killed with them takes them along.
   Tokens are cheap (one that finds nothing due exits), and they are bounded: at most one per run
   per RUN_STALE_AFTER_SECONDS, and only as many per owner as the owner may still start under
   USER_MAX_RUNNING_RUNS. A run whose token could not be queued at launch or at a resume is picked
   up here too.

It runs in one place: the supervising process of ``manage.py worker`` (the run lane). django-q2's
``Cluster.start()`` returns once the sentinel has forked the workers; the command's main process is
otherwise idle until the cluster stops, so it calls ``recover()`` at start and then every
``recovery_interval()`` seconds (``supervise``) until the cluster stops. It never waits for a free
worker, however long the runs are, and no thread is running when django-q2 forks. Several worker
hosts each run it; every change it makes is a conditional UPDATE, so two of them never re-queue or
wake the same run twice. There is no recovery schedule any more (``ensure_schedules`` removes the one
older databases have) and no recovery between runs or in the heartbeat thread.
"""
import logging
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from gallery import cleanup
from gallery.models import Run
from gallery.queue import QUEUE_ORDER, enqueue_run_quietly, is_due, refresh_connections, running_per_owner

log = logging.getLogger(__name__)

# A run whose worker died or hung this many times is failed instead of resumed again (e.g. it is
# killed for running out of memory each time). Re-queues on shutdown or an infrastructure error
# are not crashes: a long run survives any number of deploys.
MAX_CRASHES = 5
# The recovery schedule of older versions (migration 0003 creates it); its task path stays valid.
RESUME_STALE_RUNS = "gallery.tasks.resume_stale_runs"
RESUME_SCHEDULE_NAME = "Resume stale runs"


def recovery_interval():
    """Seconds between two recovery passes: every minute, or as often as a run can go stale."""
    return max(1, min(60, settings.RUN_STALE_AFTER_SECONDS))


class Heartbeat(threading.Thread):
    """Keeps Run.heartbeat fresh while the engine computes; stops once the run is no longer this
    worker's (finished, re-queued elsewhere or deleted)."""

    def __init__(self, run_id, attempt):
        super().__init__(name=f"heartbeat-run-{run_id}", daemon=True)
        self.run_id = run_id
        self.attempt = attempt
        self.interval = max(0.5, min(30.0, settings.RUN_STALE_AFTER_SECONDS / 4))
        self._stopped = threading.Event()

    def run(self):
        try:
            while not self._stopped.wait(self.interval):
                try:
                    alive = Run.objects.filter(
                        id=self.run_id, status=Run.Status.RUNNING, attempts=self.attempt
                    ).update(heartbeat=timezone.now())
                except Exception:
                    log.warning("Heartbeat of run %s could not be written.", self.run_id, exc_info=True)
                    continue
                if not alive:
                    return
        finally:
            connection.close()  # this thread's own connection

    def stop(self):
        self._stopped.set()
        self.join(timeout=10)


# -- the one recovery path ----------------------------------------------------------------------


def recover():
    """Re-queue stale runs and wake waiting runs; return how many runs were resumed. Never raises
    (the next pass tries again)."""
    try:
        refresh_connections()
        resumed = _resume_stale()
        wake_up_waiting_runs()
        return resumed
    except Exception:
        log.exception("The recovery pass failed; the next one tries again.")
        return 0
    finally:
        refresh_connections()


def supervise(alive, interval=None, tick=1.0):
    """Run ``recover()`` every ``interval`` seconds (recovery_interval()) while ``alive()``; the worker
    command's main process calls it while its cluster runs. It only sleeps and polls ``alive()``
    between passes: no lock or event that the process's signal handler also takes."""
    interval = recovery_interval() if interval is None else interval
    while alive():
        next_pass = time.monotonic() + interval
        while alive() and time.monotonic() < next_pass:
            time.sleep(min(tick, max(0.0, next_pass - time.monotonic())))
        if alive():
            recover()


def _is_stale(now):
    """Running runs whose worker is gone (no heartbeat for RUN_STALE_AFTER_SECONDS) or hung (past
    the stall deadline its last report set)."""
    dead = Q(heartbeat__lt=now - timedelta(seconds=settings.RUN_STALE_AFTER_SECONDS)) | Q(heartbeat__isnull=True)
    return Q(status=Run.Status.RUNNING) & (dead | Q(stall_deadline__lt=now))


def _stale_runs(now):
    """(id, attempts, crashes, cancel_requested) of the stale runs."""
    return list(Run.objects.filter(_is_stale(now)).values_list("id", "attempts", "crashes", "cancel_requested"))


def _resume_stale():
    """Re-queue runs left running by a worker that is gone or hung; return how many were resumed.

    The status change is a conditional UPDATE on the attempt and on staleness itself, so of two
    recoverers running at once only one re-queues a given run, a run that reported since it was
    read keeps its worker, and the old worker, should it wake, stops at its next write. If its token
    cannot be queued the run stays queued, and a later wake-up gives it one.
    """
    now = timezone.now()
    resumed = 0
    for run_id, attempts, crashes, cancel_requested in _stale_runs(now):
        still_stale = Run.objects.filter(_is_stale(now), id=run_id, attempts=attempts)
        if cancel_requested:
            still_stale.update(status=Run.Status.CANCELLED, finished=now)
            continue
        if crashes + 1 >= MAX_CRASHES:
            still_stale.update(
                status=Run.Status.FAILED,
                finished=now,
                crashes=crashes + 1,
                error=f"The worker stopped {crashes + 1} times while computing this run (killed, or out of memory); "
                "giving up. Continue from its last saved iteration, perhaps with fewer rows.",
            )
            continue
        if still_stale.update(status=Run.Status.QUEUED, heartbeat=now, crashes=crashes + 1) != 1:
            continue
        log.info("Resuming run %s, left running by a worker that stopped or hung.", run_id)
        enqueue_run_quietly(run_id)
        resumed += 1
    return resumed


def _waited(cutoff):
    """Queued runs without a token since ``cutoff``: the last token (or, without one, the launch)
    is older, or the run has just come out of an infrastructure back-off (its chain ended)."""
    return (
        Q(heartbeat__lt=cutoff)
        | Q(heartbeat__isnull=True, created__lt=cutoff)
        | Q(not_before__isnull=False)
    )


def wake_up_waiting_runs(now=None):
    """Give a token to each due queued run that has waited unclaimed past the cutoff, as many per
    owner as the owner may still start; return how many tokens were queued."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.RUN_STALE_AFTER_SECONDS)
    waiting = Run.objects.filter(is_due(now)).filter(_waited(cutoff))
    running = running_per_owner()
    woken = 0
    for run_id, owner_id in waiting.order_by(*QUEUE_ORDER).values_list("id", "project__owner_id"):
        if running.get(owner_id, 0) >= settings.USER_MAX_RUNNING_RUNS:
            continue
        # Marked first (a conditional UPDATE), so two recoverers never wake the same run twice.
        if not Run.objects.filter(is_due(now), _waited(cutoff), id=run_id).update(heartbeat=now, not_before=None):
            continue
        running[owner_id] = running.get(owner_id, 0) + 1
        log.info("Run %s has waited unclaimed; queuing a token for it.", run_id)
        woken += enqueue_run_quietly(run_id)
    return woken


def ensure_schedules():
    """The django-q2 schedule of the hourly orphaned-file sweep, created once and then kept as it is
    (it carries the sweep's cursor); the recovery schedule of older versions is removed (recovery
    runs in the worker command). The worker command calls this at start. Workers that start at the
    same moment may each create one (the table has no unique name); every caller then keeps the oldest,
    which carries the cursor, so they converge on one instead of failing on the duplicate."""
    from django_q.models import Schedule

    Schedule.objects.filter(name=RESUME_SCHEDULE_NAME).delete()
    sweeps = Schedule.objects.filter(name=cleanup.SWEEP_SCHEDULE_NAME)
    if not sweeps.exists():
        Schedule.objects.create(name=cleanup.SWEEP_SCHEDULE_NAME, func=cleanup.SWEEP_ORPHANED_FILES,
                                schedule_type=Schedule.HOURLY, repeats=-1)
    oldest = sweeps.order_by("id").values_list("id", flat=True).first()
    sweeps.exclude(id=oldest).delete()
