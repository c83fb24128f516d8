"""Where the gallery meets the engine: django-q2 tasks that run style transfers and resume them.

A run is queued with ``enqueue_run``; a worker runs ``execute_run(run_id)``, which claims the run
atomically (a duplicate delivery exits at once), calls ``stylecore`` and turns every
``save_every``-th iteration (plus 0 and the last) into an ``Iteration`` row with its PNG and JPEG
thumbnail. Progress is written every iteration, and a background thread keeps ``Run.heartbeat``
fresh while the engine computes, so a stale heartbeat means the worker is gone: ``resume_stale_runs``
(at worker start and on a schedule) re-queues such runs, and they continue from their last saved
iteration. A task is a token that lets a worker compute queued runs: it takes the fairest queued
run (``next_queued_run``: the user with the fewest runs in progress, then the one who waited
longest), and after it the next, until none is left, so a run whose task a killed cluster had
prefetched is not stranded.

A run's own error (bad settings or image, a diverging loss) fails it. An infrastructure error
(storage, database, weights, memory) re-queues it with back-off and ends the chain, so one broken
disk does not fail every queued run in seconds; it fails only after RUN_MAX_INFRA_RETRIES. A run is stale
when its heartbeat stops (the worker died) or when it makes no progress (a hung call); recovery
runs in the scheduled check, between runs of a chain and in every busy worker's heartbeat
thread, so it never waits behind the backlog. On SIGTERM (``manage.py worker``) the run in
progress stops after its current iteration and is re-queued, and the worker takes no further run.

Each claim increments ``Run.attempts``; every later write of that worker is filtered on
``attempts`` too, so a worker that lost its run (re-queued while it was thought dead, or the
project deleted) stops at its next iteration instead of writing over the new owner's work.
``attempts`` is only that token: ``Run.crashes`` counts the workers that died or hung.

The engine (and with it TensorFlow) is imported inside the functions, never at module import: the
web process must not load it, and django-q2 forks its workers before the first task.
"""
import io
import logging
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection, transaction
from django.db.models import Count, F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.tasks import async_task
from PIL import Image

from gallery import files
from gallery.display import finite_or_none
from gallery.estimates import SpeedMeter, estimate_run
from gallery.fair_queue import fairest_owner
from gallery.models import Iteration, PrecisionCheck, Run, RunInput, RunStyle
from stylecore.schema import DEFAULTS

log = logging.getLogger(__name__)

EXECUTE_RUN = "gallery.tasks.execute_run"
RESUME_STALE_RUNS = "gallery.tasks.resume_stale_runs"
RESUME_SCHEDULE_NAME = "Resume stale runs"
SWEEP_ORPHANED_FILES = "gallery.tasks.sweep_orphaned_files"
SWEEP_SCHEDULE_NAME = "Sweep orphaned run files"
# A run whose worker died or hung this many times is failed instead of resumed again (e.g. it is
# killed for running out of memory each time). Re-queues on shutdown or an infrastructure error
# are not crashes: a long run survives any number of deploys.
MAX_CRASHES = 5
# A busy worker's heartbeat thread runs the stale-run check this often (seconds).
RECOVERY_INTERVAL = 60
# Files under media/runs/ that no row names are removed once they are this old (seconds): a killed
# worker may leave a file written just before its row. The sweep lists every run file, so it runs
# hourly on its own schedule, not in the every-minute check.
ORPHAN_AGE = 3600
# A hung run is one with no new iteration for max(RUN_STALL_SECONDS, this many iterations' time),
# an iteration's time being the longer of its measured average and its estimate at full size.
STALL_ITERATIONS = 10

# Set when the worker cluster is asked to stop: the run in progress stops after its current
# iteration and is re-queued, and no further run is taken. ``manage.py worker`` replaces it with
# a multiprocessing event before django-q2 forks, so that its workers see the signal.
shutdown = threading.Event()

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


