"""Writing and removing the image files behind projects, runs and iterations, and checkpoints.

A checkpoint is the engine's exact float image of a saved iteration (``report.pixels()``, float32
in the engine's own pixel space) as a compressed ``.npz``. The PNG beside it is 8-bit, so resuming
from the PNG would round every pixel and lose the optimiser's progress below one grey level; a
resumed or continued run starts from the checkpoint instead.
"""
import io
import logging
import posixpath

import numpy as np

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from gallery import images
from gallery.models import media_name

log = logging.getLogger(__name__)


def save_file(field_file, extension, content):
    """Store ``content`` in a model's file field under a fresh name (the model is not saved); return its bytes."""
    field_file.save(media_name(extension), content, save=False)
    return content.size


def save_image(field_file, image, fmt="PNG"):
    """Encode a Pillow image into a model's file field under a fresh name (the model is not saved);
    return the bytes written."""
    return save_file(field_file, "png" if fmt == "PNG" else "jpg", images.image_file(image, fmt))


def save_thumbnail(field_file, image):
    return save_file(field_file, "jpg", images.thumbnail_file(image))


class CheckpointError(Exception):
    """A checkpoint file is missing or not what the worker wrote."""


def save_checkpoint(field_file, pixels):
    """Store float pixels (H, W, 3) compressed under a fresh name; return the bytes written."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, pixels=np.asarray(pixels, dtype=np.float32))
    return save_file(field_file, "npz", ContentFile(buffer.getvalue()))


def read_checkpoint(field_file):
    """The float32 (H, W, 3) pixels of a checkpoint; CheckpointError if it cannot be read."""
    try:
        with field_file.open("rb") as handle:
            with np.load(io.BytesIO(handle.read()), allow_pickle=False) as data:
                pixels = data["pixels"]
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise CheckpointError(f"checkpoint {field_file.name} is unreadable ({exc})") from None
    if pixels.dtype != np.float32 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise CheckpointError(f"checkpoint {field_file.name} holds {pixels.dtype} {pixels.shape}, not pixels")
    return pixels


def copy_file(source, target):
    """Store a copy of one file field's file into another under a fresh name; return its bytes."""
    with source.open("rb") as handle:
        content = ContentFile(handle.read())
    return save_file(target, extension(source.name), content)


def extension(name):
    """A stored file's extension without the dot ("jpg" for a name without one)."""
    return posixpath.splitext(name)[1].lstrip(".") or "jpg"


def save_project_image(project, which, image):
    """Store an upload ("content" or "style") re-encoded as JPEG, with its thumbnail; return the bytes."""
    return save_image(getattr(project, f"{which}_image"), image, fmt="JPEG") + save_thumbnail(
        getattr(project, f"{which}_thumbnail"), image
    )


def total_size(field_files):
    """Bytes of the non-empty file fields given, as stored."""
    return sum(default_storage.size(name) for name in stored_names(field_files))


def stored_names(field_files):
    """The storage names of the non-empty file fields given."""
    return [f.name for f in field_files if f and f.name]


def delete_names(names):
    """Remove stored files now, ignoring files already gone."""
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            log.warning("Could not delete %s", name, exc_info=True)


def delete_names_on_commit(names):
    """Remove stored files once the surrounding transaction commits (never before the rows go)."""
    names = list(names)
    transaction.on_commit(lambda: delete_names(names))
