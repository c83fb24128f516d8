"""Colour and style controls in the gallery: project style images, the launch form, labels, settings
pages and the zip (issue 13). No engine runs here."""
import io
import json
import zipfile

import pytest
from django.urls import reverse

from gallery import cleanup, styles
from gallery.models import ProjectStyle, Run, RunStyle
from gallery.views.projects import STYLE_ACTIONS
from tests.factories import make_image, upload
from tests.factories import VALID, add_iteration, new_run_url, stored_files


def add_styles(client, project, count):
    for seed in range(count):
        response = client.post(reverse("project_styles", args=[project.id]),
                                {"image": upload(f"s{seed}.png", make_image(50, 40, seed=10 + seed))})
        assert response.status_code == 302, response.context["form"].errors


def thumbnails(project):
    return [slot.thumbnail.name for slot in project.style_slots()]


# -- a project's style images ------------------------------------------------------------------


def test_a_project_holds_three_style_images_in_order(owner_client, project):
    add_styles(owner_client, project, 2)
    project.refresh_from_db()
    assert len(project.style_slots()) == 3
    assert [style.position for style in project.extra_styles.all()] == [2, 3]
    page = owner_client.get(project.get_absolute_url()).content.decode()
    for number in (1, 2, 3):
        assert reverse("project_style_media", args=[project.id, number, "thumb"]) in page
        assert owner_client.get(reverse("project_style_media", args=[project.id, number, "image"])).status_code == 200
    assert owner_client.get(reverse("project_style_media", args=[project.id, 4, "image"])).status_code == 404
    assert project.stored_bytes == sum(f.size for f in project.image_files())


def test_a_style_upload_is_checked_like_every_upload_and_nothing_is_saved_on_refusal(owner_client, project):
    response = owner_client.post(reverse("project_styles", args=[project.id]),
                                 {"image": upload("notes.png", b"just text", "image/png")})
    assert response.status_code == 200
    assert "not an image we can read" in response.content.decode()
    assert not ProjectStyle.objects.exists()
    assert len(stored_files("projects")) == 4  # the project's own four files


def test_a_project_holds_at_most_five_style_images(owner_client, project):
    add_styles(owner_client, project, 4)
    response = owner_client.post(reverse("project_styles", args=[project.id]), {"image": upload()})
    assert response.status_code == 200 and "at most 5 style images" in response.content.decode()
    assert ProjectStyle.objects.count() == 4


def test_style_images_move_up_and_down_and_are_removed(owner_client, project, django_capture_on_commit_callbacks):
    add_styles(owner_client, project, 2)
    before = thumbnails(project)
    change = reverse("project_style_change", args=[project.id, 2])
    response = owner_client.post(change, {"action": "up"}, follow=True)
    assert response.redirect_chain[0][1] == 302
    # The numbers shift as images move: the message says where the image is now.
    assert "Style image 2 moved up: it is now style image 1." in response.content.decode()
    project.refresh_from_db()
    assert thumbnails(project) == [before[1], before[0], before[2]]
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("project_style_change", args=[project.id, 1]), {"action": "remove"})
    project.refresh_from_db()
    assert thumbnails(project) == [before[0], before[2]]
    assert project.style_image.name and project.style_thumbnail.name == before[0]
    assert len(stored_files("projects")) == 2 + 2 * 2
    response = owner_client.post(reverse("project_style_change", args=[project.id, 2]), {"action": "down"},
                                 follow=True)
    assert "cannot move further" in response.content.decode()
    assert set(STYLE_ACTIONS) == {"up", "down"}


def test_the_last_style_image_cannot_be_removed(owner_client, project):
    response = owner_client.post(reverse("project_style_change", args=[project.id, 1]), {"action": "remove"},
                                 follow=True)
    assert "needs a style image" in response.content.decode()
    project.refresh_from_db()
    assert project.style_image.name


def test_only_the_owner_changes_style_images(other_client, anonymous_client, public_project):
    url = reverse("project_styles", args=[public_project.id])
    assert other_client.get(url).status_code == 404
    assert other_client.post(reverse("project_style_change", args=[public_project.id, 1]),
                             {"action": "remove"}).status_code == 404
    assert other_client.get(reverse("project_style_media", args=[public_project.id, 1, "thumb"])).status_code == 200
    assert anonymous_client.get(url).status_code == 302


# -- the launch form ---------------------------------------------------------------------------


