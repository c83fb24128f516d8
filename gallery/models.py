"""Projects pair a content and a style image; runs are weight settings; iterations are saved results."""
import math
import secrets
from urllib.parse import urlencode

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.deconstruct import deconstructible

from stylecore.engine import EVALUATIONS_PER_ITERATION
from stylecore.schema import DEFAULTS, SETTING, SETTINGS, RunSettings, format_number, run_label, saves_iteration
from stylecore.settings import PRECISIONS_TEXT_LENGTH, parse_style_blend

# Defaults a run form is prefilled with: the engine's own (stylecore.schema is plain Python; TensorFlow is
# only imported inside the engine's functions, so views stay free of it).
RUN_DEFAULTS = DEFAULTS.as_dict()
# A run's blend weights, one per style image it uses ("1": the project's first style alone).
DEFAULT_STYLE_BLEND = "1"
# Style images one project may hold (its own style image and the further ones).
MAX_STYLE_IMAGES = 5


def media_name(extension):
    """A fresh, unguessable file name such as ``3f9c0b….jpg`` (the field's upload_to adds the folder)."""
    return f"{secrets.token_hex(12)}.{extension}"


class ProjectQuerySet(models.QuerySet):
    def with_cover(self):
        """Each project with its run_count and its cover: ``cover_id``, the run that shows it (the one
        its owner chose, else the run that finished last: losses of runs with other weights are on
        other scales, so the lowest would pick the least stylised run), and ``cover_number``, that
        run's latest saved iteration (None: no finished run yet)."""
        last_done = Run.objects.filter(project=models.OuterRef("pk"), status=Run.Status.DONE)
        last_done = last_done.order_by(models.F("finished").desc(nulls_last=True), "-id")
        latest = Iteration.objects.filter(run_id=models.OuterRef("cover_id")).order_by("-number")
        return self.annotate(
            run_count=models.Count("runs"),
            cover_id=models.Case(
                models.When(cover_run__status=Run.Status.DONE, then=models.F("cover_run_id")),
                default=models.Subquery(last_done.values("id")[:1]),
            ),
            cover_number=models.Subquery(latest.values("number")[:1]),
        )


