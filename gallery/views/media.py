"""Image files, served only to those who may see the project they belong to."""
import hashlib
import mimetypes
import posixpath

from django.http import FileResponse, Http404
from django.utils.cache import get_conditional_response
from django.utils.http import quote_etag
from django.views.decorators.http import require_GET

from gallery.access import get_iteration_for_user, get_project_for_user, get_run_for_user

PROJECT_FILES = {
    "content": "content_image",
    "content-thumb": "content_thumbnail",
    "style": "style_image",
    "style-thumb": "style_thumbnail",
}
RUN_FILES = {"base": "base_image", "style": "style_image", "init": "init_image"}


def serve_file(request, field_file, *, download_name=None):
    """The file, revalidated on every request: once a project turns private, viewers lose it at once.

    Stored files are never rewritten under the same name (a replaced image gets a new name), so the
    name is a sound ETag and a browser's revalidation costs a 304 without reading the file.
    """
    if not field_file or not field_file.name:
        raise Http404("No such image.")
    etag = quote_etag(hashlib.sha256(f"{field_file.name}|{download_name}".encode()).hexdigest()[:32])
    not_modified = get_conditional_response(request, etag=etag)
    if not_modified is not None:
        not_modified["Cache-Control"] = "private, no-cache"
        return not_modified
    try:
        handle = field_file.open("rb")
    except (FileNotFoundError, OSError):
        raise Http404("The image file is missing.")
    content_type = mimetypes.guess_type(field_file.name)[0] or "application/octet-stream"
    if download_name:
        download_name += posixpath.splitext(field_file.name)[1]
    response = FileResponse(
        handle, content_type=content_type, as_attachment=bool(download_name), filename=download_name or ""
    )
    # Private (no shared caches) and no-cache: the permission check runs on every request.
    response["Cache-Control"] = "private, no-cache"
    response["ETag"] = etag
    return response


@require_GET
def project_media(request, project_id, kind):
    project = get_project_for_user(request, project_id)
    if kind not in PROJECT_FILES:
        raise Http404("No such image.")
    download = f"{project.title}-{kind}" if request.GET.get("download") else None
    return serve_file(request, getattr(project, PROJECT_FILES[kind]), download_name=download)


STYLE_FILES = {"image": "image", "thumb": "thumbnail"}


def _numbered(files, number):
    if not 1 <= number <= len(files):
        raise Http404("No such style image.")
    return files[number - 1]


@require_GET
def project_style_media(request, project_id, number, kind):
    """Style image ``number`` of a project (1 is its own style image), full size or thumbnail."""
    project = get_project_for_user(request, project_id)
    if kind not in STYLE_FILES:
        raise Http404("No such image.")
    slot = _numbered(project.style_slots(), number)
    return serve_file(request, getattr(slot, STYLE_FILES[kind]))


@require_GET
def run_style_media(request, run_id, number):
    """The run's own copy of style image ``number``, as it was when the run was launched."""
    run = get_run_for_user(request, run_id)
    return serve_file(request, _numbered(run.style_files(), number))


@require_GET
def run_media(request, run_id, kind):
    run = get_run_for_user(request, run_id)
    if kind not in RUN_FILES:
        raise Http404("No such image.")
    download = f"{run.label}-{kind}" if request.GET.get("download") else None
    return serve_file(request, getattr(run, RUN_FILES[kind]), download_name=download)


@require_GET
def iteration_image(request, run_id, number):
    iteration = get_iteration_for_user(request, run_id, number)
    download = f"{iteration.run.label}-iteration-{number}" if request.GET.get("download") else None
    return serve_file(request, iteration.image, download_name=download)


@require_GET
def iteration_thumbnail(request, run_id, number):
    return serve_file(request, get_iteration_for_user(request, run_id, number).thumbnail)
