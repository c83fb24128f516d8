"""Launch form, continue-from-iteration, cancel and the JSON progress endpoint (no engine runs here)."""
import io

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image

from gallery import queue
from gallery.models import RUN_DEFAULTS, Run
from tests.factories import VALID, add_iteration, create_project, new_run_url


# -- the launch form ---------------------------------------------------------------------------


def test_it_shows_the_form_prefilled_with_the_defaults(owner_client, project):
    response = owner_client.get(new_run_url(project))

    assert response.status_code == 200
    form = response.context["form"]
    for name, value in RUN_DEFAULTS.items():
        assert form[name].value() == value
    html = response.content.decode()
    assert reverse("project_media", args=[project.id, "content-thumb"]) in html
    assert reverse("project_media", args=[project.id, "style-thumb"]) in html
    assert "Keeps the photo" in html and "textures and colours" in html and "smooths pixel noise" in html
    assert 'class="form-grid"' in html


def test_it_launches_a_run_and_queues_it(owner_client, project, queued):
    response = owner_client.post(new_run_url(project), VALID)

    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("run_detail", args=[run.id])
    assert queued == [run.id]
    assert run.project == project
    assert run.status == Run.Status.QUEUED
    assert (run.content_weight, run.style_weight, run.tv_weight) == (1, 0.01, 0.001)
    assert (run.iterations, run.rows, run.save_every, run.init, run.seed) == (50, 256, 10, "content", None)
    assert run.label == "0.001_0.01_1_256px"  # the start is the default (the photo): not in the label


def test_a_queued_run_shows_no_elapsed_time_yet(owner_client, project, queued):
    owner_client.post(new_run_url(project), VALID)
    page = owner_client.get(reverse("run_detail", args=[Run.objects.get().id])).content.decode()
    assert '<dd data-stat="elapsed">–</dd>' in page and "0.0 s" not in page


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"content_weight": "-1"}, "content_weight"),
        ({"style_weight": "inf"}, "style_weight"),
        ({"tv_weight": "nan"}, "tv_weight"),
        ({"content_weight": "0", "style_weight": "0", "tv_weight": "0"}, "__all__"),
        ({"iterations": "0"}, "iterations"),
        ({"iterations": "5001"}, "iterations"),
        ({"rows": "63"}, "rows"),
        ({"rows": "2049"}, "rows"),
        ({"save_every": "0"}, "save_every"),
        ({"style_fit": "stretch"}, "style_fit"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"init": "iteration"}, "init"),
        ({"seed": "-3"}, "seed"),
    ],
)
def test_it_rejects_out_of_range_settings_and_saves_nothing(owner_client, project, queued, changes, field):
    response = owner_client.post(new_run_url(project), {**VALID, **changes})

    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not Run.objects.exists()
    assert queued == []


def test_it_caps_rows_at_the_configured_maximum(owner_client, project, queued, settings):
    settings.RUN_MAX_ROWS = 512

    response = owner_client.post(new_run_url(project), {**VALID, "rows": "513"})
    assert "rows" in response.context["form"].errors
    assert 'max="512"' in owner_client.get(new_run_url(project)).content.decode()

    owner_client.post(new_run_url(project), {**VALID, "rows": "512"})
    assert Run.objects.get().rows == 512


def test_it_hides_the_form_from_other_users(other_client, project, queued):
    assert other_client.get(new_run_url(project)).status_code == 404
    assert other_client.post(new_run_url(project), VALID).status_code == 404
    assert not Run.objects.exists()


def test_readers_of_a_public_project_cannot_launch_runs(other_client, public_project, queued):
    assert other_client.post(new_run_url(public_project), VALID).status_code == 404
    assert not Run.objects.exists()


def test_it_sends_anonymous_users_to_log_in(anonymous_client, project):
    response = anonymous_client.get(new_run_url(project))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_run_stays_launched_and_queued_when_its_token_cannot_be_queued(owner_client, project, monkeypatch):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(queue, "async_task", broker_down)
    source_run = Run.objects.create(project=project, status=Run.Status.DONE)
    source = add_iteration(source_run, 10)

    response = owner_client.post(new_run_url(project, from_run=source_run.id, from_iteration=10), VALID)

    assert response.status_code == 302  # the queue is the database: recovery's wake-up queues a token later
    run = Run.objects.exclude(id=source_run.id).get()
    assert (run.status, run.init_iteration) == (Run.Status.QUEUED, source)
    assert run.content_source and run.init_image


