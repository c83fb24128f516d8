"""What the tests build: small pictures and uploads, projects with stored images, runs with saved
iterations (rows and files as a worker writes them, without the engine) and launch form data."""
import io

import numpy as np
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from gallery import files
from gallery.models import Iteration, Project, Run

PASSWORD = "correct horse battery staple"
# The notebook's start at a size the engine computes in seconds: iteration 0 is the photo.
TINY = {"rows": 48, "iterations": 3, "save_every": 1, "init": "content"}
# Launch form data for a run the engine computes in seconds.
TINY_FORM = {
    "content_weight": 1,
    "style_weight": 0.3,
    "tv_weight": 0.0001,
    "iterations": 3,
    "rows": 64,
    "save_every": 1,
    "style_fit": "crop",
    "optimizer": "lbfgs",
    "init": "content",
}
# Valid launch form data for a run that is only queued, never computed.
VALID = {
    "content_weight": "1",
    "style_weight": "0.01",
    "tv_weight": "0.001",
    "iterations": "50",
    "rows": "256",
    "save_every": "10",
    "style_fit": "crop",
    "optimizer": "lbfgs",
    "init": "content",
    "seed": "",
}


def make_image(width=64, height=48, mode="RGB", fmt="PNG", seed=0, **save_options):
    """Bytes of a small picture with structure (gradients and a disc), in any mode and format."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    red = 255 * x / max(width - 1, 1)
    green = 255 * y / max(height - 1, 1)
    blue = np.where((x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 3) ** 2, 220, 40)
    rgb = np.stack([red, green, blue], axis=-1) + rng.normal(0, 8, (height, width, 3))
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_options)
    return buffer.getvalue()


def png_bytes(pixels):
    """PNG bytes of a uint8 (H, W, 3) array, e.g. one of stylecore.samples' pictures."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def picture(width=64, height=48, seed=0):
    return Image.open(io.BytesIO(make_image(width, height, seed=seed))).convert("RGB")


def upload(name="image.png", data=None, content_type="image/png"):
    return SimpleUploadedFile(name, make_image() if data is None else data, content_type=content_type)


def create_project(user, title="Bird and Scream", *, is_public=False, content=None, style=None):
    """A project with real stored images, as the create view would make it."""
    project = Project(owner=user, title=title, is_public=is_public)
    content_image = Image.open(io.BytesIO(content or make_image(64, 48, seed=1))).convert("RGB")
    style_image = Image.open(io.BytesIO(style or make_image(40, 60, seed=2))).convert("RGB")
    project.stored_bytes = files.save_project_image(project, "content", content_image)
    project.stored_bytes += files.save_project_image(project, "style", style_image)
    project.save()
    return project


def make_run(project, **settings):
    """A queued run of TINY settings (``settings`` override them)."""
    return Run.objects.create(project=project, **{**TINY, **settings})


def create_run(project, *, numbers=(0, 1, 2, 3), status=Run.Status.DONE, size=(64, 48), **settings):
    """A run with saved iterations ``numbers``, each with a real PNG and thumbnail."""
    settings.setdefault("rows", size[1])
    settings.setdefault("iterations", max(numbers) if numbers else 3)
    settings.setdefault("save_every", 1)
    run = Run(project=project, status=status, iterations_done=max(numbers) if numbers else 0, **settings)
    files.save_image(run.base_image, picture(*size, seed=1))
    files.save_image(run.style_image, picture(*size, seed=2))
    if numbers:
        run.loss = 1000.0 / (1 + max(numbers))
        run.elapsed_seconds = 1.5 * max(numbers)
        run.seconds_per_iteration = 1.5
    run.save()
    for number in numbers:
        add_iteration(run, number, size=size)
    return run


def add_iteration(run, number, *, size=(64, 48), loss=None):
    """A saved iteration with real files, as a worker would write it."""
    iteration = Iteration(
        run=run,
        number=number,
        loss=1000.0 / (1 + number) if loss is None else loss,
        content_loss=100.0 / (1 + number),
        style_loss=800.0 / (1 + number),
        tv_loss=5.0 + number,
        evaluations=20 * number,
        seconds=1.5 * number,
    )
    image = picture(*size, seed=10 + number)
    files.save_image(iteration.image, image)
    files.save_thumbnail(iteration.thumbnail, image)
    iteration.save()
    return iteration


def new_run_url(project, **query):
    url = reverse("run_create", args=[project.id])
    if query:
        url += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    return url


def stored_files(folder="runs"):
    return default_storage.listdir(folder)[1] if default_storage.exists(folder) else []
