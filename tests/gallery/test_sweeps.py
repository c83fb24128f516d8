"""Sweeps: the form and its refusals, the grid of runs, the matrix page, its exports, fairness."""
import csv
import html
import io
import math
import re
import zipfile

import pytest
from django.urls import reverse
from PIL import Image

from gallery import queue
from gallery.display import _axis_places, _tick_text
from gallery.matrix_figure import CELL, GAP, LINE, MARGIN, cell_picture
from gallery.models import Iteration, LossPoint, Run, Sweep
from gallery.sweeps import log_spaced, sweep_progress
from gallery.queue import next_queued_run
from tests.factories import create_project
from tests.factories import create_run

BASE = {
    "content_weight": "1", "style_weight": "0.3", "tv_weight": "0.0001", "iterations": "20", "rows": "64",
    "save_every": "10", "style_fit": "crop", "optimizer": "lbfgs", "init": "content", "seed": "",
}


def sweep_data(axis1=("tv_weight", "0.001, 0.01"), axis2=("style_weight", "0.1, 1"), launch=True, **extra):
    data = dict(BASE)
    data["axis1-setting"], data["axis1-values"] = axis1
    data["axis2-setting"], data["axis2-values"] = axis2 or ("", "")
    if launch:
        data["launch"] = "1"
    data.update(extra)
    return data


def post_sweep(client, project, **kwargs):
    return client.post(reverse("sweep_create", args=[project.id]), sweep_data(**kwargs))


def make_sweep(project, rows=(0.001, 0.01), columns=(0.1, 1.0), status=Run.Status.DONE, numbers=(0, 1, 2)):
    """A 2 × 2 sweep of finished runs with real images (no worker)."""
    sweep = Sweep.objects.create(project=project, axis1="tv_weight", axis1_values=list(rows),
                                 axis2="style_weight", axis2_values=list(columns))
    for i, tv in enumerate(rows):
        for j, style in enumerate(columns):
            run = create_run(project, numbers=numbers, status=status, tv_weight=tv, style_weight=style)
            Run.objects.filter(id=run.id).update(sweep=sweep, sweep_row=i, sweep_column=j)
    return sweep


# ---------------------------------------------------------------------------------------------
# The form


def test_it_offers_a_3_by_3_start_from_the_project_page(owner_client, project):
    page = owner_client.get(reverse("project_detail", args=[project.id])).content.decode()
    assert reverse("sweep_create", args=[project.id]) in page
    response = owner_client.get(reverse("sweep_create", args=[project.id]))
    assert response.status_code == 200
    assert 'value="0.0001, 0.001, 0.01"' in response.content.decode()


def test_it_counts_the_runs_and_estimates_the_time_without_creating_anything(owner_client, project, queued):
    response = post_sweep(owner_client, project, launch=False, preview="1")
    page = response.content.decode()
    assert response.status_code == 200
    assert "4 runs (2 × 2)" in page
    # One axis: the count alone, not "2 runs (2)".
    one = post_sweep(owner_client, project, launch=False, preview="1", axis2=None).content.decode()
    assert "2 runs</strong>" in one and "(2)" not in one
    assert "of computing in all" in page and "a rough figure" in page
    assert not Sweep.objects.exists() and not Run.objects.exists() and not queued


def test_it_launches_the_grid_with_the_right_settings_and_labels(owner_client, project, queued):
    response = post_sweep(owner_client, project)
    sweep = Sweep.objects.get()
    assert response.status_code == 302 and response.url == reverse("sweep_detail", args=[sweep.id])
    assert (sweep.axis1, sweep.axis1_values, sweep.axis2, sweep.axis2_values) == (
        "tv_weight", [0.001, 0.01], "style_weight", [0.1, 1.0])
    runs = list(sweep.runs.order_by("sweep_row", "sweep_column"))
    cells = [(run.sweep_row, run.sweep_column, run.tv_weight, run.style_weight) for run in runs]
    assert cells == [(0, 0, 0.001, 0.1), (0, 1, 0.001, 1.0), (1, 0, 0.01, 0.1), (1, 1, 0.01, 1.0)]
    assert [run.label for run in runs] == ["0.001_0.1_1_64px", "0.001_1_1_64px",
                                           "0.01_0.1_1_64px", "0.01_1_1_64px"]
    assert all(run.iterations == 20 and run.rows == 64 and run.status == Run.Status.QUEUED for run in runs)
    assert all(run.content_source and run.style_source for run in runs)  # the pictures it was launched with
    assert sorted(queued) == sorted(run.id for run in runs)


