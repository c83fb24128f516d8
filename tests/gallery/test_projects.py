import io
from pathlib import Path

from django.test import Client
from django.urls import reverse
from PIL import Image

from gallery.models import Project
from tests.factories import create_project, create_run, make_image, upload


def stored_files(media_root):
    root = Path(media_root)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def new_project_data(**overrides):
    data = {
        "title": "Bird and Scream",
        "content_image": upload("bird.png"),
        "style_image": upload("scream.jpg", make_image(48, 64, fmt="JPEG", seed=3), "image/jpeg"),
    }
    data.update(overrides)
    return data


def test_it_creates_a_project_with_both_images_and_thumbnails(owner, owner_client, media_root):
    response = owner_client.post("/projects/new/", new_project_data())
    project = Project.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/projects/{project.id}/"
    assert project.owner == owner
    assert project.title == "Bird and Scream"
    assert not project.is_public
    assert len(stored_files(media_root)) == 4
    with project.content_image.open("rb") as handle:
        assert Image.open(handle).size == (64, 48)
    with project.style_thumbnail.open("rb") as handle:
        assert Image.open(handle).format == "JPEG"


def test_it_shows_the_create_form(owner_client):
    response = owner_client.get("/projects/new/")
    assert response.status_code == 200
    assert b'name="content_image"' in response.content
    assert b'enctype="multipart/form-data"' in response.content


def test_it_requires_a_title(owner_client, media_root):
    response = owner_client.post("/projects/new/", new_project_data(title="   "))
    assert response.status_code == 200
    assert Project.objects.count() == 0
    assert stored_files(media_root) == []


def test_it_requires_both_images(owner_client, media_root):
    data = new_project_data()
    del data["style_image"]
    response = owner_client.post("/projects/new/", data)
    assert response.status_code == 200
    assert b"This field is required" in response.content
    assert Project.objects.count() == 0
    assert stored_files(media_root) == []


def test_it_lists_only_my_projects_newest_first(owner, other, owner_client):
    first = create_project(owner, "First")
    second = create_project(owner, "Second")
    create_project(other, "Bob's secret")
    response = owner_client.get("/projects/")
    body = response.content.decode()
    assert body.index("Second") < body.index("First")
    assert "Bob&#x27;s secret" not in body and "Bob's secret" not in body
    assert f"/projects/{first.id}/media/content-thumb/" in body
    assert f"/projects/{second.id}/media/style-thumb/" in body


def test_it_shows_a_project_to_its_owner(project, owner_client):
    response = owner_client.get(f"/projects/{project.id}/")
    assert response.status_code == 200
    assert b"Bird and Scream" in response.content
    assert f"/projects/{project.id}/runs/new/".encode() in response.content


def test_a_title_is_kept_on_one_line_without_control_characters(project, owner_client, media_root):
    pasted = "Bird\r\nand\tthe\x0bScream\u2028at\u0085dusk  \u202egpj.exe\u202c  "
    owner_client.post("/projects/new/", new_project_data(title=pasted))
    assert Project.objects.latest("id").title == "Bird and the Scream at dusk gpj.exe"
    owner_client.post(f"/projects/{project.id}/edit/", {"title": "Renamed\n\x00twice"})
    project.refresh_from_db()
    assert project.title == "Renamed twice"


def test_it_renames_a_project_and_keeps_its_images(project, owner_client, media_root):
    before = stored_files(media_root)
    response = owner_client.post(f"/projects/{project.id}/edit/", {"title": "Renamed"})
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.title == "Renamed"
    assert stored_files(media_root) == before


def test_it_replaces_the_style_image_and_removes_the_old_file(
    project, owner_client, media_root, django_capture_on_commit_callbacks
):
    old_name = project.style_image.name
    old_content = project.content_image.name
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            f"/projects/{project.id}/edit/",
            {"title": project.title, "style_image": upload("new.png", make_image(80, 80, seed=9))},
        )
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.style_image.name != old_name
    assert project.content_image.name == old_content
    assert not (Path(media_root) / old_name).exists()
    with project.style_image.open("rb") as handle:
        assert Image.open(handle).size == (80, 80)
    assert len(stored_files(media_root)) == 4


def test_it_keeps_the_old_image_when_the_replacement_is_bad(project, owner_client, media_root):
    before = stored_files(media_root)
    response = owner_client.post(
        f"/projects/{project.id}/edit/",
        {"title": "Changed", "style_image": upload("bad.jpg", b"not an image", "image/jpeg")},
    )
    assert response.status_code == 200
    assert b"not an image we can read" in response.content
    project.refresh_from_db()
    assert project.title == "Bird and Scream"
    assert stored_files(media_root) == before


