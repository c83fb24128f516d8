"""Where the gallery meets the engine: django-q2 tasks that run style transfers and resume them.

A run is queued with ``enqueue_run``; a worker runs ``execute_run(run_id)``, which claims the run
atomically (a duplicate delivery exits at once), calls ``stylecore`` and turns every
``save_every``-th iteration (plus 0 and the last) into an ``Iteration`` row with its PNG and JPEG
thumbnail. Progress is written every iteration, and a background thread keeps ``Run.heartbeat``
fresh while the engine computes, so a stale heartbeat means the worker is gone: ``resume_stale_runs``
(at worker start and on a schedule) re-queues such runs, and they continue from their last saved
iteration. A worker that finishes a run takes the runs still queued from the database, oldest
first, so a run whose task a killed cluster had prefetched is not stranded.

Each claim increments ``Run.attempts``; every later write of that worker is filtered on
``attempts`` too, so a worker that lost its run (re-queued while it was thought dead, or the
project deleted) stops at its next iteration instead of writing over the new owner's work.

The engine (and with it TensorFlow) is imported inside the functions, never at module import: the
web process must not load it, and django-q2 forks its workers before the first task.
"""
import io
import logging
import threading
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.tasks import async_task
from PIL import Image

from gallery import files
from gallery.display import finite_or_none
from gallery.models import Iteration, Run

log = logging.getLogger(__name__)

EXECUTE_RUN = "gallery.tasks.execute_run"
RESUME_STALE_RUNS = "gallery.tasks.resume_stale_runs"
RESUME_SCHEDULE_NAME = "Resume stale runs"
# A run whose worker died this many times is failed instead of resumed again (e.g. it is killed
# for running out of memory each time).
MAX_ATTEMPTS = 5

_engine = None
_engine_lock = threading.Lock()


def get_engine():
    """The worker process's engine, built on first use and reused for every later run."""
    global _engine
    with _engine_lock:
        if _engine is None:
            import stylecore

            _engine = stylecore.Engine()
        return _engine


def enqueue_run(run_id):
    """Hand the run to django-q2 (in sync mode this runs it before returning)."""
    return async_task(EXECUTE_RUN, run_id, group="runs")


# -- the task -------------------------------------------------------------------------------


def _refresh_connections():
    """Drop broken or expired DB connections before more work (not inside a transaction)."""
    if not connection.in_atomic_block:
        close_old_connections()


def execute_run(run_id):
    """django-q2 task: claim the run and compute it, then any runs still queued. Never raises for a
    run's own failure.

    Taking queued runs straight from the database afterwards means that a run whose task was lost
    (django-q2 prefetches the next task while its workers are busy, and a killed cluster takes it
    along) is still computed; its own task, if it ever comes, finds it claimed and exits.
    """
    outcome = _claim_and_compute(run_id)
    if outcome in ("done", "failed", "cancelled"):
        while (next_id := _oldest_queued_run()) is not None:
            _claim_and_compute(next_id)
    return outcome


def _oldest_queued_run():
    return Run.objects.filter(status=Run.Status.QUEUED).order_by("created", "id").values_list("id", flat=True).first()


def _claim_and_compute(run_id):
    _refresh_connections()
    now = timezone.now()
    claimed = Run.objects.filter(id=run_id, status=Run.Status.QUEUED).update(
        status=Run.Status.RUNNING,
        started=Coalesce(F("started"), now),
        heartbeat=now,
        attempts=F("attempts") + 1,
        error="",
    )
    if claimed != 1:
        log.info("Run %s is not queued (cancelled, deleted or delivered twice); nothing to do.", run_id)
        return "skipped"
    run = Run.objects.select_related("project").filter(id=run_id).first()
    if run is None:
        return "skipped"
    heartbeat = _Heartbeat(run.id, run.attempts)
    heartbeat.start()
    try:
        outcome = _Job(run).execute()
    except _Lost:
        log.warning("Run %s was taken from this worker or deleted; stopping.", run_id)
        outcome = "lost"
    except Exception as exc:
        message = failure_message(exc, run)
        log.warning("Run %s failed: %s", run_id, message, exc_info=not _is_expected(exc))
        _finish(run.id, run.attempts, Run.Status.FAILED, error=message)
        outcome = "failed"
    finally:
        heartbeat.stop()
        _refresh_connections()
    return outcome


def _is_expected(exc):
    import stylecore

    return isinstance(exc, stylecore.StyleCoreError)


def failure_message(exc, run):
    """What the run page shows when a run fails: the engine's own words, or a plain explanation."""
    import stylecore

    if isinstance(exc, stylecore.StyleCoreError):
        return str(exc)
    if isinstance(exc, MemoryError) or type(exc).__name__ == "ResourceExhaustedError":
        return (
            f"The worker ran out of memory at {run.rows} rows. Launch the run again with fewer rows, "
            "or on a machine with more memory."
        )
    return f"The run stopped on an unexpected error ({type(exc).__name__}: {exc})."