def test_defaults_keep_todays_behaviour(owner_client, project, queued):  # noqa: F811
    owner_client.post(new_run_url(project), VALID)
    run = Run.objects.get()
    assert (run.preserve_colors, run.style_blend, run.style_scale) == ("none", "1", 1.0)
    assert (run.content_layer, run.style_layers) == ("block5_conv2", "balanced")
    assert run.label == "0.001_0.01_1_256px" and not run.extra_styles.exists()


def test_it_launches_a_run_with_colour_and_style_settings(owner_client, project, queued):  # noqa: F811
    response = owner_client.post(new_run_url(project), {
        **VALID, "preserve_colors": "luminance", "style_scale": "0.5", "content_layer": "block4_conv2",
        "style_layers": "custom", "custom_style_layers": "block3_conv1:0.5,block1_conv1"})
    assert response.status_code == 302
    run = Run.objects.get()
    assert (run.preserve_colors, run.style_scale, run.content_layer) == ("luminance", 0.5, "block4_conv2")
    assert run.style_layers == "block1_conv1:1, block3_conv1:0.5"
    assert run.label == "0.001_0.01_1_256px_luminance_scale0.5_block4_layers"
    page = owner_client.get(run.get_absolute_url()).content.decode()
    assert "Luminance: restyle the brightness only" in page and "block1_conv1:1, block3_conv1:0.5" in page


@pytest.mark.parametrize("changes, field, message", [
    ({"style_scale": "0.1"}, "style_scale", "Use a number from 0.25 to 4."),
    ({"style_scale": "5"}, "style_scale", "Use a number from 0.25 to 4."),
    ({"style_scale": "nan"}, "style_scale", "Enter a number"),
    ({"preserve_colors": "sepia"}, "preserve_colors", "Select a valid choice"),
    ({"content_layer": "block1_conv1"}, "content_layer", "Select a valid choice"),
    ({"style_layers": "custom", "custom_style_layers": ""}, "custom_style_layers", "List the layers"),
    ({"style_layers": "custom", "custom_style_layers": "block9_conv1:1"}, "custom_style_layers",
     "not a VGG19 layer"),
    ({"style_layers": "custom", "custom_style_layers": "block1_conv1:-1"}, "custom_style_layers", ">= 0"),
    ({"style_layers": "custom", "custom_style_layers": "block1_conv1:0"}, "custom_style_layers",
     "at least one layer"),
])
def test_it_refuses_bad_colour_and_style_settings_with_a_clear_message(owner_client, project, queued,  # noqa: F811
                                                                       changes, field, message):
    response = owner_client.post(new_run_url(project), {**VALID, **changes})
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert not Run.objects.exists() and queued == [] and stored_files() == []


def test_a_run_blends_the_chosen_style_images_and_keeps_its_own_copies(owner_client, project, queued):  # noqa: F811
    add_styles(owner_client, project, 2)
    page = owner_client.get(new_run_url(project)).content.decode()
    assert 'name="blend_3"' in page and reverse("project_style_media", args=[project.id, 3, "thumb"]) in page
    response = owner_client.post(new_run_url(project), {**VALID, "blend_1": "0.7", "blend_2": "0", "blend_3": "0.3"})
    assert response.status_code == 302
    run = Run.objects.get()
    assert run.style_blend == "0.7,0.3" and run.blend_weights == (0.7, 0.3)
    assert [style.position for style in run.extra_styles.all()] == [2]
    third = project.style_slots()[2]
    with run.extra_styles.get().source.open("rb") as copy, third.image.open("rb") as original:
        assert copy.read() == original.read()
    assert run.label.endswith("_blend0.7-0.3")
    # The run keeps its styles when the project's change.
    owner_client.post(reverse("project_style_change", args=[project.id, 3]), {"action": "remove"})
    assert owner_client.get(reverse("run_style_media", args=[run.id, 2])).status_code == 200
    name = run.extra_styles.get().source.name
    assert cleanup.referenced_run_files([name, "runs/none.png"]) == {name}
    detail = owner_client.get(run.get_absolute_url()).content.decode()
    assert "0.7 × style 1, 0.3 × style 2" in detail