def test_it_makes_a_project_public(project, owner_client, other_client):
    assert other_client.get(f"/projects/{project.id}/").status_code == 404
    owner_client.post(f"/projects/{project.id}/edit/", {"title": project.title, "is_public": "on"})
    project.refresh_from_db()
    assert project.is_public
    response = other_client.get(f"/projects/{project.id}/")
    assert response.status_code == 200
    assert b"read-only" in response.content
    assert f"/projects/{project.id}/edit/".encode() not in response.content
    assert other_client.get(f"/projects/{project.id}/media/content/").status_code == 200


def test_it_deletes_a_project_and_its_files(project, owner_client, media_root, django_capture_on_commit_callbacks):
    assert owner_client.get(f"/projects/{project.id}/delete/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(f"/projects/{project.id}/delete/")
    assert response.status_code == 302
    assert Project.objects.count() == 0
    assert stored_files(media_root) == []


def test_it_lists_public_projects_in_the_gallery(owner, other_client):
    create_project(owner, "Open bridge", is_public=True)
    create_project(owner, "Hidden bird")
    body = other_client.get("/gallery/").content.decode()
    assert "Open bridge" in body
    assert "Hidden bird" not in body
    assert "by alice" in body


def test_it_hides_other_users_projects_behind_404(project, other_client):
    for url in [
        f"/projects/{project.id}/",
        f"/projects/{project.id}/edit/",
        f"/projects/{project.id}/delete/",
        f"/projects/{project.id}/runs/new/",
        f"/projects/{project.id}/media/content/",
        f"/projects/{project.id}/media/content-thumb/",
        f"/projects/{project.id}/media/style/",
        f"/projects/{project.id}/media/style-thumb/",
    ]:
        assert other_client.get(url).status_code == 404, url
    assert other_client.post(f"/projects/{project.id}/delete/").status_code == 404
    assert other_client.post(f"/projects/{project.id}/edit/", {"title": "Mine now"}).status_code == 404
    project.refresh_from_db()
    assert project.title == "Bird and Scream"


def test_the_delete_page_says_what_goes_without_counting_no_runs(project, owner_client):
    page = owner_client.get(reverse("project_delete", args=[project.id])).content.decode()
    assert "This removes the project and its images." in page and "0 runs" not in page
    create_run(project)
    page = owner_client.get(reverse("project_delete", args=[project.id])).content.decode()
    assert "This removes the project, its 1 run and every saved image." in page


def test_it_does_not_let_others_edit_or_delete_a_public_project(public_project, other_client):
    assert other_client.get(f"/projects/{public_project.id}/edit/").status_code == 404
    assert other_client.post(f"/projects/{public_project.id}/delete/").status_code == 404
    assert Project.objects.filter(id=public_project.id).exists()


def test_it_redirects_anonymous_visitors_from_project_urls(project, anonymous_client):
    for url in [f"/projects/{project.id}/", f"/projects/{project.id}/media/content/"]:
        response = anonymous_client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_it_enforces_csrf_on_project_forms(owner, project):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post("/projects/new/", new_project_data()).status_code == 403
    assert client.post(f"/projects/{project.id}/delete/").status_code == 403
    assert client.post(f"/projects/{project.id}/edit/", {"title": "x"}).status_code == 403
    assert Project.objects.count() == 1


def test_it_serves_media_with_the_right_type_and_privately(project, owner_client):
    response = owner_client.get(f"/projects/{project.id}/media/content/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert "private" in response["Cache-Control"]
    image = Image.open(io.BytesIO(b"".join(response.streaming_content)))
    assert image.size == (64, 48)
    download = owner_client.get(f"/projects/{project.id}/media/style/?download=1")
    assert "attachment" in download["Content-Disposition"]


def test_it_404s_an_unknown_media_kind(project, owner_client):
    assert owner_client.get(f"/projects/{project.id}/media/secrets/").status_code == 404


def test_media_are_revalidated_on_every_request_so_a_project_made_private_disappears(public_project, other_client):
    url = f"/projects/{public_project.id}/media/content/"
    response = other_client.get(url)
    assert response["Cache-Control"] == "private, no-cache"
    etag = response["ETag"]
    revalidated = other_client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert revalidated.status_code == 304
    assert revalidated["Cache-Control"] == "private, no-cache"
    public_project.is_public = False
    public_project.save()
    assert other_client.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 404