def _finish(run_id, attempt, status, error=""):
    """Mark the run finished, if this worker still owns it."""
    now = timezone.now()
    return Run.objects.filter(id=run_id, status=Run.Status.RUNNING, attempts=attempt).update(
        status=status, error=error[:5000], finished=now, heartbeat=now
    )


def _read_file(field_file):
    """The bytes of a stored file, through the storage backend (local disk or a bucket)."""
    with field_file.open("rb") as handle:
        return handle.read()


class _Lost(Exception):
    """This worker no longer owns the run (re-queued elsewhere, or the run was deleted)."""


class _Job:
    """One worker's attempt at one run: inputs, the engine call, and the callback's bookkeeping."""

    def __init__(self, run):
        self.run = run
        self.attempt = run.attempts
        self.cancelled = False
        self.lost = False

    def execute(self):
        import stylecore

        run = self.run
        last = run.latest_iteration()
        if last is not None and last.number >= run.iterations:
            _finish(run.id, self.attempt, Run.Status.DONE)
            return "done"
        content = _read_file(run.project.content_image)
        style = _read_file(run.project.style_image)
        if not run.base_image or not run.style_image:
            self._save_engine_inputs(stylecore, content, style)

        # Resume from the last saved iteration, with evaluations and time carried over.
        self.last_saved = last.number if last else -1
        self.first_iteration = last.number if last else 0
        self.evaluations_before = last.evaluations if last else 0
        self.seconds_before = last.seconds if last else 0.0
        self.first_report_seconds = None
        if last is not None:
            init = _read_file(last.image)
        elif run.init == Run.Init.ITERATION:
            init = _read_file(run.init_image)
        else:
            init = run.init

        engine = get_engine()
        Run.objects.filter(id=run.id, attempts=self.attempt).update(device=engine.device[:100])
        result = engine.stylize(
            content,
            style,
            rows=run.rows,
            iterations=run.iterations - self.first_iteration,
            content_weight=run.content_weight,
            style_weight=run.style_weight,
            tv_weight=run.tv_weight,
            style_fit=run.style_fit,
            optimizer=run.optimizer,
            init=init,
            seed=run.seed,
            first_iteration=self.first_iteration,
            callback=self.on_iteration,
        )
        if self.lost:
            log.warning("Run %s was taken from this worker; stopping without further writes.", run.id)
            return "lost"
        if result.last_iteration >= run.iterations:
            _finish(run.id, self.attempt, Run.Status.DONE)
            return "done"
        _finish(run.id, self.attempt, Run.Status.CANCELLED)
        return "cancelled"

    def _save_engine_inputs(self, stylecore, content, style):
        """Iteration 0's companions: the base and style images exactly as the engine sees them."""
        run = self.run
        base_u8, style_u8 = stylecore.prepare_images(content, style, rows=run.rows, style_fit=run.style_fit)
        before = files.stored_names([run.base_image, run.style_image])
        files.save_image(run.base_image, Image.fromarray(base_u8))
        files.save_image(run.style_image, Image.fromarray(style_u8))
        names = {"base_image": run.base_image.name, "style_image": run.style_image.name}
        if not Run.objects.filter(id=run.id, status=Run.Status.RUNNING, attempts=self.attempt).update(**names):
            files.delete_names(names.values())
            raise _Lost()
        files.delete_names(before)

    # -- the engine's callback, once per iteration --

    def on_iteration(self, report):
        """Record progress (and the iteration when it is due); return True to stop the engine."""
        _refresh_connections()
        try:
            if report.iteration > self.last_saved and self._is_saved(report.iteration):
                self._save_iteration(report)
            else:
                self._record_progress(report)
            cancel_requested = (
                Run.objects.filter(id=self.run.id).values_list("cancel_requested", flat=True).first()
            )
        except _Lost:
            self.lost = True
            return True
        if cancel_requested:
            self.cancelled = True
            return True
        return False

    def _is_saved(self, number):
        return self.run.saves_iteration(number)

    def _progress_fields(self, report):
        if self.first_report_seconds is None:
            self.first_report_seconds = report.seconds
        done_here = report.iteration - self.first_iteration
        fields = {
            "iterations_done": report.iteration,
            "evaluations": self.evaluations_before + report.evaluations,
            "elapsed_seconds": self.seconds_before + report.seconds,
            "loss": finite_or_none(report.loss),
            "content_loss": finite_or_none(report.content_loss),
            "style_loss": finite_or_none(report.style_loss),
            "tv_loss": finite_or_none(report.tv_loss),
            "heartbeat": timezone.now(),
        }
        if done_here > 0:
            # Time per iteration in this attempt, without the model build before the first report.
            fields["seconds_per_iteration"] = (report.seconds - self.first_report_seconds) / done_here
        return fields

    def _update_run(self, fields):
        updated = Run.objects.filter(id=self.run.id, status=Run.Status.RUNNING, attempts=self.attempt).update(**fields)
        if updated != 1:
            raise _Lost()

    def _record_progress(self, report):
        self._update_run(self._progress_fields(report))

    def _save_iteration(self, report):
        """Files first, then the row and the progress in one transaction; files go if that fails."""
        image = Image.fromarray(report.image())
        iteration = Iteration(
            run_id=self.run.id,
            number=report.iteration,
            loss=report.loss,
            content_loss=report.content_loss,
            style_loss=report.style_loss,
            tv_loss=report.tv_loss,
            evaluations=self.evaluations_before + report.evaluations,
            seconds=self.seconds_before + report.seconds,
        )
        fields = self._progress_fields(report)
        try:
            files.save_image(iteration.image, image)
            files.save_thumbnail(iteration.thumbnail, image)
            with transaction.atomic():
                self._update_run(fields)
                iteration.save()
        except BaseException:
            files.delete_names(files.stored_names([iteration.image, iteration.thumbnail]))
            raise
        self.last_saved = report.iteration


