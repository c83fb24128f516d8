"""Every URL × anonymous, owner, other user × a private and a public project → the expected answer.

The URLs come from the URL conf itself (walked recursively), so a new URL cannot be forgotten: one
that MATRIX (tests/security/matrix.py) does not describe fails test_every_url_is_in_the_matrix, saying what to add.
"""
import pytest
from django.test import Client
from django.urls import reverse

from gallery.models import Run
from tests.factories import PASSWORD
from tests.security.matrix import ADMIN_LOGIN, LEAVES, LOGIN, MATRIX, PUBLIC, SECRET, admin_path, spec_for


def test_every_url_is_in_the_matrix():
    missing = [f"{leaf.name} ({leaf.route})" for leaf in LEAVES if spec_for(leaf) is None]
    assert not missing, (
        "These URLs are not in the security matrix; add each to MATRIX in tests/security/matrix.py "
        "with who may see it and how to fill its parameters: " + ", ".join(missing)
    )


def test_the_matrix_has_no_stale_entries():
    names = {leaf.name for leaf in LEAVES}
    assert not set(MATRIX) - names, f"MATRIX describes URLs that no longer exist: {sorted(set(MATRIX) - names)}"


def test_every_url_is_reached_by_the_matrix():
    """Each URL the matrix requests resolves to the URL it was built for (no typo hides a view)."""
    from django.urls import resolve

    fake_run = type("FakeRun", (), {"id": 1})
    fake_world = type("FakeWorld", (), {
        "runs": {1: [fake_run(), fake_run()]},
        "previews": {1: type("FakePreview", (), {"id": 1})()},
        "sweeps": {1: type("FakeSweep", (), {"id": 1})()},
    })()
    fake_project = type("FakeProject", (), {"id": 1})()
    for leaf in LEAVES:
        spec = spec_for(leaf)
        if spec is None or spec.urls is None or leaf.name.startswith("admin:"):
            continue
        for url in spec.urls(fake_world, fake_project):
            assert resolve(url.split("?")[0]).url_name == leaf.name, (url, leaf.name)



def client_for(role, world):
    client = Client()
    if role != "anonymous":
        client.force_login(world.owner if role == "owner" else world.other)
    return client


def cases():
    for leaf in LEAVES:
        spec = spec_for(leaf)
        if spec is None:
            continue  # reported by test_every_url_is_in_the_matrix
        for role in ("anonymous", "owner", "other"):
            visibilities = ("private", "public") if spec.scope == "project" else ("-",)
            for visibility in visibilities:
                yield pytest.param(leaf, role, visibility, id=f"{leaf.name}-{role}-{visibility}")


def expected_answer(spec, role, visibility):
    if spec.scope == "project" and role == "other":
        return spec.answers[f"other_{visibility}"]
    return spec.answers[role]


def body_of(response):
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)  # the test client closes it at the end
    return response.content


def owner_only_links(world, project):
    links = [f"/projects/{project.id}/edit/", f"/projects/{project.id}/delete/", f"/projects/{project.id}/runs/new/"]
    links += [f"/runs/{run.id}/cancel/" for run in world.runs[project.id]]
    return [link.encode() for link in links]


@pytest.mark.parametrize("leaf, role, visibility", list(cases()))
def test_matrix(leaf, role, visibility, world):
    spec = spec_for(leaf)
    project = world.project(visibility) if spec.scope == "project" else world.private
    if leaf.route.startswith("admin/"):
        paths = [admin_path(leaf, world)]
    elif spec.urls:
        paths = spec.urls(world, project)
    else:
        paths = [reverse(leaf.name)]
    expected = expected_answer(spec, role, visibility)
    client = client_for(role, world)
    for path in paths:
        response = getattr(client, spec.method)(path)
        body = body_of(response)
        where = f"{spec.method.upper()} {path} as {role}"
        if expected == LOGIN:
            assert response.status_code == 302, where
            assert response["Location"].startswith("/accounts/login/?next="), where
        elif expected == ADMIN_LOGIN:
            # LoginRequiredMiddleware sends anonymous visitors to the site's login first; signed-in
            # users who are not staff get the admin's own login ("not authorised").
            assert response.status_code == 302, where
            logins = ("/admin/login/?next=",) if role != "anonymous" else ("/admin/login/?next=", "/accounts/login/?next=")
            assert response["Location"].startswith(logins), where
        elif isinstance(expected, tuple):
            assert response.status_code in expected, where
        else:
            assert response.status_code == expected, f"{where}: {response.status_code}, expected {expected}"
        # No leak: the private project's title reaches only its owner, on any page, in any answer.
        if role != "owner":
            assert SECRET.encode() not in body, f"{where} leaks the private project's title"
        # Read-only: others never get links to what only the owner may do.
        if role == "other" and spec.owner_only_links and response.status_code == 200:
            for link in owner_only_links(world, project):
                assert link not in body, f"{where} shows the owner-only link {link.decode()}"


def test_lists_show_each_user_only_what_they_may_see(world):
    owner, other = client_for("owner", world), client_for("other", world)
    mine = owner.get("/projects/").content
    assert SECRET.encode() in mine and PUBLIC.encode() in mine
    theirs = other.get("/projects/").content
    assert SECRET.encode() not in theirs and PUBLIC.encode() not in theirs
    gallery = other.get("/gallery/").content
    assert PUBLIC.encode() in gallery and SECRET.encode() not in gallery


def test_compare_refuses_a_mix_that_includes_someone_elses_private_run(world):
    mixed = [world.runs[world.public.id][0].id, world.runs[world.private.id][0].id]
    response = client_for("other", world).get(f"/compare/?runs={mixed[0]},{mixed[1]}")
    assert response.status_code == 404
    assert SECRET.encode() not in response.content


@pytest.mark.parametrize(
    "name",
    ["project_edit", "project_delete", "run_create", "run_cancel", "run_delete"],
)
@pytest.mark.parametrize("visibility", ["private", "public"])
def test_others_cannot_change_a_project_by_posting(name, visibility, world, media_root):
    project = world.project(visibility)
    run = world.runs[project.id][0]
    Run.objects.filter(id=run.id).update(status=Run.Status.RUNNING)
    kwargs = {"run_id": run.id} if name.startswith("run_") and name != "run_create" else {"project_id": project.id}
    before = sorted(p.name for p in media_root.rglob("*") if p.is_file())
    response = client_for("other", world).post(
        reverse(name, kwargs=kwargs), {"title": "Hijacked", "is_public": "on", "rows": 48, "iterations": 1}
    )
    assert response.status_code == 404
    project.refresh_from_db()
    run.refresh_from_db()
    assert project.title != "Hijacked"
    assert run.status == Run.Status.RUNNING and not run.cancel_requested
    assert Run.objects.filter(project=project).count() == 2
    assert sorted(p.name for p in media_root.rglob("*") if p.is_file()) == before


def test_anonymous_visitors_cannot_sign_in_as_someone_by_guessing(world):
    response = Client().post("/accounts/login/", {"username": world.owner.username, "password": PASSWORD + "x"})
    assert response.status_code == 200
    assert "_auth_user_id" not in Client().session
