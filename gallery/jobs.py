"""The job that computes one claimed run: the engine (one per worker process), the calibration,
and what a run's outcome does to its row.

``compute(run)`` takes a run that gallery.queue has claimed for this worker, calls ``stylecore``
and turns every ``save_every``-th iteration (plus 0 and the last it computes: the run's last, or the
one it reached where it converged, was cancelled or failed on its own error) into an ``Iteration`` row
with its PNG, JPEG thumbnail and float checkpoint. Progress is written every iteration, and a
heartbeat thread (gallery.recovery) keeps ``Run.heartbeat`` fresh while the engine computes.

A run's own error (bad settings or image, a diverging loss) fails it. An infrastructure error
(storage, database, weights, memory) re-queues it with back-off, so one broken disk does not fail
every queued run in seconds; it fails only after RUN_MAX_INFRA_RETRIES. On SIGTERM (``manage.py
worker`` sets ``shutdown``) the run stops after the evaluation it is computing (``_Job.on_evaluation``;
on JAX after its current iteration) and goes back to the queue; a cancelled run stops the same way
(looked up at most every ``STOP_CHECK_SECONDS``), since an iteration at a large size on a CPU takes
minutes.

Runs take turns: once a run has computed ``RUN_TURN_SECONDS`` in this attempt, it pauses after each
iteration at which another user's run waits for a worker (gallery.queue.another_user_waits). It
saves that iteration (with its exact pixels, so nothing is computed twice) and goes back to the
queue behind the runs waiting then, with a notice on its page; the worker takes the next run.

Each claim increments ``Run.attempts``; every later write of this worker is filtered on ``attempts``
too, so a worker that lost its run (re-queued while it was thought dead, or the project deleted)
stops at its next evaluation instead of writing over the new owner's work.

The engine (and with it TensorFlow) is imported inside the functions, never at module import: the
web process must not load it, and django-q2 forks its workers before the first task.
"""
import logging
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F
from django.utils import timezone
from django_q.tasks import async_task
from PIL import Image

from gallery import files
from gallery.display import LOSS_FIELDS, format_duration, loss_values
from gallery.estimates import SpeedMeter, estimate_run
from gallery.models import DeviceMemory, Iteration, LossPoint, PrecisionCheck, Run
from gallery.queue import another_user_waits, enqueue_run_quietly, refresh_connections
from gallery.recovery import Heartbeat
from stylecore.schema import DEFAULTS
from stylecore.settings import precisions_text

log = logging.getLogger(__name__)

# A hung run is one with no new iteration for max(RUN_STALL_SECONDS, this many iterations' time),
# an iteration's time being the longer of its measured average and its estimate at full size.
STALL_ITERATIONS = 10

# How often, at most, a running run looks up between iterations whether it was cancelled: once per
# evaluation of its loss (a few seconds at 400 rows on a CPU, minutes at 2048), but not more often
# than this.
STOP_CHECK_SECONDS = 1.0
# How often, at most, it writes how many evaluations of the iteration in progress are done.
PROGRESS_SECONDS = 5.0


# Set when the worker cluster is asked to stop: the run in progress stops after its current
# evaluation and is re-queued, and no further run is taken. ``manage.py worker`` replaces it with
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


def calibrate():
    """Time a few evaluations at two sizes per precision on this worker's device (the
    SpeedSamples behind gallery.estimates), check which low precisions it computes natively
    (PrecisionChecks) and how much memory a run may use (DeviceMemory), both read by the launch form;
    a few seconds, once per worker start."""
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
    DeviceMemory.objects.update_or_create(device=engine.device[:100], defaults={"limit": engine.memory_limit()})
    return "calibrated"


def enqueue_calibration():
    async_task(CALIBRATE_SPEED, group="calibration", cluster=settings.RUN_CLUSTER)

# -- one run ----------------------------------------------------------------------------------


def compute(run):
    """Compute a run this worker has just claimed; return its outcome ("done", "failed", "cancelled",
    "retry", "stopped", "paused" (its turn is over) or "lost"). Never raises for a run's own failure."""
    log.info("Computing run %s (attempt %s).", run.id, run.attempts)
    heartbeat = Heartbeat(run.id, run.attempts)
    heartbeat.start()
    try:
        outcome = _Job(run).execute()
    except _Lost:
        log.warning("Run %s was taken from this worker or deleted; stopping.", run.id)
        outcome = "lost"
    except Exception as exc:
        if is_infrastructure_error(exc):
            outcome = _retry_later(run, exc)
        else:
            message = failure_message(exc, run)
            log.warning("Run %s failed: %s", run.id, message, exc_info=not _is_expected(exc))
            _finish(run.id, run.attempts, Run.Status.FAILED, error=message)
            outcome = "failed"
    finally:
        heartbeat.stop()
        refresh_connections()
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
        f"Waiting to retry after {_infrastructure_cause(exc)} ({_shown_cause(exc)}); "
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
    return (f"The run stopped on an unexpected error ({_shown_cause(exc)}); the worker's log has the details. "
            "Launch it again, or continue from its last saved iteration.")


