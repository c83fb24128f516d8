"""Writing and removing the image files behind projects, runs and iterations."""
import logging

from django.core.files.storage import default_storage
from django.db import transaction

from gallery import images
from gallery.models import media_name

log = logging.getLogger(__name__)


def save_image(field_file, image, fmt="PNG"):
    """Encode a Pillow image into a model's file field under a fresh name (the model is not saved)."""
    extension = "png" if fmt == "PNG" else "jpg"
    field_file.save(media_name(extension), images.image_file(image, fmt), save=False)


def save_thumbnail(field_file, image):
    field_file.save(media_name("jpg"), images.thumbnail_file(image), save=False)


def save_project_image(project, which, image):
    """Store an upload ("content" or "style") re-encoded as JPEG, with its thumbnail."""
    save_image(getattr(project, f"{which}_image"), image, fmt="JPEG")
    save_thumbnail(getattr(project, f"{which}_thumbnail"), image)


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