CALIBRATE_SPEED = "gallery.tasks.calibrate_speed"
# What a run worker times when it starts: (precision, rows) for one L-BFGS iteration (20
# evaluations, each with the optimiser's own overhead, as in a run), float32 and the automatic
# choice at two sizes, so the estimates can tell a fixed cost per evaluation from the part that
# grows with the pixels.
CALIBRATION = (("float32", 64), ("float32", 160), ("auto", 128), ("auto", 224))
# The last one starts from the AdaIN picture, which loads that model too before the first run.
CALIBRATION_STEPS = 1


LOW_PRECISIONS = ("bfloat16", "float16")


def calibrate_speed():
    """Task: time a few evaluations at two sizes per precision on this worker's device (the
    SpeedSamples behind gallery.estimates), and check which low precisions it computes natively
    (PrecisionChecks, read by the launch form); a few seconds, once per worker start."""
    from stylecore import samples

    engine = get_engine()
    content, style = samples.landscape(224, 299), samples.swirls(224, 299)
    for index, (precision, rows) in enumerate(CALIBRATION):
        meter = SpeedMeter(engine.device, precision, calibration=True)
        init = "adain" if index == len(CALIBRATION) - 1 else "content"
        settings = DEFAULTS.replace(rows=rows, start_rows=rows, iterations=CALIBRATION_STEPS, optimizer="lbfgs",
                                    init=init, precision=precision)
        engine.stylize(content, style, settings, meter.report)
        meter.flush()
    for precision in LOW_PRECISIONS:
        PrecisionCheck.objects.update_or_create(device=engine.device[:100], precision=precision,
                                                defaults={"refusal": engine.emulation(precision) or ""})
    return "calibrated"


def enqueue_calibration():
    async_task(CALIBRATE_SPEED, group="calibration", cluster=settings.RUN_CLUSTER)


def enqueue_run(run_id):
    """Hand the run to django-q2 (in sync mode this runs it before returning)."""
    return async_task(EXECUTE_RUN, run_id, group="runs", cluster=settings.RUN_CLUSTER)


# -- the task -------------------------------------------------------------------------------


def _refresh_connections():
    """Drop broken or expired DB connections before more work (not inside a transaction)."""
    if not connection.in_atomic_block:
        close_old_connections()


def execute_run(run_id):
    """django-q2 task: compute queued runs, fairest first, until none is due; return the last outcome.
    Never raises for a run's own failure.

    ``run_id`` names the run the task was queued for, but the task is a token: the worker takes
    ``next_queued_run()``, which is that run only when it is the fairest. Every queued run has a
    task, so each is computed; a task that finds nothing due exits. Taking runs straight from the
    database also means that a run whose task was lost (a killed cluster takes its prefetched
    tasks along) is still computed. The chain stops after an infrastructure error (the next run
    would meet it too), on shutdown, and when nothing is due.
    """
    outcome = "skipped"
    while not shutdown.is_set():
        next_id = next_queued_run()
        if next_id is None:
            break
        outcome = _claim_and_compute(next_id)
        if outcome in ("retry", "stopped"):
            break
        _recover()
    return outcome


def next_queued_run(now=None):
    """The id of the queued run a free worker should take next by the fair queue's rule
    (gallery.fair_queue), or None. A run waiting out an infrastructure back-off is not due."""
    now = now or timezone.now()
    running = dict(
        Run.objects.filter(status=Run.Status.RUNNING)
        .values_list("project__owner_id")
        .annotate(count=Count("id"))
        .values_list("project__owner_id", "count")
    )
    due = Run.objects.filter(Q(not_before__isnull=True) | Q(not_before__lte=now), status=Run.Status.QUEUED)
    oldest_per_user = {}
    for place, (run_id, owner_id) in enumerate(due.order_by("created", "id").values_list("id", "project__owner_id")):
        oldest_per_user.setdefault(owner_id, (place, run_id))
    owner = fairest_owner({owner: place for owner, (place, _) in oldest_per_user.items()}, running)
    return None if owner is None else oldest_per_user[owner][1]