class Project(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects")
    title = models.CharField(max_length=120)
    content_image = models.ImageField(upload_to="projects", max_length=200)
    content_thumbnail = models.ImageField(upload_to="projects", max_length=200)
    style_image = models.ImageField(upload_to="projects", max_length=200)
    style_thumbnail = models.ImageField(upload_to="projects", max_length=200)
    is_public = models.BooleanField(default=False, help_text="Public projects are visible read-only to every signed-in user.")
    stored_bytes = models.PositiveBigIntegerField(default=0, help_text="Bytes of the project's own image files.")
    # The run whose latest image shows the project in the public gallery; none: the run that finished last.
    cover_run = models.ForeignKey("Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("project_detail", args=[self.id])

    def image_files(self):
        files = [self.content_image, self.content_thumbnail]
        for slot in self.style_slots():
            files.extend([slot.image, slot.thumbnail])
        return files

    def style_slots(self):
        """The project's style images in order: its own style image first, then the further ones
        (a project not saved yet has only its own)."""
        return [self] + (list(self.extra_styles.all()) if self.pk else [])

    @property
    def image(self):
        """The first style slot's image (a Project is the first of its own style slots)."""
        return self.style_image

    @property
    def thumbnail(self):
        return self.style_thumbnail


class ProjectStyle(models.Model):
    """A further style image of a project; runs blend the style images with weights. The project's
    own ``style_image`` is the first; these follow in ``position`` order."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="extra_styles")
    position = models.PositiveIntegerField()
    image = models.ImageField(upload_to="projects", max_length=200)
    thumbnail = models.ImageField(upload_to="projects", max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self):
        return f"{self.project.title} · style {self.position}"


class Sweep(models.Model):
    """A grid of runs of one project that differ in one or two settings (the axes); the others are shared.

    Each run of the sweep knows its cell: ``sweep_row`` indexes ``axis1_values`` (down the matrix),
    ``sweep_column`` indexes ``axis2_values`` (across; 0 when there is no second axis).
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sweeps")
    axis1 = models.CharField(max_length=40, help_text="The run setting that varies down the matrix.")
    axis1_values = models.JSONField(default=list)
    axis2 = models.CharField(max_length=40, blank=True, help_text="The run setting that varies across; blank: one row.")
    axis2_values = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self):
        return f"{self.project.title} · sweep {self.id}"

    def get_absolute_url(self):
        return reverse("sweep_detail", args=[self.id])


@deconstructible
class SettingDefault:
    """A column's default read from the schema when a row is made: changing a default needs no migration."""

    def __init__(self, name):
        self.name = name

    def __call__(self):
        return SETTING[self.name].default

    def __eq__(self, other):
        return isinstance(other, SettingDefault) and other.name == self.name


def _column(setting):
    """The model field that stores a setting (queries and the admin need columns)."""
    options = dict(verbose_name=setting.label, default=SettingDefault(setting.name))
    if setting.optional:
        options.update(null=True, blank=True)
    if setting.type is float:
        return models.FloatField(**options)
    if setting.type is int:
        return models.PositiveIntegerField(**options)
    if setting.choices:
        return models.CharField(max_length=20, choices=setting.choices, **options)
    return models.CharField(max_length=300, **options)


def _choices(name):
    """A setting's choices as TextChoices, so code can say Run.Init.ADAIN."""
    return models.TextChoices(name, [(value.upper(), (value, label)) for value, label in SETTING[name].choices])


# A run's settings as columns, one per stylecore.schema Setting.
RunSettingsColumns = type("RunSettingsColumns", (models.Model,), {
    "__module__": __name__,
    "Meta": type("Meta", (), {"abstract": True}),
    **{setting.name: _column(setting) for setting in SETTINGS},
})


class Run(RunSettingsColumns):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    StyleFit = _choices("style_fit")
    Optimizer = _choices("optimizer")
    Init = _choices("init")
    PreserveColors = _choices("preserve_colors")
    Precision = _choices("precision")

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    FINISHED = (Status.DONE, Status.FAILED, Status.CANCELLED)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    # One weight per style image of the run, in order: style_source first, then extra_styles.
    style_blend = models.CharField(max_length=200, default=DEFAULT_STYLE_BLEND)
    # The iteration a continued run started from (kept for provenance; its image is copied to
    # init_image so the run does not depend on the other run still existing).
    init_iteration = models.ForeignKey(
        "Iteration", null=True, blank=True, on_delete=models.SET_NULL, related_name="continuations"
    )
    init_image = models.ImageField(upload_to="runs", max_length=200, blank=True)
    # The engine's exact float image of that iteration, when the worker kept one (see gallery.checkpoints).
    init_checkpoint = models.FileField(upload_to="runs", max_length=200, blank=True)
    # The run's own copies of the project's images as they were at launch: replacing a project
    # image later (then resuming) never mixes inputs. Runs from before these fields have none and
    # read the project's images.
    content_source = models.ImageField(upload_to="runs", max_length=200, blank=True)
    style_source = models.ImageField(upload_to="runs", max_length=200, blank=True)
    # The pre-flight estimate at launch (gallery.estimates): compared with the run's real duration,
    # and used for the expected start of the runs queued behind it.
    estimated_seconds = models.FloatField(null=True, blank=True)
    # The sweep this run is a cell of (row: index into axis1_values, column: into axis2_values).
    sweep = models.ForeignKey(Sweep, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    sweep_row = models.PositiveIntegerField(null=True, blank=True)
    sweep_column = models.PositiveIntegerField(null=True, blank=True)

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    # The engine's view of the inputs: the notebook's output_at_iteration_0_base/_style.
    base_image = models.ImageField(upload_to="runs", max_length=200, blank=True)
    style_image = models.ImageField(upload_to="runs", max_length=200, blank=True)

    iterations_done = models.PositiveIntegerField(default=0)
    evaluations = models.PositiveIntegerField(default=0)
    # Loss evaluations done of the iteration being computed (up to EVALUATIONS_PER_ITERATION), written
    # every few seconds and back to 0 at each report, so that the page moves while an iteration takes
    # minutes (a large run on a CPU).
    next_iteration_evaluations = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True)
    content_loss = models.FloatField(null=True, blank=True)
    style_loss = models.FloatField(null=True, blank=True)
    tv_loss = models.FloatField(null=True, blank=True)
    seconds_per_iteration = models.FloatField(null=True, blank=True)
    elapsed_seconds = models.FloatField(default=0)
    device = models.CharField(max_length=100, blank=True)
    precision_used = models.CharField(max_length=PRECISIONS_TEXT_LENGTH, blank=True,
                                      help_text='What the convolutions ran in, e.g. "bfloat16, then float32".')
    converged = models.BooleanField(default=False, help_text="L-BFGS finished before the last iteration.")
    # Each claim by a worker increments it; that worker's writes are filtered on it (its ownership token).
    attempts = models.PositiveIntegerField(default=0, help_text="How many times a worker has claimed this run.")
    crashes = models.PositiveIntegerField(default=0, help_text="How many times its worker died or hung.")
    cancel_requested = models.BooleanField(default=False)
    # Infrastructure failures (storage, database, weights, memory) re-queue the run until not_before; the
    # run fails only after RUN_MAX_INFRA_RETRIES of them. ``notice`` says why it waits.
    infra_failures = models.PositiveIntegerField(default=0)
    not_before = models.DateTimeField(null=True, blank=True)
    notice = models.CharField(max_length=300, blank=True)
    # Bytes of the files this run stored (inputs as the engine saw them, copies, iterations).
    stored_bytes = models.PositiveBigIntegerField(default=0)

    created = models.DateTimeField(auto_now_add=True)
    # The run's place in the queue: its launch, or when it last paused to let another user's run
    # have a worker (gallery.jobs, RUN_TURN_SECONDS), which puts it behind the runs queued by then. A
    # worker's shutdown, a crash or a retry keep its place.
    queued_since = models.DateTimeField(default=timezone.now, db_index=True)
    # When the worker computing it claimed it (the start of its turn).
    claimed = models.DateTimeField(null=True, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True, db_index=True)
    # Without a new iteration by then the run is hung (the heartbeat only proves the process lives);
    # each report moves it on by the run's own patience (gallery.jobs.STALL_ITERATIONS).
    stall_deadline = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self):
        return f"{self.project.title} · {self.label}"

    def get_absolute_url(self):
        return reverse("run_detail", args=[self.id])

    @property
    def settings(self):
        """The run's settings as the engine takes them (stylecore.schema.RunSettings)."""
        return RunSettings.from_mapping({name: getattr(self, name) for name in SETTING})

    @property
    def label(self):
        """The notebook's folder name, output_{tv}_{style}_{content}, plus what differs from defaults."""
        label = run_label(self)
        if self.style_blend != DEFAULT_STYLE_BLEND:
            label += "_blend" + "-".join(format_number(w) for w in self.blend_weights)
        return label

    @property
    def blend_weights(self):
        return parse_style_blend(self.style_blend)

    def style_files(self):
        """The run's style images in blend order: its copy of the first, then its further copies."""
        return [self.style_source] + [style.source for style in self.extra_styles.all()]

    @property
    def is_active(self):
        return self.status in self.ACTIVE

    EVALUATIONS_PER_ITERATION = EVALUATIONS_PER_ITERATION  # for the templates

    @property
    def next_iteration_done(self):
        """Evaluations done of the iteration being computed, while the run is running (an iteration that
        goes on in float32 after a low precision has one more: not shown)."""
        if self.status != self.Status.RUNNING:
            return 0
        return min(self.next_iteration_evaluations, EVALUATIONS_PER_ITERATION)

    @property
    def progress_value(self):
        """Iterations done, with the part done of the one being computed."""
        return min(self.iterations, self.iterations_done + self.next_iteration_done / EVALUATIONS_PER_ITERATION)

    @property
    def progress_percent(self):
        if not self.iterations:
            return 0
        return min(100, round(100 * self.progress_value / self.iterations))

    @property
    def computed_seconds(self):
        """Seconds spent computing so far; None for a run no worker has started (not 0.0 s)."""
        return self.elapsed_seconds if self.started or self.elapsed_seconds else None

    @property
    def eta_seconds(self):
        """Time left of a running run once it has measured its pace (gallery.estimates.remaining_seconds:
        each remaining iteration at its own scale's size), else None."""
        if self.status != self.Status.RUNNING or not self.seconds_per_iteration:
            return None
        from gallery.estimates import remaining_seconds  # gallery.estimates imports this module

        return remaining_seconds(self)

    def saves_iteration(self, number):
        """Whether the run keeps iteration ``number`` (stylecore.schema.saves_iteration)."""
        return saves_iteration(number, self.iterations, self.save_every)

    def latest_iteration(self):
        return self.saved_iterations.order_by("-number").first()

    def image_files(self):
        files = [self.init_image, self.init_checkpoint, self.content_source, self.style_source, self.base_image,
                 self.style_image]
        files.extend(style.source for style in self.extra_styles.all())
        for iteration in self.saved_iterations.all():
            files.extend([iteration.image, iteration.thumbnail, iteration.checkpoint])
        return files


