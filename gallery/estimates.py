"""Pre-flight estimates: how long a run will take, what it will store, and when it would start.

Duration = the loss evaluations a run's settings imply, scale by scale (stylecore's own
``scale_plan``), times the seconds one evaluation takes at that scale's size on the device and
precision that will compute it. Those seconds are measured, never assumed: every worker times a
few evaluations at two sizes when it starts (``gallery.tasks.calibrate_speed``), and every scale
of every run adds a ``SpeedSample``. The latest samples of a device and precision are fitted to
seconds per evaluation = a + b × megapixels (a: the per-evaluation overhead that dominates tiny
images; b: the convolutions). Only without any measurement yet does the estimate fall back to the
figure measured on a CPU of this machine's kind, with or without bfloat16 (docs/PERFORMANCE.md),
and it says so.

Expected start: the queue is played forward with the fair queue's own rule (gallery.fair_queue:
the per-user cap, then the user with the fewest runs running, then the one who waited longest),
each run taking the worker that frees up first once it is due. Every worker is busy while runs
wait, so the number of running runs is the number of workers (at least one).

No TensorFlow here: ``stylecore.engine`` imports it only inside the engine's functions.
"""
import heapq
import logging
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction

import numpy as np
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from gallery.fair_queue import fairest_owner, turn_goes_to_another
from gallery.models import DeviceMemory, PrecisionCheck, Run, SpeedSample
from gallery.queue import QUEUE_ORDER, another_user_waits
from gallery.quotas import estimated_run_bytes
from stylecore.engine import AUTO_MIN_PIXELS, EVALUATIONS_PER_ITERATION, scale_plan, smallest_rows
from stylecore.images import content_aspect as exact_aspect
from stylecore.images import output_width
from stylecore import backend
from stylecore.errors import SettingsError
from stylecore.memory import check_run_fits, machine_memory
from stylecore.network import cpu_flags, cpu_has_bfloat16, resolve_precision

log = logging.getLogger(__name__)

# The latest samples of a device and precision that the fit uses.
FIT_SAMPLES = 40
# A scale's measurement counts once it has this many evaluations.
MIN_SAMPLE_EVALUATIONS = 5
# Besides its iterations' evaluations, each scale computes its targets and reports its first image.
EVALUATIONS_PER_SCALE = 2
# Without any measurement: seconds per evaluation per megapixel measured on 2-core CPUs of each kind
# (docs/PERFORMANCE.md; 400×533 is 0.213 megapixels):
# - with AMX (an Intel Xeon): float32 1.66 s at 400×533 and bfloat16 about half;
# - with AVX512_BF16 but no AMX (an AMD EPYC Zen 4, 3 Dec 2026): the default run took 1.29 s per
#   evaluation in bfloat16 (bench --part defaults, 519 s for 401), and a float32 evaluation took 1.85×
#   a bfloat16 one (bench --part timing);
# - with AVX2 only (an AMD EPYC Zen 3, 6 Dec 2026): the default run took 3.40 s per evaluation in float32
#   (bench --part defaults, 1364 s for 401); the low precisions are emulated, their test convolution with
#   its gradient 9-19× slower (the workers refuse them; the figure only prices a refused request).
FALLBACK_SECONDS_PER_MEGAPIXEL = {
    "CPU with AMX": {"float32": 7.8, "bfloat16": 3.9, "float16": 3.9},
    "CPU with AVX512_BF16, no AMX": {"float32": 11.2, "bfloat16": 6.1, "float16": 6.1},
    "CPU without bfloat16": {"float32": 16.0, "bfloat16": 210.0, "float16": 210.0},
}


def cpu_kind():
    """This machine's kind of CPU (where ``make run`` starts the worker), a key of the figures above."""
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return "CPU with AMX"
    return "CPU with AVX512_BF16, no AMX" if "avx512_bf16" in flags else "CPU without bfloat16"


def fallback_seconds_per_megapixel(precision):
    """The figure for this machine's kind of CPU."""
    figures = FALLBACK_SECONDS_PER_MEGAPIXEL[cpu_kind()]
    return figures.get(precision, figures["float32"])


@dataclass(frozen=True)
class Speed:
    """Seconds per evaluation = overhead + per_megapixel × megapixels."""

    overhead: float
    per_megapixel: float
    measured: bool

    def seconds(self, pixels, evaluations):
        return evaluations * (self.overhead + self.per_megapixel * pixels / 1e6)