def _claim_and_compute(run_id):
    _refresh_connections()
    now = timezone.now()
    claimed = Run.objects.filter(id=run_id, status=Run.Status.QUEUED).update(
        status=Run.Status.RUNNING,
        started=Coalesce(F("started"), now),
        heartbeat=now,
        stall_deadline=now + timedelta(seconds=settings.RUN_STALL_SECONDS),
        attempts=F("attempts") + 1,
        error="",
        notice="",
        not_before=None,
    )
    if claimed != 1:
        log.info("Run %s is not queued (cancelled, deleted or delivered twice); nothing to do.", run_id)
        return "skipped"
    run = Run.objects.select_related("project").filter(id=run_id).first()
    if run is None:
        return "skipped"
    log.info("Computing run %s (attempt %s).", run.id, run.attempts)
    heartbeat = _Heartbeat(run.id, run.attempts)
    heartbeat.start()
    try:
        outcome = _Job(run).execute()
    except _Lost:
        log.warning("Run %s was taken from this worker or deleted; stopping.", run_id)
        outcome = "lost"
    except Exception as exc:
        if is_infrastructure_error(exc):
            outcome = _retry_later(run, exc)
        else:
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


def is_infrastructure_error(exc):
    """Errors of the machine, not of the run: storage, the database (locked, gone away), the weights
    file, memory. The run is fine and is tried again later; its own errors (settings, images, a
    diverging loss) fail it."""
    import stylecore

    if isinstance(exc, stylecore.WeightsError):
        return True
    if isinstance(exc, stylecore.StyleCoreError):
        return False
    return (
        isinstance(exc, (OSError, MemoryError, OperationalError, InterfaceError))
        or type(exc).__name__ == "ResourceExhaustedError"
    )


def _infrastructure_cause(exc):
    import stylecore

    if isinstance(exc, stylecore.WeightsError):
        return "an error reading the model weights"
    if isinstance(exc, (OperationalError, InterfaceError)):
        return "a database error"
    if isinstance(exc, OSError):
        return "a storage error"
    return "running out of memory"


def _retry_later(run, exc):
    """Re-queue the run after an infrastructure error, with back-off; fail it after too many."""
    failures = run.infra_failures + 1
    if failures >= settings.RUN_MAX_INFRA_RETRIES:
        message = f"{failure_message(exc, run)} (gave up after {failures} attempts)"
        log.warning("Run %s failed: %s", run.id, message, exc_info=True)
        _finish(run.id, run.attempts, Run.Status.FAILED, error=message)
        return "failed"
    delay = min(3600, settings.RUN_RETRY_SECONDS * 2 ** (failures - 1))
    retry_at = timezone.now() + timedelta(seconds=delay)
    notice = (
        f"Waiting to retry after {_infrastructure_cause(exc)} ({type(exc).__name__}: {exc}); "
        f"try {failures + 1} of {settings.RUN_MAX_INFRA_RETRIES} at {retry_at:%H:%M:%S} UTC."
    )
    log.warning("Run %s met an infrastructure error; retrying in %s s.", run.id, delay, exc_info=True)
    _requeue(run.id, run.attempts, infra_failures=failures, not_before=retry_at, notice=notice[:300])
    return "retry"


def _requeue(run_id, attempt, **fields):
    """Put a run this worker owns back in the queue (it resumes from its last saved iteration)."""
    return Run.objects.filter(id=run_id, status=Run.Status.RUNNING, attempts=attempt).update(
        status=Run.Status.QUEUED, heartbeat=timezone.now(), **fields
    )


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


def _stored_size(field_file):
    try:
        return field_file.size
    except OSError:
        return 0  # already gone: nothing to give back