# -- continue from a saved iteration -------------------------------------------------------------


@pytest.fixture
def finished_run(project):
    run = Run.objects.create(
        project=project, status=Run.Status.DONE, tv_weight=0.5, style_weight=0.02, rows=300, iterations=20, save_every=5,
        optimizer="adam",
    )
    for number in (0, 5, 10):
        add_iteration(run, number)
    return run


def test_continue_opens_the_form_with_the_iteration_and_its_runs_settings(owner_client, project, finished_run):
    response = owner_client.get(new_run_url(project, from_run=finished_run.id, from_iteration=5))

    assert response.status_code == 200
    form = response.context["form"]
    assert "init" not in form.fields
    assert (form["tv_weight"].value(), form["style_weight"].value(), form["rows"].value()) == (0.5, 0.02, 300)
    assert form["optimizer"].value() == "adam"
    html = response.content.decode()
    assert reverse("iteration_thumbnail", args=[finished_run.id, 5]) in html
    assert "Continue from iteration 5" in html
    assert "Further iterations" in html and "how many more to compute" in html  # not the run's total


def test_continue_copies_the_iteration_image_into_the_new_run(owner_client, project, finished_run, queued):
    source = finished_run.saved_iterations.get(number=10)
    data = {key: value for key, value in VALID.items() if key != "init"}

    response = owner_client.post(new_run_url(project, from_run=finished_run.id, from_iteration=10), data)

    run = Run.objects.exclude(id=finished_run.id).get()
    assert response.status_code == 302
    assert queued == [run.id]
    assert run.init == Run.Init.ITERATION
    assert run.init_iteration == source
    assert run.label.endswith("_cont")
    assert run.init_image.name != source.image.name
    with run.init_image.open("rb") as copy, source.image.open("rb") as original:
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(copy.read()))), np.asarray(Image.open(io.BytesIO(original.read()))))


@pytest.mark.parametrize(
    "query",
    [
        {"from_run": "{run}", "from_iteration": "7"},  # not a saved iteration
        {"from_run": "{run}"},
        {"from_iteration": "5"},
        {"from_run": "abc", "from_iteration": "5"},
        {"from_run": "{run}", "from_iteration": "-5"},
        {"from_run": "999", "from_iteration": "5"},
    ],
)
def test_continue_from_an_unknown_iteration_is_a_404(owner_client, project, finished_run, queued, query):
    query = {key: value.format(run=finished_run.id) for key, value in query.items()}
    assert owner_client.get(new_run_url(project, **query)).status_code == 404
    assert owner_client.post(new_run_url(project, **query), VALID).status_code == 404
    assert Run.objects.count() == 1


def test_continue_from_another_projects_iteration_is_a_404(owner_client, owner, finished_run, queued):
    elsewhere = create_project(owner, "Another pair")
    url = new_run_url(elsewhere, from_run=finished_run.id, from_iteration=5)
    assert owner_client.get(url).status_code == 404
    assert owner_client.post(url, VALID).status_code == 404
    assert Run.objects.count() == 1


def test_continue_from_another_users_iteration_is_a_404(other_client, other, finished_run, queued):
    mine = create_project(other, "Bob's pair")
    url = new_run_url(mine, from_run=finished_run.id, from_iteration=5)
    assert other_client.get(url).status_code == 404


# -- cancel ----------------------------------------------------------------------------------------


def cancel(client, run, **headers):
    return client.post(reverse("run_cancel", args=[run.id]), headers=headers)


def test_cancelling_a_queued_run_cancels_it_at_once(owner_client, project):
    run = Run.objects.create(project=project)

    response = cancel(owner_client, run)

    assert response.status_code == 302
    assert response["Location"] == reverse("run_detail", args=[run.id])
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    assert run.finished is not None