def fit_speed(samples):
    """A Speed from [(pixels, evaluations, seconds)]: least squares on seconds per evaluation,
    weighted by evaluations, with both terms kept ≥ 0; None without samples."""
    if not samples:
        return None
    x = np.array([pixels / 1e6 for pixels, _, _ in samples])
    e = np.array([evaluations for _, evaluations, _ in samples], dtype=float)
    s = np.array([seconds for _, _, seconds in samples], dtype=float)
    if len(set(np.round(x, 4))) >= 2:
        w = np.sqrt(e)
        (a, b), *_ = np.linalg.lstsq(np.stack([e, e * x], axis=1) / w[:, None], s / w, rcond=None)
        if a >= 0 and b >= 0:
            return Speed(float(a), float(b), True)
        if b < 0:
            return Speed(float(s.sum() / e.sum()), 0.0, True)
    return Speed(0.0, float(s.sum() / (e * x).sum()), True)


def current_device():
    """The device that measured most recently (the worker likely to take the next run), or ""."""
    return SpeedSample.objects.values_list("device", flat=True).first() or ""


def auto_precision(device):
    """What ``precision=auto`` resolved to on ``device`` at full-size outputs, as last measured;
    before any measurement, what it picks on this machine's CPU (where ``make run`` starts the
    worker), from /proc/cpuinfo."""
    used = (
        SpeedSample.objects.filter(device=device, requested="auto", pixels__gte=AUTO_MIN_PIXELS)
        .values_list("precision", flat=True)
        .first()
    )
    return used or resolve_precision("auto")


def precision_refusal(requested, device=None):
    """Why the workers' device should not compute in ``requested``, or "": for bfloat16 and float16
    what its worker measured at start (``PrecisionCheck``); before any check, what this machine's CPU
    says (its worker starts beside the site: without AVX512_BF16 or AMX it only emulates them)."""
    if requested in ("auto", "float32"):
        return ""
    device = current_device() if device is None else device
    checked = PrecisionCheck.objects.filter(device=device, precision=requested).values_list("refusal", flat=True)
    for refusal in checked:
        return refusal
    if backend.name() == "tensorflow" and not cpu_has_bfloat16():
        return (f"{requested} is only emulated on this machine's CPU (no AVX512_BF16 or AMX), about 16× slower "
                "than float32")
    return ""


def workers_machine(device=None):
    """(bytes a run may use, backend) on the workers' machine: what ``device``'s worker read at start
    (``DeviceMemory``; None on a GPU, where nothing is checked) and the backend its label names; before
    any worker did, this machine's, where the TensorFlow backend computes on its CPU (``make run`` starts
    the worker beside the site)."""
    device = current_device() if device is None else device
    for limit in DeviceMemory.objects.filter(device=device).values_list("limit", flat=True):
        return limit, backend.named_in(device)
    chosen = backend.name()
    return (machine_memory() if chosen == "tensorflow" else None), chosen


# A photo enlarged more than this many times has no detail for the style to work on.
MAX_ENLARGEMENT = 2


def enlarged_note(project, rows):
    """What the Cost box says when the run would enlarge the photo so much that it looks soft, else ""."""
    try:
        height = project.content_image.height
    except (OSError, ValueError):
        return ""
    if rows <= MAX_ENLARGEMENT * height:
        return ""
    return (f"The photo is {height} pixels tall: at {rows} rows it is enlarged {rows / height:.1f} times, so the "
            f"result will look soft. Use fewer rows, or a larger photo.")


def memory_refusal(run, aspect, device=None):
    """Why the workers' machine cannot compute ``run`` (an output of its content's ``aspect``): too
    large for its backend's network on a CPU, or more memory than a run may use there
    (``workers_machine``), or ""."""
    return memory_refusal_within(run, aspect, workers_machine(device))


def memory_refusal_within(run, aspect, machine):
    """``memory_refusal`` on a known ``machine`` (``workers_machine``: its limit in bytes, or None where
    nothing is checked, and its backend), for many runs at once."""
    limit, chosen = machine
    if limit is None:
        return ""
    aspect = Fraction(aspect)
    try:
        check_run_fits((aspect.denominator, aspect.numerator), run, limit, where="the workers' machine",
                       backend=chosen)
    except SettingsError as exc:
        return str(exc)
    return ""


def precision_for(requested, pixels, device):
    if requested != "auto":
        return requested
    return "float32" if pixels < AUTO_MIN_PIXELS else auto_precision(device)


def speed_for(device, precision):
    samples = list(
        SpeedSample.objects.filter(device=device, precision=precision)
        .values_list("pixels", "evaluations", "seconds")[:FIT_SAMPLES]
    )
    return fit_speed(samples) or Speed(0.0, fallback_seconds_per_megapixel(precision), False)