def _start_image(checkpoint, image):
    """The exact float pixels of a checkpoint when there is a readable one, else the PNG's bytes."""
    if checkpoint:
        try:
            return files.read_checkpoint(checkpoint)
        except files.CheckpointError:
            log.warning("Resuming from %s instead of its unreadable checkpoint.", image.name, exc_info=True)
    return _read_file(image)


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
        self.stopping = False

    def execute(self):
        import stylecore

        run = self.run
        last = run.latest_iteration()
        if last is not None and last.number >= run.iterations:
            _finish(run.id, self.attempt, Run.Status.DONE)
            return "done"
        # The run's own copies of its inputs; runs launched before those existed read the project's.
        content = _read_file(run.content_source or run.project.content_image)
        styles = [_read_file(run.style_source or run.project.style_image)]
        styles += [_read_file(style.source) for style in run.extra_styles.all()]
        if not run.base_image or not run.style_image:
            self._save_engine_inputs(stylecore, content, styles)

        # Resume from the last saved iteration, with evaluations and time carried over.
        self.last_saved = last.number if last else -1
        self.first_iteration = last.number if last else 0
        self.evaluations_before = last.evaluations if last else 0
        self.seconds_before = last.seconds if last else 0.0
        self.first_report_seconds = None
        self.full_size_iteration_seconds = None
        self.last_report = None
        if last is not None:
            start = _start_image(last.checkpoint, last.image)
        elif run.init == Run.Init.ITERATION:
            start = _start_image(run.init_checkpoint, run.init_image)
        else:
            start = None  # the run's own start (run.init)

        engine = get_engine()
        Run.objects.filter(id=run.id, attempts=self.attempt).update(device=engine.device[:100])
        self.meter = SpeedMeter(engine.device, run.precision)
        try:
            result = self._stylize(engine, content, styles, start)
        except stylecore.DivergedError as exc:
            self._keep_last_good_iteration(exc)
            raise
        finally:
            self.meter.flush()
        if self.lost:
            log.warning("Run %s was taken from this worker; stopping without further writes.", run.id)
            return "lost"
        if result.last_iteration >= run.iterations or result.converged:
            if result.converged:
                Run.objects.filter(id=run.id, attempts=self.attempt).update(converged=True)
            _finish(run.id, self.attempt, Run.Status.DONE)
            return "done"
        if self.stopping:
            log.info("Worker stopping: run %s goes back to the queue at iteration %s.", run.id, result.last_iteration)
            if _requeue(run.id, self.attempt):
                _enqueue_quietly(run.id)
            return "stopped"
        _finish(run.id, self.attempt, Run.Status.CANCELLED)
        return "cancelled"

    def _keep_last_good_iteration(self, diverged):
        """The engine's message offers to continue from the last iteration with a finite loss: save
        that iteration (its report's image, losses and exact pixels) when it was not due anyway."""
        report = self.last_report
        if report is not None and report.iteration == diverged.iteration > self.last_saved:
            self._save_iteration(report)

    def _stylize(self, engine, content, styles, start):
        return engine.stylize(content, styles, self.run.settings, self.on_iteration,
                              style_blend_weights=self.run.blend_weights, start=start,
                              first_iteration=self.first_iteration)

    def _save_engine_inputs(self, stylecore, content, styles):
        """Iteration 0's companions: the base and (first) style images exactly as the engine sees them."""
        run = self.run
        base_u8, (style_u8, *_others) = stylecore.engine_inputs(
            content, styles, rows=run.rows, style_fit=run.style_fit, style_blend_weights=run.blend_weights,
            preserve_colors=run.preserve_colors, style_scale=run.style_scale,
        )
        before = files.stored_names([run.base_image, run.style_image])
        size = files.save_image(run.base_image, Image.fromarray(base_u8))
        size += files.save_image(run.style_image, Image.fromarray(style_u8))
        names = {"base_image": run.base_image.name, "style_image": run.style_image.name}
        running = Run.objects.filter(id=run.id, status=Run.Status.RUNNING, attempts=self.attempt)
        if not running.update(**names, stored_bytes=F("stored_bytes") + size):
            files.delete_names(names.values())
            raise _Lost()
        files.delete_names(before)

    # -- the engine's callback, once per iteration --

    def on_iteration(self, report):
        """Record progress (and the iteration when it is due); return True to stop the engine."""
        _refresh_connections()
        self.last_report = report
        try:
            self.meter.report(report)
            if report.iteration > self.last_saved and (report.converged or self._is_saved(report.iteration)):
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
        if shutdown.is_set():
            self.stopping = True
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
            "precision_used": report.precision,
            "heartbeat": timezone.now(),
        }
        if done_here > 0:
            # Time per iteration in this attempt, without the model build before the first report.
            fields["seconds_per_iteration"] = (report.seconds - self.first_report_seconds) / done_here
        fields["stall_deadline"] = self._stall_deadline(report, fields.get("seconds_per_iteration"))
        return fields

    def _stall_deadline(self, report, seconds_per_iteration):
        """When the run counts as hung unless another iteration is reported: STALL_ITERATIONS times
        the longer of its measured seconds per iteration and its own estimate of one iteration at
        full size (a slow first iteration, or the first at a larger scale, is not a hang)."""
        if self.full_size_iteration_seconds is None:
            aspect = report.width / report.rows
            measured = {"device": self.meter.device}
            self.full_size_iteration_seconds = estimate_run(self.run, aspect, measured=measured).iteration_seconds
        iteration_seconds = max(seconds_per_iteration or 0.0, self.full_size_iteration_seconds)
        patience = max(settings.RUN_STALL_SECONDS, STALL_ITERATIONS * iteration_seconds)
        return timezone.now() + timedelta(seconds=patience)

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
            rows=report.rows,
            width=report.width,
        )
        fields = self._progress_fields(report)
        # The previous checkpoint goes once this one is stored: only the latest is ever resumed from.
        previous = Iteration.objects.filter(run_id=self.run.id).exclude(checkpoint="").order_by("-number").first()
        try:
            size = files.save_image(iteration.image, image) + files.save_thumbnail(iteration.thumbnail, image)
            checkpoint_size = files.save_checkpoint(iteration.checkpoint, report.pixels())
            fields["stored_bytes"] = F("stored_bytes") + size + checkpoint_size
            with transaction.atomic():
                if previous is not None:
                    fields["stored_bytes"] -= _stored_size(previous.checkpoint)
                    Iteration.objects.filter(id=previous.id).update(checkpoint="")
                self._update_run(fields)
                iteration.save()
        except BaseException:
            files.delete_names(files.stored_names([iteration.image, iteration.thumbnail, iteration.checkpoint]))
            raise
        if previous is not None:
            files.delete_names([previous.checkpoint.name])
        self.last_saved = report.iteration