class RunInput(models.Model):
    """A picture runs of a project compute from (content or style), stored once per project by its
    content: every run of a sweep, and every later run of the same images, names this one file in
    its ``content_source``, ``style_source`` or ``RunStyle.source``. Runs still keep what they were
    launched with when the project's images are replaced (a new picture is a new row), and the
    user's storage counts each picture once (``gallery.quotas``). The rows and their files go with
    the project; deleting one run leaves them (a launch may be pointing a new run at one)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="run_inputs")
    digest = models.CharField(max_length=64)  # SHA-256 of the file's bytes, hex
    file = models.FileField(upload_to="runs", max_length=200)
    size = models.PositiveBigIntegerField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "digest"], name="one_stored_copy_per_picture")]

    def __str__(self):
        return f"{self.file.name} ({self.digest[:12]}…)"


class RunStyle(models.Model):
    """A further style image the run blends (the first is ``Run.style_source``); ``source`` names the
    project's stored copy (a ``RunInput``'s file)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="extra_styles")
    position = models.PositiveIntegerField()
    source = models.ImageField(upload_to="runs", max_length=200)

    class Meta:
        ordering = ["position", "id"]


class Iteration(models.Model):
    """One saved iteration of a run (every save_every-th, plus 0 and the last)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="saved_iterations")
    number = models.PositiveIntegerField()
    image = models.ImageField(upload_to="runs", max_length=200)
    thumbnail = models.ImageField(upload_to="runs", max_length=200)
    loss = models.FloatField()
    content_loss = models.FloatField()
    style_loss = models.FloatField()
    tv_loss = models.FloatField()
    evaluations = models.PositiveIntegerField()
    seconds = models.FloatField(help_text="Seconds of computation since the run started.")
    # The engine's exact float image (gallery.checkpoints), kept for the latest saved iteration only.
    checkpoint = models.FileField(upload_to="runs", max_length=200, blank=True)
    # The size this iteration was computed at: below the run's rows at the coarse scales.
    rows = models.PositiveIntegerField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Iterations are only ever listed within one run: order by number, with no join to Run.
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="unique_iteration_number_per_run")]

    def __str__(self):
        return f"{self.run.label} #{self.number}"

    def get_absolute_url(self):
        return reverse("iteration_image", args=[self.run_id, self.number])

    @property
    def continue_url(self):
        """The launch form prefilled to start a new run from this saved iteration."""
        query = urlencode({"from_run": self.run_id, "from_iteration": self.number})
        return f"{reverse('run_create', args=[self.run.project_id])}?{query}"

    @property
    def has_finite_loss(self):
        return math.isfinite(self.loss)


class LossPoint(models.Model):
    """The losses of one computed iteration of a run, every iteration (the loss curves' points);
    ``Iteration`` keeps the saved ones with their images. None: the loss was not finite."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="loss_points")
    number = models.PositiveIntegerField()
    loss = models.FloatField(null=True)
    content_loss = models.FloatField(null=True)
    style_loss = models.FloatField(null=True)
    tv_loss = models.FloatField(null=True)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="one_loss_point_per_iteration")]

    def __str__(self):
        return f"{self.run_id} #{self.number}: {self.loss}"