def content_aspect(project):
    """Width over height of the project's content image (the run's output has its shape), exactly
    (stylecore.images.content_aspect), so that the estimates' and quotas' widths are the engine's."""
    try:
        return exact_aspect(project.content_image.width, project.content_image.height)
    except (OSError, ValueError, ZeroDivisionError):
        return exact_aspect(4, 1)  # the widest an upload may be: the estimate stays an upper bound


def run_aspect(run):
    """Width over height of a run's output: the size its latest saved iteration records (no file to
    open), else its project's content image."""
    size = (run.saved_iterations.filter(rows__gt=0, width__gt=0).order_by("-number")
            .values_list("width", "rows").first())
    return exact_aspect(*size) if size else content_aspect(run.project)


def iteration_plan(run, aspect):
    """[(rows, cols, first, last)] of each scale the run will compute: its size and the iterations
    first + 1 … last it computes there (stylecore's own ``scale_plan``, coarse to fine)."""
    rows = run.rows
    start_rows = rows if run.init == Run.Init.ITERATION else run.start_rows
    # The engine raises the first size by the content's own shape: height and width in lowest terms
    # give it the same quotient (the output's rounded width did not: 40×50 at 128 rows, 21 for 20).
    aspect = Fraction(aspect)
    plan = scale_plan(rows, smallest_rows((aspect.denominator, aspect.numerator), start_rows), run.iterations)
    scales, done = [], 0
    for size, last in plan:
        scales.append((size, output_width(size, aspect), done, last))
        done = last
    return scales


def run_scales(run, aspect):
    """[(rows, cols, evaluations)] of each scale the run will compute."""
    # An iteration is 20 evaluations, for Adam's steps too.
    return [(size, cols, (last - first) * EVALUATIONS_PER_ITERATION + EVALUATIONS_PER_SCALE)
            for size, cols, first, last in iteration_plan(run, aspect)]


@dataclass
class Estimate:
    seconds: float
    evaluations: int
    stored_bytes: int
    device: str
    precision: str
    measured: bool
    scales: list
    # One iteration at the full size, the slowest of the run.
    iteration_seconds: float = 0.0
    queue_ahead: int = 0
    start_in: float = 0.0

    @property
    def cpu_kind(self):
        """The kind of CPU whose built-in figures an unmeasured estimate uses."""
        return cpu_kind()

    @property
    def expected_start(self):
        return timezone.now() + timedelta(seconds=self.start_in)

    @property
    def turn_seconds(self):
        """RUN_TURN_SECONDS when the run would compute longer than one turn (it may then pause for
        other users' runs and finish later than its duration), else None."""
        return settings.RUN_TURN_SECONDS if self.seconds > settings.RUN_TURN_SECONDS else None


def estimate_run(run, aspect, owner=None, measured=None):
    """The Estimate of an unsaved (or queued) run of a content image ``aspect`` wide per row.
    With ``owner``, also where it would stand in the queue if launched now. ``measured``: a dict
    that keeps the device and speeds read from the database, for estimating many runs at once."""
    measured = {} if measured is None else measured
    if "device" not in measured:
        measured["device"] = current_device()
    device = measured["device"]
    precision = precision_for(run.precision, run.rows * output_width(run.rows, aspect), device)
    if precision not in measured:
        measured[precision] = speed_for(device, precision)
    speed = measured[precision]
    scales = run_scales(run, aspect)
    seconds = sum(speed.seconds(rows * cols, evaluations) for rows, cols, evaluations in scales)
    estimate = Estimate(
        seconds=seconds,
        evaluations=sum(evaluations for _, _, evaluations in scales),
        stored_bytes=estimated_run_bytes(run, aspect),
        device=device,
        precision=precision,
        measured=speed.measured,
        scales=scales,
        iteration_seconds=speed.seconds(scales[-1][0] * scales[-1][1], EVALUATIONS_PER_ITERATION),
    )
    if owner is not None:
        forecast = queue_forecast(extra=(owner.id, seconds))
        estimate.queue_ahead, estimate.start_in = forecast[None]
    return estimate