class _Heartbeat(threading.Thread):
    """Keeps Run.heartbeat fresh while the engine computes (an iteration can take minutes), and runs
    the stale-run check every RECOVERY_INTERVAL, so recovery never waits for a free worker."""

    def __init__(self, run_id, attempt):
        super().__init__(name=f"heartbeat-run-{run_id}", daemon=True)
        self.run_id = run_id
        self.attempt = attempt
        self.interval = max(0.5, min(30.0, settings.RUN_STALE_AFTER_SECONDS / 4))
        self._stopped = threading.Event()

    def run(self):
        next_recovery = time.monotonic() + RECOVERY_INTERVAL
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
                if time.monotonic() >= next_recovery:
                    next_recovery = time.monotonic() + RECOVERY_INTERVAL
                    _recover()
        finally:
            connection.close()  # this thread's own connection

    def stop(self):
        self._stopped.set()
        self.join(timeout=10)


# -- resuming runs whose worker died ----------------------------------------------------------


def resume_stale_runs():
    """The periodic check (scheduled every minute): re-queue stale runs and make sure every due
    queued run has a task. Returns how many runs were resumed."""
    return _recover()


def _recover():
    """Re-queue stale runs and top up tasks for waiting runs; never raises (it runs in between)."""
    try:
        _refresh_connections()
        resumed = _resume_stale()
        _wake_up_waiting_runs()
        return resumed
    except Exception:
        log.exception("The stale-run check failed; the next one tries again.")
        return 0


def _is_stale(now):
    """Running runs whose worker is gone (no heartbeat for RUN_STALE_AFTER_SECONDS) or hung (past
    the stall deadline its last report set: the heartbeat only proves that the process lives)."""
    dead = Q(heartbeat__lt=now - timedelta(seconds=settings.RUN_STALE_AFTER_SECONDS)) | Q(heartbeat__isnull=True)
    return Q(status=Run.Status.RUNNING) & (dead | Q(stall_deadline__lt=now))


def _stale_runs(now):
    """(id, attempts, crashes, cancel_requested) of the stale runs."""
    return list(Run.objects.filter(_is_stale(now)).values_list("id", "attempts", "crashes", "cancel_requested"))