def _shown_cause(exc):
    """An error as the run page names it to whoever may read the run: its kind, and for a system error
    its reason ("No space left on device"), never its message's file paths, hosts or queries (the
    worker's log has them)."""
    reason = exc.strerror if isinstance(exc, OSError) else None
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__


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
    return read_file(image)


def _finish(run_id, attempt, status, error=""):
    """Mark the run finished, if this worker still owns it."""
    now = timezone.now()
    return Run.objects.filter(id=run_id, status=Run.Status.RUNNING, attempts=attempt).update(
        status=status, error=error[:5000], finished=now, heartbeat=now
    )


def read_file(field_file):
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
        self.pausing = False
        self.turn_started = self.stop_checked = self.progress_written = time.monotonic()
        self.evaluations_here = 0  # the engine's evaluations in this attempt, as on_evaluation counts them
        self.reported_evaluations = 0  # ... at its last report

    def execute(self):
        import stylecore

        run = self.run
        last = run.latest_iteration()
        if last is not None and last.number >= run.iterations:
            _finish(run.id, self.attempt, Run.Status.DONE)
            return "done"
        # The run's own copies of its inputs; runs launched before those existed read the project's.
        content = read_file(run.content_source or run.project.content_image)
        styles = [read_file(run.style_source or run.project.style_image)]
        styles += [read_file(style.source) for style in run.extra_styles.all()]
        engine = get_engine()
        engine.check_memory(content, run.settings)  # a run too large for this machine fails before any write
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
        self.precisions = run.precision_used  # "bfloat16, then float32" once a run went on in float32
        # The iterations after the last saved one are computed again: their losses go with them.
        LossPoint.objects.filter(run_id=run.id, number__gt=self.first_iteration).delete()
        if last is not None:
            start = _start_image(last.checkpoint, last.image)
        elif run.init == Run.Init.ITERATION:
            start = _start_image(run.init_checkpoint, run.init_image)
        else:
            start = None  # the run's own start (run.init)

        Run.objects.filter(id=run.id, attempts=self.attempt).update(device=engine.device[:100])
        self.meter = SpeedMeter(engine.device, run.precision)
        self.stylize_started = time.perf_counter()
        try:
            result = self._stylize(engine, content, styles, start)
        except Exception as exc:
            if not is_infrastructure_error(exc):
                self._keep_last_iteration_of_failed_run()
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
            # Keep the iteration it reached (as a cancelled or paused run does): else it would resume from
            # its last scheduled save, computing again up to Save every − 1 iterations.
            self._keep_last_iteration()
            log.info("Worker stopping: run %s goes back to the queue at iteration %s.", run.id, result.last_iteration)
            if _requeue(run.id, self.attempt):
                enqueue_run_quietly(run.id)
            return "stopped"
        if self.pausing:
            return self._pause(result.last_iteration)
        self._keep_last_iteration()  # cancelled: what it computed is kept, to continue from
        _finish(run.id, self.attempt, Run.Status.CANCELLED)
        return "cancelled"

    def _pause(self, iteration):
        """Back to the queue after its turn, behind the runs waiting now; it goes on from ``iteration``."""
        run = self.run
        turn = format_duration(time.monotonic() - self.turn_started)
        notice = (f"Paused at iteration {iteration} of {run.iterations} after {turn} of computing, so that "
                  f"another user's waiting run could start. It goes on from iteration {iteration} when a worker "
                  "is free.")
        log.info("Run %s pauses at iteration %s: another user's run waits.", run.id, iteration)
        if _requeue(run.id, self.attempt, queued_since=timezone.now(), notice=notice):
            enqueue_run_quietly(run.id)
        return "paused"

    def _keep_last_iteration(self):
        """Save the last iteration the engine reported (its image, losses and exact pixels) when it
        was not due anyway: a run that ends before its last iteration (cancelled, or failed part-way)
        keeps what it computed, and can be continued from exactly there."""
        report = self.last_report
        if report is not None and report.iteration > self.last_saved:
            self._save_iteration(report)

    def _keep_last_iteration_of_failed_run(self):
        """``_keep_last_iteration`` for a run that fails on its own error (a diverged loss, whose
        message offers to continue from the last iteration with a finite loss, or an unexpected
        one): if even that save fails, the run fails with its own error, not the save's."""
        try:
            self._keep_last_iteration()
        except _Lost:
            raise
        except Exception:
            log.warning("Run %s could not keep its last iteration after failing.", self.run.id, exc_info=True)

    def _stylize(self, engine, content, styles, start):
        return engine.stylize(content, styles, self.run.settings, self.on_iteration,
                              style_blend_weights=self.run.blend_weights, start=start,
                              first_iteration=self.first_iteration, on_evaluation=self.on_evaluation)

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
        refresh_connections()
        self.last_report = report
        self.reported_evaluations = report.evaluations
        try:
            self.meter.report(report)
            pausing = self._turn_is_over(report)
            if report.iteration > self.last_saved and (
                    report.converged or pausing or self._is_saved(report.iteration)):
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
        self.pausing = pausing
        return pausing

    def _turn_is_over(self, report):
        """Whether the run pauses at this iteration for another user's run: it has computed for
        RUN_TURN_SECONDS and at least one iteration in this attempt, it has iterations left, and
        another user's run waits."""
        return (
            time.monotonic() - self.turn_started >= settings.RUN_TURN_SECONDS
            and self.first_iteration < report.iteration < self.run.iterations
            and not report.converged
            and another_user_waits(self.run.project.owner_id)
        )

    def on_evaluation(self, seconds, evaluations):
        """Between two iterations: True (stop now, keeping the iterations saved) when the worker is
        stopping, or the run was cancelled or taken from this worker (looked up at most every
        STOP_CHECK_SECONDS); every PROGRESS_SECONDS it records how far the iteration in progress is, and
        the time elapsed."""
        self.evaluations_here += evaluations
        if shutdown.is_set():
            self.stopping = True
            return True
        now = time.monotonic()
        if now - self.stop_checked < STOP_CHECK_SECONDS:
            return False
        self.stop_checked = now
        refresh_connections()
        if now - self.progress_written >= PROGRESS_SECONDS:
            self.progress_written = now
            Run.objects.filter(id=self.run.id, status=Run.Status.RUNNING, attempts=self.attempt).update(
                next_iteration_evaluations=self.evaluations_here - self.reported_evaluations,
                elapsed_seconds=self.seconds_before + time.perf_counter() - self.stylize_started)
        row = Run.objects.filter(id=self.run.id).values_list("status", "attempts", "cancel_requested").first()
        if row is None or row[:2] != (Run.Status.RUNNING, self.attempt):
            self.lost = True
        elif row[2]:
            self.cancelled = True
        return self.lost or self.cancelled

    def _is_saved(self, number):
        return self.run.saves_iteration(number)

    def _progress_fields(self, report):
        if self.first_report_seconds is None:
            self.first_report_seconds = report.seconds
        done_here = report.iteration - self.first_iteration
        self.precisions = precisions_text(self.precisions, report.precision)
        fields = {
            "iterations_done": report.iteration,
            "evaluations": self.evaluations_before + report.evaluations,
            "elapsed_seconds": self.seconds_before + report.seconds,
            **loss_values(report),
            "precision_used": self.precisions,
            "heartbeat": timezone.now(),
            "next_iteration_evaluations": 0,
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

    def _update_run(self, fields, report):
        """The run's progress and this iteration's losses (a point of the loss curves), together, while
        the run is still this attempt's."""
        with transaction.atomic():
            updated = Run.objects.filter(id=self.run.id, status=Run.Status.RUNNING,
                                         attempts=self.attempt).update(**fields)
            if updated != 1:
                raise _Lost()
            point = LossPoint(run_id=self.run.id, number=report.iteration, **loss_values(report))
            LossPoint.objects.bulk_create([point], update_conflicts=True, unique_fields=["run", "number"],
                                          update_fields=list(LOSS_FIELDS))

    def _record_progress(self, report):
        self._update_run(self._progress_fields(report), report)

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
                self._update_run(fields, report)
                iteration.save()
        except BaseException:
            files.delete_names(files.stored_names([iteration.image, iteration.thumbnail, iteration.checkpoint]))
            raise
        if previous is not None:
            files.delete_names([previous.checkpoint.name])
        self.last_saved = report.iteration