def remaining_seconds(run, aspect=None, measured=None):
    """Seconds until a run that has done ``iterations_done`` of its iterations finishes, written once
    (the run's "Time left" and the queue's forecast): each remaining iteration at its own scale's size
    (coarse-to-fine runs compute their early iterations at smaller sizes, far cheaper than the full
    size's), plus the start of each scale not begun yet, timed as ``estimate_run`` times them, at the
    run's own pace: its measured seconds per iteration over what the estimate gives its iterations
    done. Without a measurement yet, the estimate alone. ``aspect``: the output's width over height
    (else ``run_aspect``); ``measured``: as for ``estimate_run``, speeds kept across calls."""
    done = min(run.iterations_done, run.iterations)
    if done >= run.iterations:
        return 0.0
    aspect = run_aspect(run) if aspect is None else aspect
    measured = {} if measured is None else measured
    if not run.device and "device" not in measured:
        measured["device"] = current_device()
    device = run.device or measured["device"]
    plan = iteration_plan(run, aspect)
    precision = precision_for(run.precision, plan[-1][0] * plan[-1][1], device)
    if (device, precision) not in measured:
        measured[device, precision] = speed_for(device, precision)
    speed = measured[device, precision]
    # The part done of the iteration a running run is computing (its evaluations of 20) is behind it
    # too, so that "Time left" goes down during a long iteration, not only at its end.
    partial = run.next_iteration_done / EVALUATIONS_PER_ITERATION
    ahead = behind = 0.0
    for rows, cols, first, last in plan:
        iteration = speed.seconds(rows * cols, EVALUATIONS_PER_ITERATION)
        ahead += max(0, last - max(first, done)) * iteration
        behind += max(0, min(last, done) - first) * iteration
        if first <= done < last:
            ahead -= partial * iteration
        if done <= first and not (partial and done == first):
            ahead += speed.seconds(rows * cols, EVALUATIONS_PER_SCALE)
    pace = run.seconds_per_iteration * done / behind if run.seconds_per_iteration and behind > 0 else 1.0
    return max(0.0, pace * ahead)


@dataclass
class _Turns:
    """A run as the forecast plays it: ``key`` (its id; None for a run launched now), its owner, the
    seconds of computing it has left, the seconds of one of its iterations (a turn ends only when an
    iteration does), and whether it is queued (its start is forecast) or in progress."""

    key: object
    owner: int
    left: float
    iteration: float
    queued: bool = True

    def compute(self, seconds):
        """Compute for up to ``seconds`` (at least one iteration); return how long it took."""
        spent = min(self.left, max(seconds, self.iteration))
        self.left -= spent
        return spent


def queue_forecast(extra=None):
    """{run id: (runs ahead of it, seconds until it starts)} for every queued run; ``extra`` =
    (owner id, seconds) adds a run launched now, reported under the key None.

    The queue is played forward worker by worker: when one frees up, its run's owner has one run
    less in progress, and it takes the run the fair queue's rule picks among those due by then (a
    run in its retry back-off is due at ``not_before``). When none may start (not due yet, or their
    owners at the cap), the worker waits for the next worker to free up or the next run to fall due.
    Runs take turns as the workers make them (gallery.jobs): once a run has computed RUN_TURN_SECONDS,
    it pauses after an iteration at which another user's run is due, and goes back in the queue behind
    the runs waiting then, with the time it has left.
    """
    now = timezone.now()
    turn = settings.RUN_TURN_SECONDS
    running = list(Run.objects.filter(status=Run.Status.RUNNING).select_related("project"))
    waiting = []  # (place in the queue, run, seconds until it is due), oldest first
    rows = (Run.objects.filter(status=Run.Status.QUEUED).order_by(*QUEUE_ORDER)
            .values_list("id", "project__owner_id", "estimated_seconds", "not_before", "iterations", "iterations_done"))
    for run_id, owner, seconds, not_before, iterations, done in rows:
        todo = max(0, iterations - done)  # a run that paused, or stopped with its worker, has done some
        left = (seconds or 0.0) * todo / iterations if iterations else 0.0
        due_in = max(0.0, (not_before - now).total_seconds()) if not_before else 0.0
        waiting.append((len(waiting), _Turns(run_id, owner, left, left / max(1, todo)), due_in))
    if extra is not None:
        waiting.append((len(waiting), _Turns(None, extra[0], extra[1], extra[1]), 0.0))
    in_progress = {}
    # Workers as (next event, tie-breaker, the run they compute or None): the event is the run's end,
    # or the end of its turn; at least one worker.
    workers = []
    measured = {}
    for run in running:
        owner = run.project.owner_id
        in_progress[owner] = in_progress.get(owner, 0) + 1
        left = remaining_seconds(run, measured=measured)
        job = _Turns(run.id, owner, left, left / max(1, run.iterations - run.iterations_done), queued=False)
        turn_left = turn - (now - run.claimed).total_seconds() if run.claimed else turn
        workers.append((job.compute(max(0.0, turn_left)), len(workers), job))
    workers = workers or [(0.0, 0, None)]
    heapq.heapify(workers)
    ticket = len(workers)
    places = unstarted = len(waiting)
    forecast = {}
    started = 0
    while unstarted:
        clock, _, job = heapq.heappop(workers)
        ticket += 1
        oldest_due = {}
        for place, run, due_in in waiting:
            if due_in <= clock:
                oldest_due.setdefault(run.owner, place)
        if job is not None and job.left > 0:  # its turn is over
            if not turn_goes_to_another(job.owner, oldest_due, in_progress):
                heapq.heappush(workers, (clock + job.compute(0.0), ticket, job))
                continue
            waiting.append((places, job, 0.0))  # behind the runs waiting now
            oldest_due.setdefault(job.owner, places)
            places += 1
        if job is not None:
            in_progress[job.owner] -= 1
        owner = fairest_owner(oldest_due, in_progress)
        if owner is None:
            next_event = min([due_in for _, _, due_in in waiting if due_in > clock]
                             + [free_at for free_at, _, busy in workers if busy is not None])
            heapq.heappush(workers, (next_event, ticket, None))
            continue
        entry = next(item for item in waiting if item[0] == oldest_due[owner])
        waiting.remove(entry)
        run = entry[1]
        if run.queued:
            forecast[run.key] = (started, clock)
            unstarted -= 1
        started += 1
        in_progress[owner] = in_progress.get(owner, 0) + 1
        heapq.heappush(workers, (clock + run.compute(turn), ticket, run))
    return forecast