def test_one_axis_makes_a_row_and_a_blank_choice_list_means_every_choice(owner_client, project, queued):
    post_sweep(owner_client, project, axis1=("optimizer", ""), axis2=None)
    sweep = Sweep.objects.get()
    assert sweep.axis2 == "" and sweep.axis1_values == ["lbfgs", "adam"]
    assert sorted(sweep.runs.values_list("optimizer", "sweep_column")) == [("adam", 0), ("lbfgs", 0)]


def test_weights_can_be_log_spaced(owner_client, project, queued):
    assert log_spaced(0.0001, 0.01, 3) == [0.0001, 0.001, 0.01]
    post_sweep(owner_client, project, axis1=("content_weight", ""), axis2=None,
               **{"axis1-log_from": "1", "axis1-log_to": "100", "axis1-log_steps": "5"})
    assert Sweep.objects.get().axis1_values == [1.0, 3.16, 10.0, 31.6, 100.0]


def test_it_refuses_more_runs_than_the_maximum_and_creates_nothing(owner_client, project, queued, settings):
    settings.SWEEP_MAX_RUNS = 4
    response = post_sweep(owner_client, project, axis1=("tv_weight", "0.001 0.01 0.1"))
    assert response.status_code == 200
    assert ("This sweep would launch 6 runs (3 × 2); a sweep may launch at most 4. Use fewer values."
            in response.content.decode())
    assert not Sweep.objects.exists() and not Run.objects.exists() and not queued


@pytest.mark.parametrize(
    "axis1, axis2, message",
    [
        (("tv_weight", "0.1, abc"), None, "“abc”: Enter a number."),
        (("rows", "64, 99999"), None, "“99999”: Use a whole number from 64 to 2048."),
        (("tv_weight", "0.1, -1"), None, "“-1”: Use a number from 0 to 1e12."),
        (("tv_weight", "0.1, 1e400"), None, "“1e400”: Enter a number."),
        (("optimizer", "lbfgs, sgd"), None, "“sgd”: Select a valid choice. sgd is not one of the available choices."),
        (("tv_weight", "0.1, 0.1"), None, "“0.1” is there twice; each value makes one run."),
        (("tv_weight", ""), None, "Type the values of TV weight to try, or a log-spaced range."),
        (("", ""), None, "Choose the setting to vary."),
        (("rows", "64"), ("rows", "128"), "Choose two different settings, or none across."),
        (("tv_weight", " ".join(["1"] * 30)), None, "At most 25 values per axis (you typed 30)."),
    ],
)
def test_it_refuses_bad_axes_with_a_clear_message(owner_client, project, queued, axis1, axis2, message):
    response = post_sweep(owner_client, project, axis1=axis1, axis2=axis2)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Sweep.objects.exists() and not Run.objects.exists() and not queued


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"axis1-log_from": "0", "axis1-log_to": "1", "axis1-log_steps": "3"}, "runs between two numbers above 0"),
        ({"axis1-log_from": "1", "axis1-log_to": "10"}, "needs a start, an end and a number of steps"),
        ({"axis1-log_from": "1", "axis1-log_to": "10", "axis1-log_steps": "1"}, "Use a whole number from 2 to 25."),
        ({"axis1-log_from": "1", "axis1-log_to": "1.001", "axis1-log_steps": "20"}, "too close together"),
        # Refused by the field, before any value is computed (a count in the billions once took gigabytes).
        ({"axis1-log_from": "1", "axis1-log_to": "2", "axis1-log_steps": "99999999999999999999"},
         "Use a whole number from 2 to 25."),
        ({"axis1-log_from": "1", "axis1-log_to": "2", "axis1-log_steps": "26"}, "Use a whole number from 2 to 25."),
        ({"axis1-log_from": "1", "axis1-log_to": "10", "axis1-log_steps": "3", "axis1-values": "1"}, "not both"),
    ],
)
def test_it_refuses_bad_log_ranges(owner_client, project, queued, extra, message):
    data = {"axis1": ("tv_weight", extra.pop("axis1-values", "")), "axis2": None}
    response = post_sweep(owner_client, project, **data, **extra)
    assert message in response.content.decode()
    assert not Sweep.objects.exists()


