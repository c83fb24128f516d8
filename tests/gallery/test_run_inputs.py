"""The pictures runs compute from are stored once per project by their content (gallery.run_inputs)."""
import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from gallery import launching, quotas
from gallery.models import Run, RunInput, Sweep
from gallery.run_inputs import InputStore, digest_of
from tests.factories import make_image

SWEEP = {
    "content_weight": "1", "style_weight": "0.3", "tv_weight": "0.0001", "iterations": "20", "rows": "64",
    "save_every": "10", "style_fit": "crop", "optimizer": "lbfgs", "init": "content", "seed": "",
    "axis1-setting": "tv_weight", "axis1-values": "0.001, 0.01, 0.1", "axis2-setting": "style_weight",
    "axis2-values": "0.1, 1, 10", "launch": "1",
}


def _bytes(field_file):
    with field_file.open("rb") as handle:
        return handle.read()


def test_a_sweep_stores_each_picture_once_and_the_quota_counts_it_once(owner, owner_client, project, queued):
    response = owner_client.post(reverse("sweep_create", args=[project.id]), SWEEP)
    assert response.status_code == 302
    runs = list(Sweep.objects.get().runs.all())
    assert len(runs) == 9

    stored = {stored.digest: stored for stored in RunInput.objects.filter(project=project)}
    assert set(stored) == {digest_of(_bytes(project.content_image)), digest_of(_bytes(project.style_image))}
    assert {run.content_source.name for run in runs} == {stored[digest_of(_bytes(project.content_image))].file.name}
    assert {run.style_source.name for run in runs} == {stored[digest_of(_bytes(project.style_image))].file.name}
    assert all(default_storage.exists(item.file.name) for item in stored.values())
    assert all(run.stored_bytes == 0 for run in runs)  # nothing of their own yet
    inputs = sum(item.size for item in stored.values())
    assert inputs == len(_bytes(project.content_image)) + len(_bytes(project.style_image))
    assert quotas.stored_bytes(owner) == project.stored_bytes + inputs  # once, not nine times


def test_a_later_run_of_the_same_images_reuses_their_copies_and_a_new_image_is_stored_anew(
        owner_client, project, queued):
    launching.launch_run(Run(project=project, rows=64, iterations=1))
    launching.launch_run(Run(project=project, rows=64, iterations=1))
    first, second = Run.objects.order_by("id")
    assert (first.content_source.name, first.style_source.name) == (second.content_source.name, second.style_source.name)
    assert RunInput.objects.count() == 2

    new_content = io.BytesIO(make_image(64, 48, seed=99))
    new_content.name = "new.png"
    owner_client.post(f"/projects/{project.id}/edit/", {"title": "x", "content_image": new_content})
    project.refresh_from_db()
    third = launching.launch_run(Run(project=project, rows=64, iterations=1))
    assert third.content_source.name != first.content_source.name
    assert third.style_source.name == first.style_source.name
    assert RunInput.objects.count() == 3
    assert _bytes(first.content_source) != _bytes(third.content_source)  # the first keeps what it was launched with


def test_a_picture_stored_by_a_concurrent_launch_is_used_and_the_duplicate_removed(
        project, django_capture_on_commit_callbacks):
    one, two = InputStore(project), InputStore(project)
    first, second = Run(project=project), Run(project=project)
    one.store(project.content_image, first.content_source)
    two.store(project.content_image, second.content_source)  # neither has saved its row yet
    duplicate = second.content_source.name
    assert duplicate != first.content_source.name and default_storage.exists(duplicate)

    one.save()
    with django_capture_on_commit_callbacks(execute=True):
        two.save()
    assert second.content_source.name == first.content_source.name
    assert RunInput.objects.count() == 1 and not default_storage.exists(duplicate)


def test_a_stored_picture_whose_file_is_gone_is_stored_again(project, queued):
    run = launching.launch_run(Run(project=project, rows=64, iterations=1))
    lost = run.content_source.name
    default_storage.delete(lost)

    again = launching.launch_run(Run(project=project, rows=64, iterations=1))
    assert again.content_source.name != lost and default_storage.exists(again.content_source.name)
    assert RunInput.objects.get(file=again.content_source.name).size == len(_bytes(project.content_image))


def test_a_failed_launch_removes_the_pictures_it_stored_and_keeps_those_of_earlier_runs(project, queued, monkeypatch):
    kept = launching.launch_run(Run(project=project, rows=64, iterations=1))
    before = set(default_storage.listdir("runs")[1])
    new_content = make_image(64, 48, seed=7)
    project.content_image.save("changed.png", ContentFile(new_content))

    def refuse(*args, **kwargs):
        raise RuntimeError("the database refused")

    monkeypatch.setattr(Run, "save", refuse)
    with pytest.raises(RuntimeError):
        launching.launch_run(Run(project=project, rows=64, iterations=1))
    assert set(default_storage.listdir("runs")[1]) == before
    assert RunInput.objects.count() == 2 and default_storage.exists(kept.content_source.name)


def test_deleting_the_project_removes_the_shared_pictures(owner_client, project, queued,
                                                          django_capture_on_commit_callbacks):
    owner_client.post(reverse("sweep_create", args=[project.id]), SWEEP)
    names = list(RunInput.objects.values_list("file", flat=True))
    assert len(names) == 2 and all(default_storage.exists(name) for name in names)

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(f"/projects/{project.id}/delete/")
    assert not RunInput.objects.exists()
    assert not any(default_storage.exists(name) for name in names)
