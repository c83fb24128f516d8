from functools import partial

from django.contrib import messages
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from gallery import files, previews, quotas, styles
from gallery.access import get_project_for_user
from gallery.estimates import expected_starts
from gallery.forms import ProjectEditForm, ProjectForm, StyleUploadForm
from gallery.models import MAX_STYLE_IMAGES, Iteration, Project, Run
from gallery.sweeps import setting_label, sweep_progress


def home(request):
    return redirect("project_list")


def project_list(request):
    projects = Project.objects.filter(owner=request.user).with_cover().order_by("-created", "-id")
    context = {"projects": projects, "storage": quotas.storage_summary(request.user)}
    return render(request, "gallery/project_list.html", context)


def _saved_within(form, limits, save):
    """What ``save(limits)`` returned, or None with the limit's refusal on the form: asked before
    anything is written, and again by ``save`` where it writes the rows (gallery.quotas.held)."""
    refusal = limits()
    if refusal is None:
        try:
            return save(limits)
        except quotas.OverLimit as exc:
            refusal = str(exc)
    form.add_error(None, refusal)
    return None


def _upload_limits(request, refusal):
    """``refusal`` (of gallery.quotas) bound to the user and the size of the request's uploads."""
    return partial(refusal, request.user, sum(uploaded.size for uploaded in request.FILES.values()))


def _create_project(owner, data, limits=None):
    """Write both images, then the row; if anything fails, remove the files written so far."""
    project = Project(owner=owner, title=data["title"])
    try:
        project.stored_bytes = files.save_project_image(project, "content", data["content_image"])
        project.stored_bytes += files.save_project_image(project, "style", data["style_image"])
        with quotas.held(owner.id, limits):
            project.save()
    except BaseException:
        files.delete_names(files.stored_names(project.image_files()))
        raise
    return project


@require_http_methods(["GET", "POST"])
def project_create(request):
    form = ProjectForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        create = partial(_create_project, request.user, form.cleaned_data)
        if project := _saved_within(form, _upload_limits(request, quotas.project_refusal), create):
            messages.success(request, f"Project “{project.title}” created. Launch a run to stylise it.")
            return redirect(project)
    return render(request, "gallery/project_form.html", {"form": form, "creating": True})


def _save_project_edit(form, limits=None):
    """Save the form and any replaced image; old files go only once the new row is committed."""
    project = form.save(commit=False)
    before = files.stored_names(project.image_files())
    try:
        with quotas.held(project.owner_id, limits):
            for which in ("content", "style"):
                image = form.cleaned_data.get(f"{which}_image")
                if image is not None:
                    files.save_project_image(project, which, image)
            project.stored_bytes = files.total_size(project.image_files())
            project.save()
            after = files.stored_names(project.image_files())
            files.delete_names_on_commit(set(before) - set(after))
    except BaseException:
        files.delete_names(set(files.stored_names(project.image_files())) - set(before))
        raise
    return project


@require_http_methods(["GET", "POST"])
def project_edit(request, project_id):
    project = get_project_for_user(request, project_id, owner_only=True)
    form = ProjectEditForm(request.POST or None, request.FILES or None, instance=project)
    if request.method == "POST" and form.is_valid():
        limits = _upload_limits(request, quotas.upload_refusal)
        if saved := _saved_within(form, limits, partial(_save_project_edit, form)):
            messages.success(request, "Project saved.")
            return redirect(saved)
    return render(request, "gallery/project_form.html", {"form": form, "project": project, "creating": False})