class Preview(models.Model):
    """An AdaIN picture of a project's images at one alpha and size, computed on the preview lane.

    Cached per (content file, style file, alpha, rows, colour): a replaced image has a new file name,
    so its previews are simply never asked for again (and are removed with the next request).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Computing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="previews")
    content_name = models.CharField(max_length=200)
    style_name = models.CharField(max_length=200)
    alpha = models.FloatField()
    rows = models.PositiveIntegerField()
    # Colour preservation ("" = off), for when the colour controls exist.
    colour = models.CharField(max_length=20, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    image = models.ImageField(upload_to="previews", max_length=200, blank=True)
    error = models.TextField(blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="The engine's seconds for this picture.")
    requested = models.DateTimeField(help_text="When it was last asked for (queued again when stuck).")
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "content_name", "style_name", "alpha", "rows", "colour"], name="unique_preview"
            )
        ]

    def __str__(self):
        return f"{self.project.title} preview α={self.alpha:g}"


class Signup(models.Model):
    """An account made in the last hour, by a keyed hash of its client's address (gallery.signups)."""

    address = models.CharField(max_length=32, db_index=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)


class Lane(models.Model):
    """A worker lane's state as the pages tell it: ``warm`` once its model is loaded."""

    name = models.CharField(max_length=40, primary_key=True)
    warm_since = models.DateTimeField(null=True, blank=True)
    started = models.DateTimeField(null=True, blank=True)


