"""django-q2's task entry points, and nothing else: the dotted paths that queued tasks and
schedules store ("gallery.tasks.execute_run", …) name these functions, so they stay here.

The work lives by role, as django-q2 itself is one module per role:

- gallery.queue: the run queue, owned by the database (the fair rule, caps, claiming, tokens)
- gallery.jobs: the job that computes one claimed run (the engine, calibration)
- gallery.recovery: heartbeats and the one recovery path (stale runs, wake-up tokens, schedules)
- gallery.launching: launching runs and sweeps
- gallery.cleanup: orphaned run files
"""
from gallery import cleanup, jobs, queue, recovery


def execute_run(run_id):
    """Task: a token that wakes this worker. Claim and compute the fairest due run, then the next,
    until none is due; return the last outcome ("skipped" if there was nothing to do).

    ``run_id`` names the run the token was queued for; the worker takes whatever
    ``queue.claim_next_run()`` gives it, which is that run only when it is the fairest. The chain
    stops after an infrastructure error (the next run would meet it too) and on shutdown.
    """
    outcome = "skipped"
    while not jobs.shutdown.is_set():
        queue.refresh_connections()
        run = queue.claim_next_run()
        if run is None:
            break
        outcome = jobs.compute(run)
        if outcome in ("retry", "stopped"):
            break
    return outcome


def resume_stale_runs():
    """Task of older versions' every-minute schedule (queued ones may remain): one recovery pass."""
    return recovery.recover()


def sweep_orphaned_files(after=None):
    """Task, hourly: one bounded pass of the orphaned-file sweep (gallery.cleanup)."""
    return cleanup.sweep_orphaned_files(after)


def calibrate_speed():
    """Task, once per run worker start: time the engine on this worker's device (gallery.jobs)."""
    return jobs.calibrate()