def test_a_continued_run_keeps_the_styles_and_blend_of_the_run_it_continues(owner_client, project,
                                                                             queued):  # noqa: F811
    add_styles(owner_client, project, 2)
    owner_client.post(new_run_url(project), {**VALID, "blend_1": "0.7", "blend_2": "0", "blend_3": "0.3"})
    source = Run.objects.get()
    Run.objects.filter(id=source.id).update(status=Run.Status.DONE)
    add_iteration(source, 10)
    # The project's styles change after the run: the continuation still uses the run's own.
    owner_client.post(reverse("project_style_change", args=[project.id, 3]), {"action": "remove"})
    url = new_run_url(project, from_run=source.id, from_iteration=10)
    page = owner_client.get(url).content.decode()
    assert 'name="blend_1"' not in page
    assert "Continues with the style images of" in page and "blended 0.7 : 0.3" in page
    data = {key: value for key, value in VALID.items() if key not in ("init", "adain_alpha", "start_rows")}
    assert owner_client.post(url, data).status_code == 302
    run = Run.objects.exclude(id=source.id).get()
    assert run.style_blend == "0.7,0.3" and run.label.endswith("_cont_blend0.7-0.3")
    copies, originals = run.style_files(), source.style_files()
    # The project's stored pictures (gallery.run_inputs), shared with the run it continues.
    assert len(copies) == 2 and [copy.name for copy in copies] == [original.name for original in originals]
    for copy, original in zip(copies, originals):
        with copy.open("rb") as mine, original.open("rb") as theirs:
            assert mine.read() == theirs.read()


def test_a_blend_without_any_weight_is_refused_and_nothing_saved(owner_client, project, queued):  # noqa: F811
    add_styles(owner_client, project, 1)
    response = owner_client.post(new_run_url(project), {**VALID, "blend_1": "0", "blend_2": "0"})
    assert response.status_code == 200
    assert "at least one style image a weight above 0" in response.content.decode()
    response = owner_client.post(new_run_url(project), {**VALID, "blend_1": "-1", "blend_2": "1"})
    assert response.context["form"].errors["blend_1"] == ["Use a number from 0 to 1e12."]
    assert not Run.objects.exists() and not RunStyle.objects.exists() and stored_files() == []


def test_the_compare_page_and_the_zip_show_the_settings_that_differ(owner_client, project, queued):  # noqa: F811
    owner_client.post(new_run_url(project), VALID)
    owner_client.post(new_run_url(project), {**VALID, "preserve_colors": "histogram", "style_layers": "fine"})
    plain, kept = Run.objects.order_by("id")
    response = owner_client.get(reverse("compare") + f"?runs={plain.id},{kept.id}")
    assert response.context["differing"] == ["Keep the photo's colours", "Style layers"]
    download = owner_client.get(reverse("run_download", args=[kept.id]))
    with zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))) as archive:
        name = next(n for n in archive.namelist() if n.endswith("run.json"))
        settings = json.loads(archive.read(name))["settings"]
    assert settings["preserve_colors"] == "histogram" and settings["style_layers"] == "fine"
    assert (settings["style_blend"], settings["style_scale"], settings["content_layer"]) == (
        [1.0], 1.0, "block5_conv2")


def test_the_guide_is_linked_from_the_form(owner_client, project):
    page = owner_client.get(new_run_url(project)).content.decode()
    guide = reverse("colour_and_style_guide")
    assert guide in page
    assert "Keep the photo" in owner_client.get(guide).content.decode()


def test_the_guide_does_not_say_the_launch_forms_defaults_are_its_own_small_size(owner_client):
    """The pictures are 64 rows and 8 iterations to be quick to make; the form's defaults are 400 and 20."""
    page = owner_client.get(reverse("colour_and_style_guide")).content.decode()
    assert "launch form's defaults (64 rows" not in page
    assert "all small: 64 rows and 8 iterations" in page


def test_removing_a_style_image_keeps_the_rows_as_they_were_when_storage_fails(owner_client, project, monkeypatch):
    add_styles(owner_client, project, 1)
    before = thumbnails(project)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(styles.files, "total_size", broken)
    with pytest.raises(OSError):
        styles.remove_style(project, 1)
    project.refresh_from_db()
    assert thumbnails(project) == before and ProjectStyle.objects.count() == 1


def test_removing_the_last_style_image_gives_its_bytes_back(owner_client, project):
    before = project.stored_bytes
    add_styles(owner_client, project, 1)
    project.refresh_from_db()
    assert project.stored_bytes > before
    owner_client.post(reverse("project_style_change", args=[project.id, 2]), {"action": "remove"})
    project.refresh_from_db()
    assert project.stored_bytes == before and not ProjectStyle.objects.exists()
