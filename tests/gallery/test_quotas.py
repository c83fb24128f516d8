"""Per-user limits: each refused with a clear message before anything is saved, also when the
user's requests arrive at once."""
import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse

from gallery import quotas
from gallery.models import Project, ProjectStyle, Run, RunInput, Sweep
from tests.concurrency import at_once, slowed
from tests.factories import create_project, make_image, upload
from tests.factories import TINY_FORM
from tests.gallery.test_sweeps import post_sweep


@pytest.fixture(autouse=True)
def no_queue(monkeypatch):
    from gallery import queue

    monkeypatch.setattr(queue, "async_task", lambda *args, **kwargs: None)


def launch(client, project, **data):
    return client.post(f"/projects/{project.id}/runs/new/", {**TINY_FORM, **data})


def stored_files(media_root):
    return sorted(p for p in media_root.rglob("*") if p.is_file()) if media_root.exists() else []


def test_a_user_may_queue_only_so_many_runs(owner_client, project, settings, media_root):
    settings.USER_MAX_QUEUED_RUNS = 3
    for _ in range(3):
        assert launch(owner_client, project).status_code == 302
    files_before = stored_files(media_root)

    response = launch(owner_client, project)

    assert response.status_code == 200
    assert "You already have 3 runs waiting in the queue" in response.content.decode()
    assert Run.objects.count() == 3
    assert stored_files(media_root) == files_before


def test_another_users_queue_does_not_count_against_mine(owner_client, other, project, settings):
    settings.USER_MAX_QUEUED_RUNS = 1
    Run.objects.create(project=create_project(other))
    assert launch(owner_client, project).status_code == 302


def test_a_run_cannot_keep_thousands_of_full_size_images(owner_client, project):
    response = launch(owner_client, project, iterations=5000, save_every=1)

    assert response.status_code == 200
    assert "This would keep 5001 full-size images; a run keeps at most 200. Save every 26 iterations or more." in (
        response.content.decode()
    )
    assert not Run.objects.exists()
    assert launch(owner_client, project, iterations=5000, save_every=26).status_code == 302


def test_a_run_that_would_pass_the_storage_limit_is_refused(owner_client, project, settings):
    settings.USER_MAX_STORED_BYTES = project.stored_bytes + 100_000
    response = launch(owner_client, project, rows=512, iterations=100, save_every=1)
    assert response.status_code == 200
    assert "past your limit of" in response.content.decode()
    assert not Run.objects.exists()


def test_a_user_may_keep_only_so_many_projects(owner_client, owner, settings, media_root):
    settings.USER_MAX_PROJECTS = 1
    create_project(owner)
    files_before = stored_files(media_root)

    response = owner_client.post(
        "/projects/new/", {"title": "One more", "content_image": upload(), "style_image": upload("s.png")}
    )

    assert response.status_code == 200
    assert "You have 1 projects, the most one account may keep" in response.content.decode()
    assert Project.objects.count() == 1
    assert stored_files(media_root) == files_before


def test_uploads_that_would_pass_the_storage_limit_are_refused(owner_client, project, settings):
    settings.USER_MAX_STORED_BYTES = project.stored_bytes + 10
    response = owner_client.post(f"/projects/{project.id}/edit/", {"title": "x", "content_image": upload()})
    assert response.status_code == 200
    assert "past your limit" in response.content.decode()
    assert Project.objects.get(id=project.id).title != "x"


def test_the_projects_page_shows_how_much_the_user_stores(owner_client, project, other):
    create_project(other)
    assert project.stored_bytes == sum(default_storage.size(f.name) for f in project.image_files()) > 0
    page = owner_client.get("/projects/").content.decode()
    assert f"Storage: {project.stored_bytes / 1024:.1f} KB of 5.0 GB" in page


def test_a_storage_error_while_copying_the_inputs_is_a_clear_message_and_saves_nothing(owner_client, project, monkeypatch):
    from gallery import files

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "save_file", disk_full)
    response = launch(owner_client, project)
    assert response.status_code == 200
    assert "images could not be stored (" in response.content.decode()
    assert not Run.objects.exists()


def test_the_workers_the_quota_and_the_launch_form_keep_the_schemas_saved_iterations(project):
    from gallery import quotas, run_forms
    from stylecore import schema

    assert quotas.saved_iteration_count is schema.saved_iteration_count
    assert run_forms.saved_iteration_count is schema.saved_iteration_count
    run = Run(project=project, iterations=7, save_every=3)
    assert [n for n in range(8) if run.saves_iteration(n)] == [n for n in range(8) if schema.saves_iteration(n, 7, 3)]


# -- requests at once ---------------------------------------------------------------------------
# The storage reads are slowed, so that each request's read of its counts is old by the time it
# saves unless the check and the save are one step per user (gallery.quotas.held).

at_once_db = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stale_reads(monkeypatch):
    monkeypatch.setattr(quotas, "stored_bytes", slowed(quotas.stored_bytes))


def posted_at_once(user, count, post):
    """``post(client)`` from ``count`` clients of ``user`` at once; their responses."""
    clients = [Client() for _ in range(count)]
    for client in clients:
        client.force_login(user)
    return at_once(count, lambda number: post(clients[number]))


def refused(responses, message):
    """How many responses were the form again, each saying ``message``."""
    pages = [response.content.decode() for response in responses if response.status_code == 200]
    assert all(message in page for page in pages), pages
    return len(pages)


@at_once_db
def test_launches_at_once_queue_no_more_runs_than_the_limit(owner, project, settings, media_root, stale_reads):
    settings.USER_MAX_QUEUED_RUNS = 3
    responses = posted_at_once(owner, 6, lambda client: launch(client, project))

    assert Run.objects.filter(status=Run.Status.QUEUED).count() == 3
    assert refused(responses, "You already have 3 runs waiting in the queue") == 3
    assert len(stored_files(media_root)) == 4 + RunInput.objects.count()  # the refused launches' copies went


@at_once_db
def test_sweeps_launched_at_once_keep_the_unfinished_sweeps_limit(owner, project, settings, stale_reads):
    settings.USER_MAX_ACTIVE_SWEEPS = 1
    responses = posted_at_once(owner, 4, lambda client: post_sweep(client, project))

    assert Sweep.objects.count() == 1 and Run.objects.count() == 4
    assert refused(responses, "You have 1 sweep still computing; one account may have 1 at a time.") == 3


@at_once_db
def test_projects_created_at_once_keep_the_projects_limit(owner, settings, media_root, stale_reads):
    settings.USER_MAX_PROJECTS = 2
    create_project(owner)
    responses = posted_at_once(owner, 4, lambda client: client.post(
        "/projects/new/", {"title": "At once", "content_image": upload(), "style_image": upload("s.png")}
    ))

    assert Project.objects.count() == 2
    assert refused(responses, "You have 2 projects, the most one account may keep") == 3
    assert len(stored_files(media_root)) == 8  # each project's four images; the refused ones' went


@at_once_db
def test_uploads_at_once_keep_the_storage_limit(owner, project, settings, media_root, stale_reads):
    image = make_image(50, 40, seed=10)
    settings.USER_MAX_STORED_BYTES = quotas.stored_bytes(owner) + len(image)  # room for one upload
    responses = posted_at_once(owner, 3, lambda client: client.post(
        reverse("project_styles", args=[project.id]), {"image": upload("s.png", image)}
    ))

    assert ProjectStyle.objects.count() == 1
    assert refused(responses, "past your limit of") == 2
    assert len(stored_files(media_root)) == 6