def test_cancelling_a_running_run_asks_the_worker_to_stop(owner_client, project):
    run = Run.objects.create(project=project, status=Run.Status.RUNNING)

    response = cancel(owner_client, run, accept="application/json")

    assert response.json() == {
        "status": "running",
        "cancel_requested": True,
        "message": "Cancelling: the run stops after the step it is computing and keeps the iterations it saved, "
                   "and the last one it completed.",
    }
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING and run.cancel_requested


def test_cancelling_a_finished_run_changes_nothing(owner_client, project):
    run = Run.objects.create(project=project, status=Run.Status.DONE)
    cancel(owner_client, run)
    run.refresh_from_db()
    assert run.status == Run.Status.DONE and not run.cancel_requested


def test_cancel_is_post_only(owner_client, project):
    run = Run.objects.create(project=project)
    assert owner_client.get(reverse("run_cancel", args=[run.id])).status_code == 405
    assert Run.objects.get(id=run.id).status == Run.Status.QUEUED


def test_only_the_owner_can_cancel(other_client, project, public_project):
    for target in (project, public_project):
        run = Run.objects.create(project=target)
        assert cancel(other_client, run).status_code == 404
        assert Run.objects.get(id=run.id).status == Run.Status.QUEUED


# -- progress ----------------------------------------------------------------------------------------


def progress(client, run, after=None):
    url = reverse("run_progress", args=[run.id])
    return client.get(url if after is None else f"{url}?after={after}")


def test_progress_reports_status_losses_speed_and_eta(owner_client, project):
    run = Run.objects.create(
        project=project, status=Run.Status.RUNNING, iterations=100, iterations_done=20, loss=5.0, content_loss=1.0,
        style_loss=2.0, tv_loss=3.0, seconds_per_iteration=2.0, elapsed_seconds=40.0, evaluations=401, device="CPU",
    )
    add_iteration(run, 0)
    add_iteration(run, 10)
    add_iteration(run, 20)

    response = progress(owner_client, run)

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    data = response.json()
    assert data["status"] == "running" and data["is_active"]
    assert (data["iteration"], data["iterations"], data["percent"]) == (20, 100, 20)
    assert (data["loss"], data["content_loss"], data["style_loss"], data["tv_loss"]) == (5.0, 1.0, 2.0, 3.0)
    assert data["seconds_per_iteration"] == 2.0
    assert data["eta_seconds"] == 160.0
    assert data["latest_iteration"] == 20
    assert data["latest_thumbnail_url"] == reverse("iteration_thumbnail", args=[run.id, 20])
    assert [item["number"] for item in data["saved"]] == [0, 10, 20]
    assert data["saved"][1] == {
        "number": 10, "loss": 1000 / 11, "content_loss": 100 / 11, "style_loss": 800 / 11, "tv_loss": 15.0,
        "evaluations": 200, "seconds": 15.0, "thumbnail_url": reverse("iteration_thumbnail", args=[run.id, 10]),
        "image_url": reverse("iteration_image", args=[run.id, 10]), "rows": None, "width": None,
    }
    assert owner_client.get(data["saved"][1]["thumbnail_url"]).status_code == 200


def test_progress_moves_inside_an_iteration_of_a_running_run(owner_client, project):
    # At 1024 rows on a CPU an iteration takes minutes: the worker writes its evaluations as they come.
    run = Run.objects.create(project=project, status=Run.Status.RUNNING, iterations=20, iterations_done=3,
                             next_iteration_evaluations=7)
    data = progress(owner_client, run).json()
    assert (data["iteration"], data["next_iteration_evaluations"], data["percent"]) == (3, 7, 17)  # 3.35 of 20
    page = owner_client.get(reverse("run_detail", args=[run.id])).content.decode()
    assert "computing iteration 4: 7 of 20 evaluations" in page and 'value="3.35"' in page

    # An iteration that goes on in float32 after bfloat16 has one evaluation more; a run no longer
    # running shows none of it.
    Run.objects.filter(id=run.id).update(next_iteration_evaluations=21)
    assert progress(owner_client, run).json()["next_iteration_evaluations"] == 20
    Run.objects.filter(id=run.id).update(status=Run.Status.CANCELLED)
    data = progress(owner_client, run).json()
    assert (data["next_iteration_evaluations"], data["percent"]) == (0, 15)
    assert "computing iteration" not in owner_client.get(reverse("run_detail", args=[run.id])).content.decode()