def expected_starts(runs):
    """{run id: (runs ahead, expected start time)} for those of ``runs`` that are queued."""
    if not any(run.status == Run.Status.QUEUED for run in runs):
        return {}
    now = timezone.now()
    return {
        run_id: (ahead, now + timedelta(seconds=seconds))
        for run_id, (ahead, seconds) in queue_forecast().items()
    }


def turn_ends(run, now=None):
    """When a running run is expected to pause for another user's run: the time its turn
    (RUN_TURN_SECONDS of computing in this attempt) ends, or None when it will finish first, or
    another user's run does not wait now. It pauses at the end of the iteration it computes then,
    never after its last one (gallery.jobs). The queue's forecast plays the same rule forward."""
    if run.status != Run.Status.RUNNING or not run.claimed or run.iterations - run.iterations_done < 2:
        return None
    now = now or timezone.now()
    if not another_user_waits(run.project.owner_id, now):  # the cheaper test first: pages poll this
        return None
    turn_left = max(0.0, settings.RUN_TURN_SECONDS - (now - run.claimed).total_seconds())
    if remaining_seconds(run) <= turn_left:
        return None
    return now + timedelta(seconds=turn_left)


class SpeedMeter:
    """Turns one engine call's reports into SpeedSample rows, one per scale (size and precision).

    The first report of a call includes the model build and the first image, so it only sets the
    baseline; after that, each report's new evaluations and seconds go to its scale."""

    def __init__(self, device, requested, calibration=False):
        self.device, self.requested, self.calibration = device[:100], requested, calibration
        self.last = None
        self.key = None
        self.evaluations = 0
        self.seconds = 0.0

    def report(self, report):
        key = (report.rows * report.width, report.precision)
        if self.last is not None:
            if key != self.key:
                self.flush()
            self.evaluations += report.evaluations - self.last[0]
            self.seconds += report.seconds - self.last[1]
        self.key = key
        self.last = (report.evaluations, report.seconds)

    def flush(self):
        """Store the current scale's sample and drop those no estimate reads any more; a failed
        write only costs the estimates one sample."""
        if self.key is not None and self.evaluations >= MIN_SAMPLE_EVALUATIONS and self.seconds > 0:
            kind = {"device": self.device, "precision": self.key[1], "requested": self.requested}
            try:
                SpeedSample.objects.create(
                    **kind, pixels=self.key[0], evaluations=self.evaluations, seconds=self.seconds,
                    calibration=self.calibration,
                )
                _prune_samples(kind)
            except DatabaseError:
                log.warning("A speed sample could not be stored.", exc_info=True)
        self.evaluations, self.seconds = 0, 0.0


def _prune_samples(kind):
    """Keep the FIT_SAMPLES newest samples of one device, precision and request: together they hold
    the newest FIT_SAMPLES of each device and precision that speed_for fits, so no estimate changes."""
    older = SpeedSample.objects.filter(**kind).values_list("id", flat=True)[FIT_SAMPLES:]
    SpeedSample.objects.filter(id__in=list(older)).delete()