@require_http_methods(["GET", "POST"])
def project_delete(request, project_id):
    project = get_project_for_user(request, project_id, owner_only=True)
    if request.method == "POST":
        with transaction.atomic():
            names = files.stored_names(project.image_files())
            for run in project.runs.all():
                names += files.stored_names(run.image_files())
            names += files.stored_names([preview.image for preview in project.previews.all()])
            names += files.stored_names([stored.file for stored in project.run_inputs.all()])
            names = sorted(set(names))  # runs share their stored inputs
            project.runs.filter(status__in=Run.ACTIVE).update(cancel_requested=True)
            project.delete()
            files.delete_names_on_commit(names)
        messages.success(request, f"Project “{project.title}” deleted with its runs and images.")
        return redirect("project_list")
    count = project.runs.count()
    return render(request, "gallery/confirm_delete.html", {
        "name": project.title, "button": "Delete project", "keep_url": project.get_absolute_url(),
        "consequence": (f"This removes the project, its {count} run{pluralize(count)} and every saved image."
                        if count else "This removes the project and its images."),
    })


@require_http_methods(["GET", "POST"])
def project_styles(request, project_id):
    """The project's style images: add one (checked like every upload), remove or reorder them."""
    project = get_project_for_user(request, project_id, owner_only=True)
    form = StyleUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        add = partial(styles.add_style, project, form.cleaned_data["image"])
        try:
            added = _saved_within(form, _upload_limits(request, quotas.upload_refusal), add)
        except styles.StyleError as exc:
            form.add_error(None, str(exc))
        else:
            if added:
                messages.success(
                    request, "Style image added. Runs blend the style images with the weights you give them."
                )
                return redirect("project_styles", project.id)
    context = {"project": project, "form": form, "slots": project.style_slots(), "max_styles": MAX_STYLE_IMAGES}
    return render(request, "gallery/project_styles.html", context)


STYLE_ACTIONS = {"up": -1, "down": 1}


@require_POST
def project_style_change(request, project_id, number):
    """Move style image ``number`` up or down, or remove it (POST action=up|down|remove)."""
    project = get_project_for_user(request, project_id, owner_only=True)
    action = request.POST.get("action")
    try:
        if action == "remove":
            styles.remove_style(project, number)
            messages.success(request, f"Style image {number} removed.")
        elif action in STYLE_ACTIONS:
            styles.move_style(project, number, STYLE_ACTIONS[action])
            now = number + STYLE_ACTIONS[action]  # move_style refused a move past either end
            messages.success(request, f"Style image {number} moved {action}: it is now style image {now}.")
        else:
            raise styles.StyleError("Choose up, down or remove.")
    except styles.StyleError as exc:
        messages.error(request, str(exc))
    return redirect("project_styles", project.id)


@require_GET
def colour_and_style_guide(request):
    return render(request, "gallery/colour_and_style_guide.html")


def project_detail(request, project_id):
    project = get_project_for_user(request, project_id)
    # The newest saved iteration's number, by subquery: the table shows its thumbnail without
    # loading any iterations.
    latest_number = Iteration.objects.filter(run=OuterRef("pk")).order_by("-number").values("number")[:1]
    runs = list(project.runs.annotate(latest_number=Subquery(latest_number)).order_by("-created", "-id"))
    starts = expected_starts(runs)
    for run in runs:
        run.queue_ahead, run.expected_start = starts.get(run.id, (None, None))
    sweeps = list(project.sweeps.all())
    for sweep in sweeps:
        sweep.progress = sweep_progress([run for run in runs if run.sweep_id == sweep.id])
        sweep.title = " × ".join(setting_label(name) for name in (sweep.axis1, sweep.axis2) if name)
    is_owner = project.owner_id == request.user.id
    context = {
        "project": project,
        "runs": runs,
        "sweeps": sweeps,
        "is_owner": is_owner,
        "style_numbers": range(1, len(project.style_slots()) + 1),
    }
    if is_owner:
        alpha = previews.shown_alpha(request.GET.get("alpha"))
        context |= previews.preview_context(project, previews.current_preview(project, alpha), alpha)
    return render(request, "gallery/project_detail.html", context)



def public_gallery(request):
    """Public projects, each shown by the latest saved image of its cover run (Project.with_cover)."""
    projects = Project.objects.filter(is_public=True).select_related("owner").with_cover().order_by("-created", "-id")
    return render(request, "gallery/public_gallery.html", {"projects": projects})
