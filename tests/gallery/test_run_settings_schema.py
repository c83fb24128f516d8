"""The gallery reads the run settings' schema: a setting added there (pooling) reaches the form, the
run and compare pages, labels, sweeps, the zips and the estimate with no gallery code of its own."""
import csv
import io
import json
import zipfile

from django.urls import reverse

from gallery.models import Run
from gallery.run_forms import RunForm
from gallery.sweeps import SWEEPABLE, SweepAxisForm
from stylecore.schema import SETTING
from tests.factories import VALID, create_run, new_run_url
from tests.gallery.test_sweeps import make_sweep, post_sweep


def test_the_form_offers_pooling_with_the_schemas_words_and_default(owner_client, project):
    form = RunForm()
    assert form.fields["pooling"].label == "Pooling"
    assert form.fields["pooling"].help_text == SETTING["pooling"].help
    assert form["pooling"].value() == "max"
    assert "pooling" in [field.name for field in form.option_fields()]
    page = owner_client.get(new_run_url(project)).content.decode()
    assert 'name="pooling"' in page and "Average (Gatys et al.)" in page


def test_a_run_launched_with_average_pooling_keeps_it_in_its_label(owner_client, project, queued):
    response = owner_client.post(new_run_url(project), {**VALID, "pooling": "average"})
    assert response.status_code == 302
    run = Run.objects.get()
    assert run.pooling == "average" and run.settings.pooling == "average"
    assert run.label.endswith("_averagepool")


def test_a_run_launched_without_pooling_takes_the_default(owner_client, project, queued):
    owner_client.post(new_run_url(project), VALID)
    assert Run.objects.get().pooling == "max"


def test_a_bad_pooling_is_refused_clearly(owner_client, project, queued):
    response = owner_client.post(new_run_url(project), {**VALID, "pooling": "median"})
    assert response.status_code == 200 and not queued
    assert "Select a valid choice. median is not one of the available choices." in response.content.decode()


def test_the_run_and_compare_pages_show_pooling(owner_client, project):
    plain, average = create_run(project), create_run(project, pooling="average")
    page = owner_client.get(average.get_absolute_url()).content.decode()
    assert "Pooling" in page and "Average (Gatys et al.)" in page
    response = owner_client.get(reverse("compare") + f"?runs={plain.id},{average.id}")
    assert response.context["differing"] == ["Pooling"]


def test_start_rows_read_the_same_on_the_run_and_compare_pages(owner_client, project):
    one_size, growing = create_run(project, rows=64, start_rows=64), create_run(project, rows=64, start_rows=32)
    assert ("Start rows (coarse to fine)", "one size") in owner_client.get(
        one_size.get_absolute_url()).context["settings_rows"]
    response = owner_client.get(reverse("compare") + f"?runs={one_size.id},{growing.id}")
    shown = [[s["value"] for s in column["settings"] if s["name"].startswith("Start rows")]
             for column in response.context["columns"]]
    assert shown == [["one size"], ["32 px"]]


def test_pooling_is_a_sweep_axis(owner_client, project, queued):
    assert "pooling" in SWEEPABLE
    axis = SweepAxisForm({"setting": "pooling", "values": ""})
    assert axis.is_valid() and axis.cleaned_data["resolved"] == ["max", "average"]
    response = post_sweep(owner_client, project, axis1=("pooling", ""), axis2=None)
    assert response.status_code == 302
    assert sorted(Run.objects.values_list("pooling", flat=True)) == ["average", "max"]


def test_the_zips_list_pooling(owner_client, project):
    sweep = make_sweep(project, numbers=(0,))
    response = owner_client.get(reverse("sweep_download", args=[sweep.id]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    rows = list(csv.DictReader(io.StringIO(archive.read(f"sweep-{sweep.id}/sweep.csv").decode())))
    assert rows and all(row["pooling"] == "max" for row in rows)
    record = json.loads(archive.read(next(name for name in archive.namelist() if name.endswith("run.json"))))
    assert record["settings"]["pooling"] == "max"


def test_the_estimate_reads_the_form_with_pooling(owner_client, project):
    url = reverse("run_estimate", args=[project.id])
    assert owner_client.get(url, {**VALID, "pooling": "average"}).context["estimate"] is not None
    assert owner_client.get(url, {**VALID, "pooling": "median"}).context["estimate"] is None


def test_every_number_input_of_the_form_has_the_schemas_bounds(owner_client, project):
    # Django's form field of a positive integer column would put min="0" on iterations and save every.
    page = owner_client.get(new_run_url(project)).content.decode()
    for setting in SETTING.values():
        if setting.type in (int, float) and not setting.choices and setting.name not in ("rows", "start_rows"):
            tag = page[page.rindex("<input", 0, page.index(f'name="{setting.name}"')):]
            tag = tag[:tag.index(">")]
            assert f'min="{setting.minimum}"' in tag, tag
            if setting.maximum is not None:
                assert f'max="{setting.maximum}"' in tag or setting.name == "iterations", tag


def test_the_iterations_help_reads_as_english(owner_client):
    """It said "By the default 20, five more lower the loss…": the five more come after the 20."""
    from stylecore.schema import help_text

    words = help_text(SETTING["iterations"])
    assert "After the default 20, five more iterations lower the loss by under 2 %" in words
    assert "By the default" not in words
