"""The security matrix: every URL of the URL conf (walked recursively), who may see it and how to fill
its parameters, and the world of users, projects and runs every case runs against."""
import re
from dataclasses import dataclass, field
from typing import Callable

import pytest
from django.contrib.auth.models import User
from django.urls import URLResolver, get_resolver, reverse
from PIL import Image

from gallery import files
from gallery.models import Iteration, Preview, Run, Sweep
from tests.factories import create_project

SECRET = "Zebra-secret-7Q"  # in the private project's title: must never reach another user
PUBLIC = "Open-bridge-4K"

LOGIN = "login"  # redirect to /accounts/login/?next=…
ADMIN_LOGIN = "admin login"  # redirect to /admin/login/?next=… (or, for anonymous visitors, the site's login)


@dataclass(frozen=True)
class Leaf:
    route: str  # the full route as written in the URL conf, e.g. "runs/<int:run_id>/"
    name: str  # "namespace:name", or the route for unnamed patterns

    def __str__(self):
        return self.name


def walk(patterns, prefix="", namespace=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = ":".join(part for part in [namespace, pattern.namespace] if part)
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        else:
            route = prefix + str(pattern.pattern)
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name or route
            yield Leaf(route, name)


LEAVES = list(walk(get_resolver().url_patterns))


@dataclass
class Spec:
    """Who gets what from one URL.

    scope: "project" (tested once with the private and once with the public project) or "global".
    answers: role → status or LOGIN; for project scope, "other" is split into other_public and
    other_private. urls: world, project → the concrete paths to request (several for media kinds).
    """

    scope: str
    answers: dict
    urls: Callable = None
    method: str = "get"
    owner_only_links: bool = False


def read(**extra):
    """Readable by the owner and, for a public project, read-only by others; anonymous → login."""
    answers = {"anonymous": LOGIN, "owner": 200, "other_public": 200, "other_private": 404}
    answers.update(extra)
    return answers


def owner_only(status=200):
    return {"anonymous": LOGIN, "owner": status, "other_public": 404, "other_private": 404}


def everyone(status, anonymous=None):
    return {"anonymous": status if anonymous is None else anonymous, "owner": status, "other": status}


def project_urls(name, **kwargs):
    return lambda world, project: [reverse(name, kwargs={"project_id": project.id, **kwargs})]


def sweep_urls(name):
    return lambda world, project: [reverse(name, kwargs={"sweep_id": world.sweeps[project.id].id})]


def post_only(urls):
    """A POST-only URL asked with GET: 405 for whoever may reach the view, 404 or 405 for others."""
    return Spec("project", {"anonymous": LOGIN, "owner": 405, "other_public": (404, 405),
                            "other_private": (404, 405)}, urls=urls)


def run_urls(name, **kwargs):
    return lambda world, project: [reverse(name, kwargs={"run_id": world.runs[project.id][0].id, **kwargs})]


PROJECT_KINDS = ["content", "content-thumb", "style", "style-thumb"]
RUN_KINDS = ["base", "style", "init"]

MATRIX = {
    # Accounts (django.contrib.auth and signup): explicit expectations.
    "home": Spec("global", everyone(302, anonymous=LOGIN)),
    "signup": Spec("global", {"anonymous": 200, "owner": 302, "other": 302}),
    "login": Spec("global", everyone(200)),
    "logout": Spec("global", everyone(405, anonymous=LOGIN)),  # POST only (tested in test_csrf.py)
    "set_theme": Spec("global", everyone(405)),  # POST only, for signed-out visitors too
    "password_change": Spec("global", everyone(200, anonymous=LOGIN)),
    "password_change_done": Spec("global", everyone(200, anonymous=LOGIN)),
    # Lists: a private project appears only to its owner.
    "project_list": Spec("global", everyone(200, anonymous=LOGIN)),
    "project_create": Spec("global", everyone(200, anonymous=LOGIN)),
    "public_gallery": Spec("global", everyone(200, anonymous=LOGIN)),
    # One project.
    "project_detail": Spec("project", read(), urls=project_urls("project_detail"), owner_only_links=True),
    "project_edit": Spec("project", owner_only(), urls=project_urls("project_edit")),
    "project_delete": Spec("project", owner_only(), urls=project_urls("project_delete")),
    "project_media": Spec(
        "project",
        read(),
        urls=lambda world, project: [
            reverse("project_media", kwargs={"project_id": project.id, "kind": kind}) + query
            for kind in PROJECT_KINDS
            for query in ("", "?download=1")
        ],
    ),
    "run_create": Spec("project", owner_only(), urls=project_urls("run_create")),
    "run_estimate": Spec("project", owner_only(), urls=project_urls("run_estimate")),
    # The instant preview: the owner's alone, even on a public project (it computes on the lane).
    "preview_request": post_only(project_urls("preview_request")),
    "preview_fragment": Spec(
        "project", owner_only(),
        urls=lambda world, project: [reverse("preview_fragment", kwargs={"project_id": project.id}) + "?alpha=1"],
    ),
    "preview_image": Spec(
        "project", owner_only(),
        urls=lambda world, project: [
            reverse("preview_image", kwargs={"project_id": project.id, "preview_id": world.previews[project.id].id})
        ],
    ),
    # Style images of a project.
    "project_styles": Spec("project", owner_only(), urls=project_urls("project_styles")),
    "project_style_change": post_only(project_urls("project_style_change", number=1)),
    "project_style_media": Spec(
        "project",
        read(),
        urls=lambda world, project: [
            reverse("project_style_media", kwargs={"project_id": project.id, "number": 1, "kind": kind})
            for kind in ("image", "thumb")
        ],
    ),
    "colour_and_style_guide": Spec("global", everyone(200, anonymous=LOGIN)),
    # Sweeps.
    "sweep_create": Spec("project", owner_only(), urls=project_urls("sweep_create")),
    "sweep_detail": Spec("project", read(), urls=sweep_urls("sweep_detail")),
    "sweep_cancel": post_only(sweep_urls("sweep_cancel")),
    "sweep_png": Spec("project", read(), urls=sweep_urls("sweep_png")),
    "sweep_download": Spec("project", read(), urls=sweep_urls("sweep_download")),
    # One run.
    "run_detail": Spec("project", read(), urls=run_urls("run_detail"), owner_only_links=True),
    "run_progress": Spec("project", read(), urls=run_urls("run_progress")),
    "run_style_media": Spec("project", read(), urls=run_urls("run_style_media", number=1)),
    "run_cancel": Spec(
        "project", {"anonymous": LOGIN, "owner": 405, "other_public": (404, 405), "other_private": (404, 405)},
        urls=run_urls("run_cancel"),
    ),
    "run_delete": Spec("project", owner_only(), urls=run_urls("run_delete")),
    "run_download": Spec("project", read(), urls=run_urls("run_download")),
    "run_media": Spec(
        "project",
        read(),
        urls=lambda world, project: [
            reverse("run_media", kwargs={"run_id": world.runs[project.id][0].id, "kind": kind}) + query
            for kind in RUN_KINDS
            for query in ("", "?download=1")
        ],
    ),
    "iteration_image": Spec(
        "project",
        read(),
        urls=lambda world, project: [
            reverse("iteration_image", kwargs={"run_id": world.runs[project.id][0].id, "number": n}) + query
            for n in (0, 10)
            for query in ("", "?download=1")
        ],
    ),
    "iteration_thumbnail": Spec("project", read(), urls=run_urls("iteration_thumbnail", number=10)),
    "compare": Spec(
        "project",
        read(),
        urls=lambda world, project: [
            reverse("compare") + "?runs=" + ",".join(str(run.id) for run in world.runs[project.id]),
            reverse("compare") + "?runs=" + ",".join(str(run.id) for run in world.runs[project.id]) + "&crop=10,10,30,30",
        ],
    ),
}

# Admin URLs: Django's admin is for staff. Ours only checks that non-staff get nothing out of it.
ADMIN_VALUES = {"object_id": None, "id": None, "content_type_id": None, "app_label": "gallery", "url": "gallery/nowhere/"}
ADMIN_EXCEPTIONS = {
    "admin:login": everyone(200),  # the form (for a signed-in non-staff user, with "not authorised")
    "admin:logout": everyone(302, anonymous=ADMIN_LOGIN),  # GET: not staff → back to /admin/, then its login
}


def admin_spec(leaf):
    if leaf.name in ADMIN_EXCEPTIONS:
        return Spec("global", ADMIN_EXCEPTIONS[leaf.name])
    return Spec("global", everyone(ADMIN_LOGIN))


def admin_path(leaf, world):
    """Fill the admin route's parameters (route converters or regex groups) with harmless values."""
    values = dict(ADMIN_VALUES, object_id=str(world.private.id), id=str(world.owner.id), content_type_id="1")

    def value(match):
        name = match.group(1)
        if name not in values:
            pytest.fail(f"Admin URL {leaf.route!r} has a parameter {name!r}: add a value for it to ADMIN_VALUES.")
        return values[name]

    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", value, leaf.route)
    route = re.sub(r"<(?:\w+:)?(\w+)>", value, route)
    return "/" + route.replace("^", "").replace("$", "")


def spec_for(leaf):
    if leaf.name.startswith("admin:") or leaf.route.startswith("admin/"):
        return admin_spec(leaf)
    return MATRIX.get(leaf.name)


# ---------------------------------------------------------------------------------------------
# The world every case runs against: alice owns a private and a public project, each with two
# finished runs whose iterations 0 and 10 are saved with their files; bob is another user.


@dataclass
class World:
    owner: User
    other: User
    private: object
    public: object
    runs: dict = field(default_factory=dict)
    previews: dict = field(default_factory=dict)
    sweeps: dict = field(default_factory=dict)

    def project(self, visibility):
        return self.private if visibility == "private" else self.public


def make_run(project, *, with_init=False):
    picture = Image.new("RGB", (32, 24), (120, 80, 40))
    run = Run(project=project, rows=24, iterations=10, save_every=10, status=Run.Status.DONE, iterations_done=10)
    files.save_image(run.base_image, picture)
    files.save_image(run.style_image, picture)
    files.save_image(run.style_source, picture)
    if with_init:
        files.save_image(run.init_image, picture)
    run.save()
    for number in (0, 10):
        iteration = Iteration(
            run=run, number=number, loss=10.0 - number / 2, content_loss=1.0, style_loss=2.0, tv_loss=0.5,
            evaluations=20 * number, seconds=1.5 * number,
        )
        files.save_image(iteration.image, picture)
        files.save_thumbnail(iteration.thumbnail, picture)
        iteration.save()
    return run


def build_world(owner, other):
    private = create_project(owner, f"Private {SECRET}")
    public = create_project(owner, f"Public {PUBLIC}", is_public=True)
    world = World(owner=owner, other=other, private=private, public=public)
    for project in (private, public):
        world.runs[project.id] = [make_run(project, with_init=True), make_run(project)]
        sweep = Sweep.objects.create(project=project, axis1="tv_weight", axis1_values=[0.01, 0.1])
        for row, run in enumerate(world.runs[project.id]):
            Run.objects.filter(id=run.id).update(sweep=sweep, sweep_row=row, sweep_column=0)
        world.sweeps[project.id] = sweep
        preview = Preview(project=project, content_name=project.content_image.name, alpha=1.0, rows=24,
                          style_name=project.style_image.name, status=Preview.Status.DONE, requested=project.created)
        files.save_image(preview.image, Image.new("RGB", (32, 24), (10, 80, 40)), fmt="JPEG")
        preview.save()
        world.previews[project.id] = preview
    return world
