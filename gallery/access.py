"""Who may see what: another user's private project is a 404, never a 403 that tells it exists.

One rule, ``visible_to``: a user sees their own projects and the public ones, and the runs and
iterations (and sweeps) of those projects.
"""
from django.db.models import Q
from django.shortcuts import get_object_or_404

from gallery.models import Iteration, Project, Run, Sweep


def visible_to(user, *, owner_only=False, via=""):
    """The filter for rows the user may see (or, with owner_only, change); ``via`` is the path from
    the queried model to its project, e.g. "project__" for runs."""
    mine = Q(**{f"{via}owner": user})
    return mine if owner_only else mine | Q(**{f"{via}is_public": True})


def visible_projects(user):
    return Project.objects.filter(visible_to(user))


def visible_runs(user, *, owner_only=False):
    return Run.objects.select_related("project").filter(visible_to(user, owner_only=owner_only, via="project__"))


def get_project_for_user(request, project_id, *, owner_only=False):
    """The project if the user owns it, or (for reading) if it is public; 404 otherwise."""
    return get_object_or_404(Project.objects.filter(visible_to(request.user, owner_only=owner_only)), id=project_id)


def get_run_for_user(request, run_id, *, owner_only=False):
    return get_object_or_404(visible_runs(request.user, owner_only=owner_only), id=run_id)


def get_sweep_for_user(request, sweep_id, *, owner_only=False):
    sweeps = Sweep.objects.select_related("project").filter(
        visible_to(request.user, owner_only=owner_only, via="project__")
    )
    return get_object_or_404(sweeps, id=sweep_id)


def get_iteration_for_user(request, run_id, number):
    run = get_run_for_user(request, run_id)
    return get_object_or_404(Iteration.objects.select_related("run__project"), run=run, number=number)