class _Heartbeat(threading.Thread):
    """Keeps Run.heartbeat fresh while the engine computes (an iteration can take minutes)."""

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


# -- resuming runs whose worker died ----------------------------------------------------------


def resume_stale_runs():
    """Re-queue runs left running by a worker that is gone; return how many were resumed.

    The status change is a conditional UPDATE, so of two checkers running at once only one
    re-queues a given run. A stale run that was asked to cancel is cancelled instead, and one
    whose worker died MAX_ATTEMPTS times is failed.
    """
    _refresh_connections()
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.RUN_STALE_AFTER_SECONDS)
    stale = Run.objects.filter(Q(heartbeat__lt=cutoff) | Q(heartbeat__isnull=True), status=Run.Status.RUNNING)
    resumed = 0
    for run_id, attempts, cancel_requested in stale.values_list("id", "attempts", "cancel_requested"):
        still_stale = stale.filter(id=run_id, attempts=attempts)
        if cancel_requested:
            still_stale.update(status=Run.Status.CANCELLED, finished=now)
            continue
        if attempts >= MAX_ATTEMPTS:
            still_stale.update(
                status=Run.Status.FAILED,
                finished=now,
                error=f"The worker stopped {attempts} times while computing this run (killed, or out of memory); "
                "giving up. Continue from its last saved iteration, perhaps with fewer rows.",
            )
            continue
        if still_stale.update(status=Run.Status.QUEUED, heartbeat=now) != 1:
            continue
        try:
            enqueue_run(run_id)
        except Exception:
            # Leave it running and stale, so that the next check tries again.
            Run.objects.filter(id=run_id, status=Run.Status.QUEUED).update(status=Run.Status.RUNNING, heartbeat=cutoff)
            log.exception("Could not re-queue stale run %s.", run_id)
            continue
        log.info("Resuming run %s, left running by a worker that stopped.", run_id)
        resumed += 1
    if not resumed:
        _wake_up_for_waiting_runs(cutoff)
    return resumed


def _wake_up_for_waiting_runs(cutoff):
    """Queue a task for the oldest waiting run when nothing is running, in case its task was lost.

    A run waits this long with no run in progress only when no worker holds its task; a second
    task for it is harmless (the claim lets one through).
    """
    if Run.objects.filter(status=Run.Status.RUNNING).exists():
        return
    waited = Q(heartbeat__lt=cutoff) | Q(heartbeat__isnull=True, created__lt=cutoff)
    waiting = Run.objects.filter(waited, status=Run.Status.QUEUED).order_by("created", "id").first()
    if waiting is not None and Run.objects.filter(id=waiting.id, status=Run.Status.QUEUED).update(heartbeat=timezone.now()):
        log.info("Run %s has waited with no run in progress; queuing it again.", waiting.id)
        try:
            enqueue_run(waiting.id)
        except Exception:
            log.exception("Could not queue waiting run %s.", waiting.id)


def ensure_resume_schedule():
    """The django-q2 schedule that checks for stale runs every minute (created once, kept as is).

    Migration 0003 creates it too; the worker command calls this in case it was deleted since.
    """
    from django_q.models import Schedule

    schedule, _ = Schedule.objects.get_or_create(
        name=RESUME_SCHEDULE_NAME,
        defaults={"func": RESUME_STALE_RUNS, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1},
    )
    return schedule


# -- launching --------------------------------------------------------------------------------


class LaunchError(Exception):
    """The run could not be queued; nothing was kept."""


def launch_run(run, init_iteration=None):
    """Save a new run (copying the iteration it continues from) and queue it; all or nothing.

    The row is committed before the task is queued so that a worker always finds it; if queuing
    fails the run and its files are removed again, so no queued run is left without a task.
    """
    try:
        with transaction.atomic():
            if init_iteration is not None:
                run.init = Run.Init.ITERATION
                run.init_iteration = init_iteration
                with init_iteration.image.open("rb") as handle:
                    files.save_image(run.init_image, Image.open(io.BytesIO(handle.read())).convert("RGB"))
            run.save()
    except BaseException:
        files.delete_names(files.stored_names([run.init_image]))
        raise
    try:
        enqueue_run(run.id)
    except Exception as exc:
        log.exception("Could not queue run %s; removing it.", run.id)
        Run.objects.filter(id=run.id).delete()
        files.delete_names(files.stored_names([run.init_image]))
        raise LaunchError(f"The run could not be queued ({exc}). Nothing was saved; try again.") from exc
    return run