@pytest.mark.parametrize("start, stop", [("1e300", "1e-300"), ("1e-300", "1e300"), ("5e-324", "1.7e308")])
def test_a_log_range_spanning_the_floats_is_refused_per_value_not_with_an_error(owner_client, project, queued,
                                                                              start, stop):
    # The quotient of such ends under- or overflows; the values are spaced in logs, and each is checked as a run.
    values = log_spaced(float(start), float(stop), 3)
    assert all(math.isfinite(value) and value > 0 for value in values) and len(set(values)) == 3
    response = post_sweep(owner_client, project, axis1=("tv_weight", ""), axis2=None,
                          **{"axis1-log_from": start, "axis1-log_to": stop, "axis1-log_steps": "3"})
    assert response.status_code == 200
    assert "Use a number from 0 to 1e12." in response.content.decode()
    assert not Sweep.objects.exists() and not Run.objects.exists() and not queued


def test_only_weights_can_be_log_spaced(owner_client, project, queued):
    response = post_sweep(owner_client, project, axis1=("rows", ""), axis2=None,
                          **{"axis1-log_from": "64", "axis1-log_to": "256", "axis1-log_steps": "3"})
    assert "Only weights can be log-spaced; type the values of Rows." in response.content.decode()


def test_a_cell_with_every_weight_at_zero_is_refused(owner_client, project, queued):
    response = post_sweep(owner_client, project, axis1=("tv_weight", "0, 0.1"), axis2=("style_weight", "0, 1"),
                          content_weight="0")
    assert "The run with TV weight 0, Style weight 0: At least one weight must be above 0." in response.content.decode()
    assert not Run.objects.exists()


def test_other_settings_are_checked_by_the_launch_form(owner_client, project, queued):
    response = post_sweep(owner_client, project, iterations="0")
    assert "Use a whole number from 1 to 5000." in response.content.decode()
    assert not Run.objects.exists()


def test_a_swept_setting_left_blank_below_is_not_an_error(owner_client, project, queued):
    post_sweep(owner_client, project, axis1=("rows", "64, 96"), axis2=None, rows="")
    assert sorted(Run.objects.values_list("rows", flat=True)) == [64, 96]


def test_one_unfinished_sweep_at_a_time(owner_client, project, queued):
    make_sweep(project, status=Run.Status.QUEUED)
    response = post_sweep(owner_client, project)
    assert "You have 1 sweep still computing; one account may have 1 at a time." in response.content.decode()
    assert Sweep.objects.count() == 1


def test_a_sweep_over_the_storage_limit_is_refused(owner_client, project, queued, settings):
    settings.USER_MAX_STORED_BYTES = project.stored_bytes + 1000
    response = post_sweep(owner_client, project)
    assert "this sweep's images (up to" in html.unescape(response.content.decode())
    assert not Sweep.objects.exists()


def test_a_sweep_with_a_size_too_large_for_the_workers_memory_is_refused(owner_client, project, queued, settings):
    from gallery.models import DeviceMemory

    settings.RUN_MAX_ROWS = 2048
    DeviceMemory.objects.create(device="", limit=4 * 2 ** 30)  # the device before any worker measured
    response = post_sweep(owner_client, project, axis1=("rows", "64, 2048"), axis2=None)
    page = html.unescape(response.content.decode())
    assert "A 2048×" in page and "the workers' machine lets a run use 3.9 GB. Use at most" in page
    assert not Sweep.objects.exists() and not Run.objects.exists()
    assert post_sweep(owner_client, project, axis1=("rows", "64, 128"), axis2=None).status_code == 302


def test_queued_sweep_runs_do_not_block_single_launches(owner, project, settings):
    from gallery.quotas import run_refusal

    settings.USER_MAX_QUEUED_RUNS = 2
    make_sweep(project, status=Run.Status.QUEUED)
    assert run_refusal(owner, Run(project=project, rows=64, iterations=2, save_every=1), 1.0) is None


