"""Who may see what: another user's private project is a 404, never a 403 that tells it exists."""
from django.db.models import Q
from django.shortcuts import get_object_or_404

from gallery.models import Iteration, Project, Run


def visible_projects(user):
    return Project.objects.filter(Q(owner=user) | Q(is_public=True))


def get_project_for_user(request, project_id, *, owner_only=False):
    """The project if the user owns it, or (for reading) if it is public; 404 otherwise."""
    projects = Project.objects.filter(owner=request.user) if owner_only else visible_projects(request.user)
    return get_object_or_404(projects, id=project_id)


def get_run_for_user(request, run_id, *, owner_only=False):
    runs = Run.objects.select_related("project")
    if owner_only:
        runs = runs.filter(project__owner=request.user)
    else:
        runs = runs.filter(Q(project__owner=request.user) | Q(project__is_public=True))
    return get_object_or_404(runs, id=run_id)


def get_iteration_for_user(request, run_id, number):
    run = get_run_for_user(request, run_id)
    return get_object_or_404(Iteration.objects.select_related("run__project"), run=run, number=number)