def test_progress_lists_only_iterations_after_the_given_number(owner_client, project):
    run = Run.objects.create(project=project, status=Run.Status.RUNNING)
    for number in (0, 10, 20):
        add_iteration(run, number)

    assert [item["number"] for item in progress(owner_client, run, after=10).json()["saved"]] == [20]
    assert progress(owner_client, run, after=20).json()["saved"] == []
    assert progress(owner_client, run, after="x").status_code == 400


def test_progress_of_a_new_run_has_no_iterations_yet(owner_client, project):
    data = progress(owner_client, Run.objects.create(project=project)).json()
    assert data["status"] == "queued"
    assert data["latest_iteration"] is None and data["latest_thumbnail_url"] is None
    assert data["eta_seconds"] is None and data["saved"] == []


def test_progress_of_a_failed_run_carries_its_message_and_no_nan(owner_client, project):
    run = Run.objects.create(project=project, status=Run.Status.FAILED, error="The loss became nan.", loss=float("nan"))
    add_iteration(run, 0, loss=float("inf"))

    response = progress(owner_client, run)

    assert b"NaN" not in response.content and b"Infinity" not in response.content
    data = response.json()
    assert data["error"] == "The loss became nan."
    assert data["loss"] is None and data["saved"][0]["loss"] is None


def test_progress_of_other_users_private_runs_is_a_404(other_client, project):
    run = Run.objects.create(project=project)
    assert progress(other_client, run).status_code == 404


def test_progress_of_public_runs_is_readable_by_other_users(other_client, public_project):
    run = Run.objects.create(project=public_project)
    assert progress(other_client, run).json()["id"] == run.id


def test_progress_needs_a_login(anonymous_client, public_project):
    run = Run.objects.create(project=public_project)
    assert progress(anonymous_client, run).status_code == 302


# -- deleting a run ---------------------------------------------------------------------------------


def stored_names(media_root):
    return sorted(str(path.relative_to(media_root)) for path in media_root.rglob("*") if path.is_file())


def test_deleting_a_finished_run_removes_it_and_its_files_but_not_the_pictures_other_runs_share(
        owner_client, project, queued, media_root, django_capture_on_commit_callbacks):
    for _ in range(2):
        owner_client.post(new_run_url(project), VALID)
    gone, kept = Run.objects.order_by("id")
    Run.objects.filter(id__in=[gone.id, kept.id]).update(status=Run.Status.DONE)
    for number in (0, 10):
        add_iteration(gone, number)
    gone.refresh_from_db()
    own = {name for name in (gone.base_image.name, gone.style_image.name) if name}
    own |= {name for it in gone.saved_iterations.all() for name in (it.image.name, it.thumbnail.name)}
    project.cover_run = gone
    project.save()

    page = owner_client.get(reverse("run_delete", args=[gone.id])).content.decode()
    assert "This removes the run and its 2 saved iterations. It cannot be undone." in page
    assert reverse("run_delete", args=[gone.id]) in owner_client.get(gone.get_absolute_url()).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("run_delete", args=[gone.id]))
    assert response.status_code == 302 and response["Location"] == project.get_absolute_url()
    assert list(Run.objects.values_list("id", flat=True)) == [kept.id]
    names = set(stored_names(media_root))
    assert own and not own & names
    assert {kept.content_source.name, kept.style_source.name} <= names  # the project's stored pictures stay
    project.refresh_from_db()
    assert project.cover_run is None
    assert owner_client.get(gone.get_absolute_url()).status_code == 404


@pytest.mark.parametrize("status", [Run.Status.QUEUED, Run.Status.RUNNING])
def test_a_run_still_queued_or_computing_is_not_deleted(owner_client, project, queued, status):
    owner_client.post(new_run_url(project), VALID)
    run = Run.objects.get()
    Run.objects.filter(id=run.id).update(status=status)
    assert reverse("run_delete", args=[run.id]) not in owner_client.get(run.get_absolute_url()).content.decode()
    response = owner_client.post(reverse("run_delete", args=[run.id]))
    assert response.status_code == 409
    assert "cancel it first, then delete it" in response.content.decode()
    assert Run.objects.filter(id=run.id, status=status).exists()