def _resume_stale():
    """Re-queue runs left running by a worker that is gone or hung; return how many were resumed.

    The status change is a conditional UPDATE on the attempt and on staleness itself, so of two
    checkers running at once only one re-queues a given run, a run that reported since it was read
    keeps its worker, and the old worker, should it wake, stops at its next write.
    A stale run that was asked to cancel is cancelled instead, and one whose worker died or hung
    MAX_CRASHES times is failed.
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
        previous = still_stale.values_list("heartbeat", flat=True).first()
        if still_stale.update(status=Run.Status.QUEUED, heartbeat=now, crashes=crashes + 1) != 1:
            continue
        try:
            enqueue_run(run_id)
        except Exception:
            # Leave it running and stale, so that the next check tries again.
            Run.objects.filter(id=run_id, status=Run.Status.QUEUED).update(
                status=Run.Status.RUNNING, heartbeat=previous, crashes=crashes
            )
            log.exception("Could not re-queue stale run %s.", run_id)
            continue
        log.info("Resuming run %s, left running by a worker that stopped or hung.", run_id)
        resumed += 1
    return resumed


def _wake_up_waiting_runs():
    """Give waiting runs a task when theirs may be lost: one task per due queued run, at least.

    Tasks are tokens (see execute_run), so the check only compares the number of due queued runs
    with the number of tasks the broker holds and queues the difference, for the runs that have
    waited longest without one (``heartbeat`` of a queued run is when it last got a task). Works
    per run, whatever else is running; a spare task is harmless.
    """
    from django_q.brokers import get_broker

    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.RUN_STALE_AFTER_SECONDS)
    due = Run.objects.filter(Q(not_before__isnull=True) | Q(not_before__lte=now), status=Run.Status.QUEUED)
    missing = due.count() - get_broker().queue_size()
    if missing <= 0:
        return
    waited = Q(heartbeat__lt=cutoff) | Q(heartbeat__isnull=True, created__lt=cutoff) | Q(not_before__isnull=False)
    for run_id in due.filter(waited).order_by("created", "id").values_list("id", flat=True)[:missing]:
        if Run.objects.filter(id=run_id, status=Run.Status.QUEUED).update(heartbeat=now):
            log.info("Run %s has waited without a task; queuing one.", run_id)
            _enqueue_quietly(run_id)


def _enqueue_quietly(run_id):
    try:
        enqueue_run(run_id)
    except Exception:
        log.exception("Could not queue a task for run %s; the stale-run check tries again.", run_id)


def _referenced_run_files():
    names = set()
    for field in ("init_image", "init_checkpoint", "content_source", "style_source", "base_image", "style_image"):
        names.update(Run.objects.exclude(**{field: ""}).values_list(field, flat=True))
    for field in ("image", "thumbnail", "checkpoint"):
        names.update(Iteration.objects.exclude(**{field: ""}).values_list(field, flat=True))
    names.update(RunStyle.objects.values_list("source", flat=True))
    names.update(RunInput.objects.values_list("file", flat=True))
    return names


def sweep_orphaned_files():
    """Scheduled hourly: remove files under runs/ that no row names and that are older than
    ORPHAN_AGE, left by a worker killed between writing a file and its row. Returns how many were
    removed."""
    from django.core.files.storage import default_storage

    try:
        _dirs, names = default_storage.listdir("runs")
    except (FileNotFoundError, NotADirectoryError):
        return 0
    cutoff = timezone.now() - timedelta(seconds=ORPHAN_AGE)
    referenced = _referenced_run_files()
    orphans = []
    for name in names:
        path = f"runs/{name}"
        if path not in referenced and default_storage.get_modified_time(path) < cutoff:
            orphans.append(path)
    files.delete_names(orphans)
    if orphans:
        log.info("Removed %s orphaned run file(s).", len(orphans))
    return len(orphans)


def ensure_schedules():
    """The django-q2 schedules of the stale-run check (every minute) and of the orphaned-file sweep
    (hourly), created once and then kept as they are.

    Migration 0003 creates the first too; the worker command calls this in case one was deleted since.
    """
    from django_q.models import Schedule

    Schedule.objects.get_or_create(
        name=RESUME_SCHEDULE_NAME,
        defaults={"func": RESUME_STALE_RUNS, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1},
    )
    Schedule.objects.get_or_create(
        name=SWEEP_SCHEDULE_NAME,
        defaults={"func": SWEEP_ORPHANED_FILES, "schedule_type": Schedule.HOURLY, "repeats": -1},
    )


# -- launching --------------------------------------------------------------------------------


class LaunchError(Exception):
    """The run could not be queued; nothing was kept."""


def _own_files(run):
    """The files a launch writes for one run alone (the picture it continues from); its inputs are
    the project's stored pictures (gallery.run_inputs), shared with the project's other runs."""
    return files.stored_names([run.init_image, run.init_checkpoint])


def _store_inputs(run, init_iteration, style_slots, inputs):
    """Point the run at the project's stored copies of the images it computes from (the style
    slots it blends: the first as ``style_source``, the others as RunStyle rows, returned unsaved),
    stored once per picture by ``inputs``, and give it its own copy of the iteration it continues
    from."""
    first_style, *further = style_slots or [run.project]
    extra_styles = [RunStyle(position=number) for number in range(2, len(further) + 2)]
    inputs.store(run.project.content_image, run.content_source)
    inputs.store(first_style.image, run.style_source)
    for style, slot in zip(extra_styles, further):
        inputs.store(slot.image, style.source)
    run.stored_bytes = 0
    if init_iteration is not None:
        run.init = Run.Init.ITERATION
        run.init_iteration = init_iteration
        with init_iteration.image.open("rb") as handle:
            image = Image.open(io.BytesIO(handle.read())).convert("RGB")
        run.stored_bytes += files.save_image(run.init_image, image)
        if init_iteration.checkpoint:
            run.stored_bytes += files.copy_file(init_iteration.checkpoint, run.init_checkpoint)
    return extra_styles


def _launch(runs, *, init_iteration=None, sweep=None, style_slots=None):
    """Save the runs (and their sweep) with their inputs stored, then queue them; all or nothing.

    ``style_slots``: the project's style slots the runs blend, in ``run.style_blend``'s order
    (default: the project's first style image).

    The files are written before the transaction that writes the rows, so a sweep's launch does not
    hold the database's write lock while it stores pictures (SQLite has one for the whole file); each
    distinct picture is stored once per project (gallery.run_inputs), not once per run. The rows are
    committed before the tasks are queued so that a worker always finds them; if queuing fails the
    runs (and the sweep) are removed again with the files this launch wrote, so no queued run is left
    without a task.
    """
    from gallery.run_inputs import InputStore

    inputs = InputStore(runs[0].project)

    def remove_files():
        for run in runs:
            files.delete_names(_own_files(run))
        inputs.discard()

    try:
        extra_styles = {id(run): _store_inputs(run, init_iteration, style_slots, inputs) for run in runs}
        with transaction.atomic():
            inputs.save()
            if sweep is not None:
                sweep.save()
            for run in runs:
                run.sweep = sweep
                run.save()
                for style in extra_styles[id(run)]:
                    style.run = run
                    style.save()
    except OSError as exc:
        remove_files()
        log.exception("Could not store the inputs of new runs of project %s.", runs[0].project_id)
        raise LaunchError(f"The run's images could not be stored ({exc}). Nothing was saved; try again.") from exc
    except BaseException:
        remove_files()
        raise
    try:
        for run in runs:
            enqueue_run(run.id)
    except Exception as exc:
        log.exception("Could not queue runs %s; removing them.", [run.id for run in runs])
        Run.objects.filter(id__in=[run.id for run in runs]).delete()
        if sweep is not None:
            sweep.delete()
        remove_files()
        raise LaunchError(f"The run could not be queued ({exc}). Nothing was saved; try again.") from exc


def launch_run(run, init_iteration=None, style_slots=None):
    """Save a new run (with its own copies of the project's images and of the iteration it
    continues from) and queue it; all or nothing."""
    _launch([run], init_iteration=init_iteration, style_slots=style_slots)
    return run


def launch_sweep(sweep, runs):
    """Save a sweep and its runs and queue every run; all or nothing. The runs go through the same
    fair queue as single runs (``next_queued_run``)."""
    _launch(runs, sweep=sweep)
    return sweep
