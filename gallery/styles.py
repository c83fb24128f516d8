"""A project's style images: the project's own ``style_image`` first, then its ProjectStyle rows.

Each is a slot with an ``image`` and a ``thumbnail`` (``Project.style_slots``). Adding writes a new
slot; removing and moving shift or swap the stored files between slots, so the first slot stays the
project's own style image and every earlier run keeps its own copies. Old files go only once the
change is committed; a failure removes what was written and keeps the rows as they were.
"""
from django.db import transaction

from gallery import files, quotas
from gallery.models import MAX_STYLE_IMAGES, ProjectStyle


class StyleError(Exception):
    """The change cannot be made; the message says why."""


def _store(project, slots):
    """Save the slots changed, then the project's count of stored bytes."""
    for slot in slots:
        slot.save()
    project.stored_bytes = files.total_size(project.image_files())
    project.save(update_fields=["stored_bytes", "updated"])


def add_style(project, image, limits=None):
    """Store an upload (a Pillow image, checked like every upload) as the project's last style image.

    ``limits``: the owner's storage check (gallery.quotas), asked again under the owner's lock; the
    slots are counted under it too, so uploads at once neither pass MAX_STYLE_IMAGES nor share a position."""
    style = ProjectStyle(project=project)
    try:
        with quotas.held(project.owner_id, limits):
            slots = project.style_slots()
            if len(slots) >= MAX_STYLE_IMAGES:
                raise StyleError(f"A project holds at most {MAX_STYLE_IMAGES} style images; remove one first.")
            style.position = slots[-1].position + 1 if len(slots) > 1 else 2
            files.save_image(style.image, image, fmt="JPEG")
            files.save_thumbnail(style.thumbnail, image)
            _store(project, [style])
    except BaseException:
        files.delete_names(files.stored_names([style.image, style.thumbnail]))
        raise
    return style


def _names(slot):
    return slot.image.name, slot.thumbnail.name


def _set_names(slot, names):
    slot.image.name, slot.thumbnail.name = names


def remove_style(project, number):
    """Remove style image ``number`` (1 = the first); the later ones move up."""
    slots = project.style_slots()
    if not 1 <= number <= len(slots):
        raise StyleError(f"This project has no style image {number}.")
    if len(slots) == 1:
        raise StyleError("A project needs a style image; replace it from the Edit page instead.")
    removed = _names(slots[number - 1])
    with transaction.atomic():
        for slot, following in zip(slots[number - 1:], slots[number:]):
            _set_names(slot, _names(following))
        slots[-1].delete()
        _store(project, slots[number - 1:-1])
        files.delete_names_on_commit(removed)


def move_style(project, number, offset):
    """Swap style image ``number`` with its neighbour ``offset`` (-1 earlier, +1 later) places away."""
    slots = project.style_slots()
    other = number + offset
    if offset not in (-1, 1) or not (1 <= number <= len(slots) and 1 <= other <= len(slots)):
        raise StyleError("That style image cannot move further.")
    first, second = slots[number - 1], slots[other - 1]
    names = _names(first)
    _set_names(first, _names(second))
    _set_names(second, names)
    with transaction.atomic():
        _store(project, [first, second])