def test_a_sweep_stays_launched_and_queued_when_its_tokens_cannot_be_queued(owner_client, project, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(queue, "async_task", broken)
    response = post_sweep(owner_client, project)
    assert response.status_code == 302  # the queue is the database: recovery's wake-up queues tokens later
    sweep = Sweep.objects.get()
    assert set(sweep.runs.values_list("status", flat=True)) == {Run.Status.QUEUED}


# ---------------------------------------------------------------------------------------------
# Fairness: a sweep's runs go through the same fair queue as single runs


def test_another_users_single_run_goes_before_the_rest_of_a_sweep(owner, other, project):
    sweep = make_sweep(project, status=Run.Status.QUEUED)
    Run.objects.filter(id=sweep.runs.order_by("id").first().id).update(status=Run.Status.RUNNING)
    single = create_run(create_project(other), status=Run.Status.QUEUED)
    assert next_queued_run() == single.id


# ---------------------------------------------------------------------------------------------
# Permissions: someone else's private sweep is a 404 everywhere


def sweep_urls(sweep):
    return [reverse(name, args=[sweep.id]) for name in ("sweep_detail", "sweep_png", "sweep_download")] + [
        reverse("sweep_detail", args=[sweep.id]) + "?fragment=live"
    ]


def test_someone_elses_private_sweep_is_404_everywhere(other_client, project):
    sweep = make_sweep(project)
    for url in sweep_urls(sweep):
        assert other_client.get(url).status_code == 404, url
    assert other_client.post(reverse("sweep_cancel", args=[sweep.id])).status_code == 404
    assert other_client.get(reverse("sweep_create", args=[project.id])).status_code == 404


def test_a_public_sweep_is_read_only_for_others(other_client, public_project):
    sweep = make_sweep(public_project, status=Run.Status.QUEUED)
    for url in sweep_urls(sweep):
        assert other_client.get(url).status_code == 200, url
    assert "Cancel sweep" not in other_client.get(reverse("sweep_detail", args=[sweep.id])).content.decode()
    assert "Cancel sweep" not in other_client.get(reverse("project_detail", args=[public_project.id])).content.decode()
    assert other_client.post(reverse("sweep_cancel", args=[sweep.id])).status_code == 404
    assert not Run.objects.filter(status=Run.Status.CANCELLED).exists()


def test_anonymous_users_are_sent_to_log_in(anonymous_client, project):
    sweep = make_sweep(project)
    for url in sweep_urls(sweep):
        assert anonymous_client.get(url).status_code == 302


# ---------------------------------------------------------------------------------------------
# The matrix page, cancel and the project page


def test_the_matrix_has_axis_1_down_and_axis_2_across(owner_client, project):
    sweep = make_sweep(project)
    page = owner_client.get(reverse("sweep_detail", args=[sweep.id])).content.decode()
    runs = list(sweep.runs.order_by("sweep_row", "sweep_column"))
    positions = [page.index(f'data-run-id="{run.id}"') for run in runs]
    assert positions == sorted(positions)
    assert page.index(">0.001<") < page.index(">0.01<")
    assert 'data-open-url="/runs/' in page
    assert page.count("data-crop-canvas") == 4


def test_a_matrix_with_columns_says_it_scrolls_sideways_on_a_narrow_screen(owner_client, project):
    hint = "The matrix scrolls sideways: its columns (Style weight) go on to the right"
    page = owner_client.get(reverse("sweep_detail", args=[make_sweep(project).id])).content.decode()
    assert hint in page and page.count('aria-describedby="matrix-scroll-hint"') == 2  # the matrix and its crops
    one_column = make_sweep(project, columns=(0.1,))
    assert "matrix-scroll-hint" not in owner_client.get(reverse("sweep_detail", args=[one_column.id])).content.decode()


def test_a_sweep_of_up_to_six_runs_charts_their_losses_and_a_larger_one_says_how_to_see_them(owner_client, project):
    sweep = make_sweep(project)
    page = owner_client.get(reverse("sweep_detail", args=[sweep.id])).content.decode()
    section = page[page.index('id="compare-losses"'):]
    assert section.count("<svg viewBox") == 3
    for position, run in enumerate(sweep.runs.order_by("sweep_row", "sweep_column"), 1):
        assert section.count(f'data-series="run-{position}"') == 3 and f"{run.label} at iteration 2:" in section
    live = owner_client.get(reverse("sweep_detail", args=[sweep.id]), {"fragment": "live"}).content.decode()
    assert 'id="compare-losses" data-live-part' in live

    large = make_sweep(project, rows=(0.001, 0.01, 0.1), columns=(0.1, 1.0, 10.0))
    page = owner_client.get(reverse("sweep_detail", args=[large.id])).content.decode()
    section = page[page.index('id="compare-losses"'):]
    assert "9 runs are more lines than a chart can tell apart." in section and "tick up to 6 of them" in section
    assert 'data-series="run-' not in section


def swept_section(client, sweep, **query):
    page = client.get(reverse("sweep_detail", args=[sweep.id]), query).content.decode()
    return html.unescape(page[page.index('id="sweep-losses"'):page.index('id="compare-losses"')])


def test_every_sweep_charts_its_runs_losses_against_the_swept_values_at_the_iteration_shown(owner_client, project):
    sweep = make_sweep(project, rows=(0.0001, 0.001, 0.01), columns=(0.1, 0.3, 1.0))
    for run in sweep.runs.all():  # a content loss that says which cell it is
        Iteration.objects.filter(run=run).update(content_loss=10 ** run.sweep_row * (run.sweep_column + 1))
    section = swept_section(owner_client, sweep)
    assert "Losses against TV weight, by Style weight" in section and "at each run’s last iteration" in section
    assert section.count("<svg viewBox") == 3  # content, style, total variation
    assert [f"Style weight: {value}<" in section for value in ("0.1", "0.3", "1")] == [True] * 3  # the legend
    assert section.count('data-series="run-') == 9  # 3 lines on each of 3 charts
    assert "Style weight 0.3, TV weight 0.01: 200" in section  # a dot's title: its line, its value across, its loss
    # Across on a log scale, evenly spaced for 0.0001, 0.001, 0.01, with the labels in order.
    ticks = re.findall(r'chart-tick-x" x="([\d.]+)" y="\d+">([^<]+)<', section)
    assert [label for _x, label in ticks[:3]] == ["0.0001", "0.001", "0.01"] and "TV weight (log scale)" in section
    xs = [float(x) for x, _label in ticks[:3]]
    assert xs[1] - xs[0] == pytest.approx(xs[2] - xs[1], abs=0.2)
    table = section[section.index("<table"):]
    assert table.count("<tr>") == 10 and "<td>0.3</td><td>2</td>" in table  # the runs, their values and iteration

    first = swept_section(owner_client, sweep, iteration=1)
    assert "at iteration 1 of 2" in first and "<td>1</td>" in first and "<td>2</td><td class" not in first
    live = owner_client.get(reverse("sweep_detail", args=[sweep.id]), {"fragment": "live"}).content.decode()
    assert 'id="sweep-losses" data-live-part' in live


def test_the_axis_with_more_values_goes_across_and_too_many_lines_leave_the_table(owner_client, project):
    wide = make_sweep(project, rows=(0.001, 0.01), columns=(0.1, 0.3, 1.0), numbers=(0, 1))
    section = swept_section(owner_client, wide)
    assert "Losses against Style weight, by TV weight" in section and section.count('data-series="run-') == 6

    many = make_sweep(project, rows=tuple(10.0 ** -k for k in range(1, 8)), columns=tuple(range(1, 8)),
                      numbers=(0,))
    section = swept_section(owner_client, many)
    assert "Style weight has more values than a chart can tell apart as lines (at most 6)" in section
    assert "<svg viewBox" not in section and section.count("<tr>") == 50
    assert "change what the losses measure" not in section  # weights weigh them only


def test_a_sweep_of_settings_that_change_what_the_losses_measure_says_so(owner_client, project):
    sweep = make_sweep(project, numbers=(0, 1))
    Sweep.objects.filter(id=sweep.id).update(axis1="pooling", axis1_values=["max", "average"],
                                             axis2="rows", axis2_values=[64, 96])
    section = swept_section(owner_client, sweep)
    assert "Losses against Pooling, by Rows" in section and "Rows: 96 px" in section
    assert "Pooling and Rows change what the losses measure" in section and "across them" in section


def test_a_sweep_not_yet_computed_says_where_its_losses_will_be(owner_client, project):
    sweep = make_sweep(project, status=Run.Status.QUEUED, numbers=())
    section = swept_section(owner_client, sweep)
    assert "The runs' losses appear here once they have computed their first iteration." in section


@pytest.mark.parametrize("name, values, places, scale", [
    ("tv_weight", [0.0001, 0.01, 0.001], [0.0, 1.0, 0.5], "log scale"),
    ("tv_weight", [0.0, 0.001, 0.1], [0.0, 0.5, 1.0], ""),  # a zero has no place on a log scale: evenly
    ("rows", [64, 128, 256], [0.0, 1 / 3, 1.0], ""),
    ("optimizer", ["lbfgs", "adam"], [0.0, 1.0], ""),
    ("style_scale", [1.0], [0.5], ""),
])
def test_each_axis_has_its_own_scale(name, values, places, scale):
    assert _axis_places(name, values) == (pytest.approx(places), scale)


def test_the_live_fragment_follows_the_iteration(owner_client, project):
    sweep = make_sweep(project, status=Run.Status.RUNNING)
    live = owner_client.get(reverse("sweep_detail", args=[sweep.id]) + "?fragment=live&iteration=1").content.decode()
    run = sweep.runs.first()
    assert f'id="compare-image-{run.id}"' in live and f"/runs/{run.id}/iterations/1/image/" in live
    assert 'data-live-url="/sweeps/' in live and "iteration=1" in live


def test_cancelling_a_sweep_cancels_its_queued_runs_and_stops_running_ones(owner_client, project):
    sweep = make_sweep(project, status=Run.Status.QUEUED)
    running = sweep.runs.order_by("id").first()
    Run.objects.filter(id=running.id).update(status=Run.Status.RUNNING)
    other_run = create_run(project, status=Run.Status.QUEUED)
    response = owner_client.post(reverse("sweep_cancel", args=[sweep.id]), {"next": "project"})
    assert response.url == reverse("project_detail", args=[project.id])
    assert sweep.runs.filter(status=Run.Status.CANCELLED).count() == 3
    assert Run.objects.get(id=running.id).cancel_requested
    assert Run.objects.get(id=other_run.id).status == Run.Status.QUEUED


def test_the_project_page_lists_sweeps_with_their_progress(owner_client, project):
    sweep = make_sweep(project, status=Run.Status.QUEUED)
    page = owner_client.get(reverse("project_detail", args=[project.id])).content.decode()
    assert f"Sweep {sweep.id}: TV weight × Style weight" in page
    assert "0 of 4 runs done · 4 queued or running" in page
    assert "Cancel sweep" in page


def test_a_sweeps_progress_counts_the_part_done_of_each_iteration_in_progress():
    done = Run(status=Run.Status.DONE, iterations=10, iterations_done=10)
    running = Run(status=Run.Status.RUNNING, iterations=10, iterations_done=4, next_iteration_evaluations=8)
    assert sweep_progress([done, running])["percent"] == 72  # (10 + 4 + 8/20) of 20 iterations


# ---------------------------------------------------------------------------------------------
# Exports


def open_png(response):
    assert response["Content-Type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


def test_the_matrix_png_has_a_cell_per_run_and_its_labels(owner_client, project):
    sweep = make_sweep(project)
    figure = open_png(owner_client.get(reverse("sweep_png", args=[sweep.id])))
    # 64×48 images grow ×5 (the most whole times that fit CELL): cells of 320×240.
    factor = CELL // 64
    top = MARGIN + LINE + 6 + 2 * LINE
    assert figure.height == top + 2 * (48 * factor + LINE + GAP) + MARGIN
    assert figure.width > 2 * (64 * factor + GAP)
    assert figure.text["Rows"] == "TV weight: 0.001, 0.01"
    assert figure.text["Columns"] == "Style weight: 0.1, 1"
    assert figure.text["Title"] == f"Bird and Scream · sweep {sweep.id} · each run’s last iteration"


def test_the_matrix_png_follows_the_iteration_and_the_crop(owner_client, project):
    sweep = make_sweep(project)
    response = owner_client.get(reverse("sweep_png", args=[sweep.id]) + "?iteration=1&crop=8,6,16,12")
    figure = open_png(response)
    assert "iteration-1" in response["Content-Disposition"]
    assert figure.text["Title"].endswith("iteration 1 of 2 · crop x 8, y 6, 16x12 px")
    factor = CELL // 16
    assert figure.height == MARGIN + LINE + 6 + 2 * LINE + 2 * (12 * factor + LINE + GAP) + MARGIN


def test_a_crop_is_magnified_with_nearest_neighbour_scaling():
    image = Image.new("RGB", (64, 48))
    image.putpixel((8, 6), (255, 0, 0))
    picture = cell_picture(image, {"x": 8, "y": 6, "w": 16, "h": 12}, (64, 48))
    factor = CELL // 16
    assert picture.size == (16 * factor, 12 * factor)
    assert {picture.getpixel((x, y)) for x in range(factor) for y in range(factor)} == {(255, 0, 0)}
    assert picture.getpixel((factor, 0)) == (0, 0, 0)
    # A run twice the size gets the same part of the picture.
    large = image.resize((128, 96), Image.Resampling.NEAREST)
    assert cell_picture(large, {"x": 8, "y": 6, "w": 16, "h": 12}, (64, 48)).size == (32 * (CELL // 32), 24 * (CELL // 32))


def test_bad_crops_and_iterations_in_the_png_address_are_ignored(owner_client, project):
    sweep = make_sweep(project)
    for query in ("?crop=1,2,3", "?crop=-1,0,5,5", "?iteration=x", "?crop=9999,9999,9999,9999", "?iteration=99999"):
        assert owner_client.get(reverse("sweep_png", args=[sweep.id]) + query).status_code == 200, query


def test_the_zip_holds_a_csv_of_every_run_and_the_images(owner_client, project):
    sweep = make_sweep(project, numbers=(0, 1))
    response = owner_client.get(reverse("sweep_download", args=[sweep.id]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = archive.namelist()
    rows = list(csv.DictReader(io.StringIO(archive.read(f"sweep-{sweep.id}/sweep.csv").decode())))
    assert len(rows) == 4 * 2  # every saved iteration of every run
    first = rows[0]
    assert first["axis:tv_weight"] == "0.001" and first["axis:style_weight"] == "0.1"
    assert first["iteration"] == "0" and float(first["loss"]) == 1000.0
    assert all(f"sweep-{sweep.id}/{row['image']}" in names for row in rows)
    assert sum(name.endswith("run.json") for name in names) == 4
    # losses.csv: every computed iteration, the unsaved ones too.
    run = sweep.runs.get(sweep_row=1, sweep_column=1)
    LossPoint.objects.bulk_create(LossPoint(run=run, number=n, loss=9.0, content_loss=1.0, style_loss=2.0,
                                            tv_loss=3.0) for n in (0, 1, 2))
    response = owner_client.get(reverse("sweep_download", args=[sweep.id]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    losses = list(csv.DictReader(io.StringIO(archive.read(f"sweep-{sweep.id}/losses.csv").decode())))
    assert len(losses) == 3 * 2 + 3  # the runs without points: their saved iterations
    last = losses[-1]
    assert (last["run"], last["axis:tv_weight"], last["axis:style_weight"]) == (str(run.id), "0.01", "1.0")
    assert (last["iteration"], last["loss"], last["tv_loss"]) == ("2", "9.0", "3.0")


# ---------------------------------------------------------------------------------------------
# The estimate


def test_the_sweep_estimate_is_the_launch_forms_estimate_of_each_run(project):
    from gallery.estimates import estimate_run
    from gallery.views.sweeps import _estimate

    runs = [Run(project=project, rows=rows, start_rows=64, iterations=10) for rows in (64, 128)]
    total, measured = _estimate(runs, 4 / 3)
    assert total == pytest.approx(sum(estimate_run(run, 4 / 3).seconds for run in runs))
    assert not measured  # no worker has measured its speed on this site yet
    assert all(run.estimated_seconds for run in runs)  # kept on each run, for the queue's forecast
    assert runs[1].estimated_seconds > runs[0].estimated_seconds


def test_a_run_of_a_sweep_links_back_to_its_matrix(owner_client, project):
    sweep = make_sweep(project)
    page = owner_client.get(reverse("run_detail", args=[sweep.runs.first().id])).content.decode()
    assert f'href="/sweeps/{sweep.id}/">Sweep {sweep.id}</a>' in page


def test_the_crop_rounds_half_up_as_the_page_does():
    from gallery.crop import full_size, round_half_up, scaled_region

    # 64×48 reference, an 80×60 run: x 2 is 2.5 pixels there; the page's Math.round-like rule gives 3
    # (Python's round gave 2: the page and the PNG differed by a pixel).
    assert scaled_region({"x": 2, "y": 2, "w": 2, "h": 2}, (64, 48), (80, 60)) == (3, 3, 3, 3)
    assert [round_half_up(v) for v in (0.5, 1.5, 2.5, 0.49999999999999994)] == [1, 2, 3, 1]
    # An image much smaller than the reference: the region still starts inside it.
    assert scaled_region({"x": 63, "y": 47, "w": 1, "h": 1}, (64, 48), (16, 12)) == (15, 11, 1, 1)
    # A coarse iteration stands for its full-size picture: 75×50 at 50 of 101 rows is 151.5 → 152 wide.
    assert full_size((75, 50), 50, 101) == (152, 101)
    assert full_size((75, 50), None, 101) == (75, 50)


def test_the_png_crops_a_run_of_another_size_from_the_pixel_the_page_does():
    image = Image.new("RGB", (80, 60))
    image.putpixel((2, 2), (255, 0, 0))
    picture = cell_picture(image, {"x": 2, "y": 2, "w": 2, "h": 2}, (64, 48))
    assert picture.getpixel((0, 0)) == (0, 0, 0)  # the region starts at pixel 3, as on the page


def test_the_matrix_png_crops_coarse_iterations_in_full_size_pixels_as_the_page_does(owner_client, project):
    sweep = make_sweep(project)
    # Iteration 1 of each 96-row run was saved at a coarse 48 rows (64×48): it stands for 128×96.
    Run.objects.filter(sweep=sweep).update(rows=96)
    Iteration.objects.filter(run__sweep=sweep).update(rows=48, width=64)
    figure = open_png(owner_client.get(reverse("sweep_png", args=[sweep.id]) + "?iteration=1&crop=8,6,16,12"))
    # 16×12 full-size pixels are 8×6 of the coarse picture, magnified ×32 (the most).
    assert figure.height == MARGIN + LINE + 6 + 2 * LINE + 2 * (6 * 32 + LINE + GAP) + MARGIN
    assert figure.text["Title"].endswith("crop x 8, y 6, 16x12 px")


@pytest.mark.parametrize("text, most, label", [
    ("Resize (squash)", 20, "Resize"),
    ("Luminance: restyle the brightness only", 20, "Luminance"),
    ("Instant AdaIN picture", 12, "Instant Ada…"),
    ("0.001", 5, "0.001"),
])
def test_long_values_are_named_short_on_the_axis(text, most, label):
    assert _tick_text(text, most) == label


def _heading(png):
    """The figure's heading strip (above the axis names), as pixels."""
    figure = Image.open(io.BytesIO(png)).convert("RGB")
    return figure.crop((0, 0, figure.width, MARGIN + LINE))


def test_the_matrix_pngs_heading_is_never_a_row_of_empty_boxes_nor_cut_off():
    from gallery.matrix_figure import matrix_png

    cells = [[(Image.new("RGB", (64, 48), (200, 100, 50)), "run · it. 4")]]
    axes = dict(axis1="TV weight", axis2="", row_values=["0.01"], column_values=[], cells=cells)
    # A title the bundled font has no glyphs for (Japanese, Arabic) is drawn as the fallback; the
    # PNG's Title text keeps it.
    for title in ("猫の絵 — 東京の午後", "قطة في الحديقة"):
        png = matrix_png(title=f"{title} · sweep 1 · iteration 4", fallback_title="Sweep 1 · iteration 4", **axes)
        assert _heading(png).tobytes() == _heading(matrix_png(title="Sweep 1 · iteration 4", **axes)).tobytes()
        assert Image.open(io.BytesIO(png)).text["Title"] == f"{title} · sweep 1 · iteration 4"
    # A Latin title stays as it is.
    latin = matrix_png(title="Cat · sweep 1", fallback_title="Sweep 1", **axes)
    assert _heading(latin).tobytes() == _heading(matrix_png(title="Cat · sweep 1", **axes)).tobytes()
    # A long one is shortened to the figure's width: its right margin stays paper.
    long = _heading(matrix_png(title="A very long title " * 12 + "· sweep 1", **axes))
    margin = long.crop((long.width - MARGIN, 0, long.width, long.height))
    assert margin.getcolors() == [(margin.width * margin.height, (255, 255, 255))]


def test_a_deleted_runs_cell_in_the_matrix_png_does_not_say_its_image_is_still_to_come():
    """The cell of a run deleted from its sweep: a plain box over "run deleted", not "no image yet"."""
    from gallery.matrix_figure import EMPTY, matrix_png

    png = matrix_png(title="Sweep 1", axis1="TV weight", axis2="", row_values=["0.01"], column_values=[],
                     cells=[[(None, "run deleted", "")]])
    figure = Image.open(io.BytesIO(png)).convert("RGB")
    top = MARGIN + LINE + 6 + 2 * LINE
    box = figure.crop((figure.width - MARGIN - GAP - 160, top, figure.width - MARGIN - GAP, top + 120))
    assert box.getcolors() == [(160 * 120, EMPTY)]
    # A run still to compute keeps its words.
    waiting = matrix_png(title="Sweep 1", axis1="TV weight", axis2="", row_values=["0.01"], column_values=[],
                         cells=[[(None, "0.01_0.3_1 · queued")]])
    cell = (figure.width - MARGIN - GAP - 160, top, figure.width - MARGIN - GAP, top + 120)
    assert len(Image.open(io.BytesIO(waiting)).convert("RGB").crop(cell).getcolors()) > 1  # "no image yet"
