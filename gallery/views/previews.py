"""The instant preview and the launch form's estimate: small server-rendered fragments.

A preview is asked for with a POST (it may queue work on the preview lane) and watched with GETs
that wait briefly for the lane's answer; both answer with the fragment ``_preview.html`` renders,
which live.js swaps in. Without JavaScript the POST redirects back to the page. The estimate is a
GET of the launch form's fields, answered with the ``_estimate.html`` fragment.
"""
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from gallery import previews
from gallery.access import get_project_for_user
from gallery.models import Preview
from gallery.run_forms import RunForm
from gallery.views.media import serve_file
from gallery.views.runs import continue_source, estimate_context

# How long one GET of a pending preview waits for the lane before answering "still computing".
PREVIEW_WAIT_SECONDS = 3.0
# The POST waits less: the page shows "computing…" at once if the lane is slow.
PREVIEW_POST_WAIT_SECONDS = 1.5


def _wants_fragment(request):
    return request.headers.get("X-Fragment") == "1"


def _bad_alpha():
    return HttpResponseBadRequest("The style strength (alpha) must be a number from 0 to 1.")


def _render_preview(request, project, preview, alpha):
    response = render(request, "gallery/_preview.html", previews.preview_context(project, preview, alpha))
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def preview_request(request, project_id):
    project = get_project_for_user(request, project_id, owner_only=True)
    alpha = previews.parse_alpha(request.POST.get("alpha"))
    if alpha is None:
        return _bad_alpha()
    preview = previews.request_preview(project, alpha)
    if not _wants_fragment(request):
        return redirect(f"{project.get_absolute_url()}?alpha={preview.alpha:g}#preview")
    alpha = preview.alpha
    return _render_preview(request, project, previews.wait_for(preview, PREVIEW_POST_WAIT_SECONDS), alpha)


@require_GET
def preview_fragment(request, project_id):
    """The preview at ?alpha= as it stands, after waiting a little while it is being computed."""
    project = get_project_for_user(request, project_id, owner_only=True)
    alpha = previews.parse_alpha(request.GET.get("alpha"))
    if alpha is None:
        return _bad_alpha()
    alpha = previews.snap_alpha(alpha)
    preview = previews.current_preview(project, alpha)
    if preview is not None:
        preview = previews.wait_for(preview, PREVIEW_WAIT_SECONDS)
    return _render_preview(request, project, preview, alpha)


@require_GET
def preview_image(request, project_id, preview_id):
    project = get_project_for_user(request, project_id, owner_only=True)
    preview = get_object_or_404(Preview, project=project, id=preview_id, status=Preview.Status.DONE)
    return serve_file(request, preview.image)


@require_GET
def run_estimate(request, project_id):
    """The launch form's estimate for the settings in the query string (the form's own fields)."""
    project = get_project_for_user(request, project_id, owner_only=True)
    source = continue_source(request, project)
    form = RunForm(request.GET, continuing=source is not None, style_count=len(project.style_slots()))
    context = estimate_context(form, project, request.user)
    response = render(request, "gallery/_estimate.html", context)
    response["Cache-Control"] = "no-store"
    return response