class SpeedSample(models.Model):
    """Measured seconds for ``evaluations`` loss evaluations at ``pixels`` output pixels, on one
    device and precision: from a worker's start-up calibration and from every scale of every run.
    gallery.estimates fits seconds per evaluation = a + b × megapixels to the latest of them."""

    device = models.CharField(max_length=100)
    precision = models.CharField(max_length=10, help_text="What the convolutions ran in.")
    requested = models.CharField(max_length=10, help_text="What was asked for (auto or a type).")
    pixels = models.PositiveIntegerField()
    evaluations = models.PositiveIntegerField()
    seconds = models.FloatField()
    calibration = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created", "-id"]


class DeviceMemory(models.Model):
    """How much memory a run may use on a device, as its worker read it at start
    (``Engine.memory_limit``; empty on a GPU, where it is not checked). The launch form refuses a
    run that would need more, with the rows that fit (``stylecore.memory``)."""

    device = models.CharField(max_length=100, unique=True)
    limit = models.BigIntegerField(null=True, blank=True, help_text="Bytes; empty where not checked.")
    checked = models.DateTimeField(auto_now=True)


class PrecisionCheck(models.Model):
    """Whether a device computes a low precision natively, as its worker measured at start
    (``Engine.emulation``: no kernel, or a test convolution with its gradient slower than in float32). The launch
    form refuses a low precision that the workers' device only emulates, with this reason."""

    device = models.CharField(max_length=100)
    precision = models.CharField(max_length=10)
    refusal = models.TextField(blank=True, help_text="Why not to use it here; empty where it is native.")
    checked = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "precision"], name="one_check_per_device_precision")]
