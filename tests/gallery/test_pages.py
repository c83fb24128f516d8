"""The gallery pages: run grid and progress, run download, project table, compare, public gallery.

Runs and iterations are made directly as rows with tiny stored images, so no TensorFlow is needed.
"""
import io
import json
import math
import re
import zipfile
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from gallery.models import LossPoint, Run
from gallery.display import format_duration, format_loss, loss_chart
from tests.factories import add_iteration, create_project, create_run


def html(response):
    return response.content.decode()


# ---------------------------------------------------------------------------------------------
# Formatting and the loss chart


def test_it_formats_losses_like_a_scientist():
    assert format_loss(123456.7) == "1.23e5"
    assert format_loss(0.5) == "0.500"
    assert format_loss(1e-5) == "1.00e-5"
    assert format_loss(None) == "–"
    assert format_loss(math.nan) == "diverged"
    assert format_loss(0.0) == "0"  # the content loss of a run starting from the photo, at iteration 0: not "0.00"


def test_every_loss_has_three_significant_digits_so_3_stands_beside_2_83_as_3_00():
    assert [format_loss(value) for value in (2.83, 2.9996, 100.0, 0.1)] == ["2.83", "3.00", "100", "0.100"]


def test_it_formats_durations_for_people():
    assert format_duration(3.21) == "3.2 s"
    assert format_duration(42) == "42 s"
    assert format_duration(245) == "4 min 05 s"
    assert format_duration(7620) == "2 h 07 min"


def test_the_loss_chart_is_log_scaled_and_skips_what_a_log_scale_cannot_show(db, project):
    run = create_run(project, numbers=(0, 10), content_weight=1, style_weight=1, tv_weight=1)
    add_iteration(run, 20, loss=math.inf)
    iterations = list(run.saved_iterations.order_by("number"))
    chart = loss_chart(run, iterations)
    total = next(series for series in chart["series"] if series["key"] == "total")
    assert len(total["dots"]) == 2  # the infinite loss is left out
    # One tick per decade, from below the smallest loss (content 100/11) to above the largest (1000).
    assert [tick["label"] for tick in chart["y_ticks"]] == ["1", "10", "100", "1000"]
    # Log scale: 1000 → 90.9 falls about one decade, a third of the plot's height.
    first, second = total["dots"]
    decade = chart["y_ticks"][0]["y"] - chart["y_ticks"][1]["y"]
    assert second["y"] - first["y"] == pytest.approx(decade * math.log10(11), abs=0.2)
    assert loss_chart(run, []) is None


def test_the_chart_draws_the_weighted_parts_that_add_up_to_the_total(db, project):
    run = create_run(project, numbers=(), content_weight=2.0, style_weight=0.5, tv_weight=0.01)
    add_iteration(run, 0, loss=2 * 100.0 + 0.5 * 800.0 + 0.01 * 5.0)
    chart = loss_chart(run, list(run.saved_iterations.all()))
    assert chart["table"] == [{"number": 0, "values": ["600", "200", "400", "0.0500"]}]
    assert [series["name"] for series in chart["series"]] == [
        "Total", "Content × weight", "Style × weight", "Total variation × weight"
    ]


def add_points(run, numbers, loss=lambda n: 1000 / (n + 1)):
    LossPoint.objects.bulk_create(
        LossPoint(run=run, number=n, loss=loss(n), content_loss=1.0, style_loss=2.0, tv_loss=3.0) for n in numbers)
    return list(run.loss_points.all())


def test_the_curves_go_through_every_computed_iteration_and_the_dots_mark_the_saved_ones(db, project):
    run = create_run(project, numbers=(0, 10), iterations=20, status=Run.Status.RUNNING)
    points = add_points(run, range(0, 14))
    chart = loss_chart(run, list(run.saved_iterations.all()), points)
    total = next(series for series in chart["series"] if series["key"] == "total")
    assert len(total["polyline"].split()) == 14
    # The dots and the table: the saved iterations and the latest computed, 13.
    assert [dot["title"] for dot in total["dots"]] == [
        "Total at iteration 0: 1.00e3", "Total at iteration 10: 90.9", "Total at iteration 13: 71.4"]
    assert [row["number"] for row in chart["table"]] == [0, 10, 13]
    assert total["last"] == "71.4"
    # A run from before loss points were kept draws its saved iterations only.
    assert len(loss_chart(run, list(run.saved_iterations.all()))["series"][0]["polyline"].split()) == 2


def test_a_long_runs_curves_are_thinned_to_a_few_hundred_points_keeping_the_saved_ones(db, project):
    from gallery.display import CHART_MOST_POINTS

    run = create_run(project, numbers=(0, 10, 4990, 5000), iterations=5000)
    points = add_points(run, range(0, 5001))
    total = loss_chart(run, list(run.saved_iterations.all()), points)["series"][0]
    xs = [float(point.split(",")[0]) for point in total["polyline"].split()]
    assert CHART_MOST_POINTS / 2 < len(xs) <= CHART_MOST_POINTS + 4
    assert xs == sorted(xs) and len(total["dots"]) == 4


def test_the_run_page_draws_every_iteration_computed_so_far(owner_client, project):
    run = create_run(project, numbers=(0,), iterations=20, status=Run.Status.RUNNING)
    add_points(run, range(0, 6))
    fragment = html(live_fragment(owner_client, run, after=0))
    assert fragment.count('<circle') == 4 * 2  # iteration 0 and the latest, 5, on four curves
    assert "Total at iteration 5: 167" in fragment


# ---------------------------------------------------------------------------------------------
# Run page


def test_the_run_page_shows_style_base_then_iterations_in_numeric_order(owner_client, project):
    run = create_run(project, numbers=(0, 1, 2, 10))
    page = html(owner_client.get(reverse("run_detail", args=[run.id])))
    style, base = page.index("output_at_iteration_0_style"), page.index("output_at_iteration_0_base")
    positions = [page.index(f'data-number="{n}"') for n in (0, 1, 2, 10)]
    assert style < base < positions[0] < positions[1] < positions[2] < positions[3]


def test_each_iteration_is_captioned_with_number_loss_and_time(owner_client, project):
    run = create_run(project, numbers=(0, 2))
    page = html(owner_client.get(reverse("run_detail", args=[run.id])))
    assert "Iteration 2 · loss 333 · 3.0 s" in page


def test_the_grid_shows_lazy_thumbnails_that_open_the_full_image(owner_client, project):
    run = create_run(project, numbers=(0, 1))
    page = html(owner_client.get(reverse("run_detail", args=[run.id])))
    thumb = reverse("iteration_thumbnail", args=[run.id, 1])
    full = reverse("iteration_image", args=[run.id, 1])
    assert f'<img src="{thumb}" alt="Run {run.label}, iteration 1, loss 500" loading="lazy">' in page
    assert f'class="grid-link" href="{full}"' in page
    assert f"{full}?download=1" in page
    assert 'id="lightbox"' in page and "lightbox.js" in page
    assert 'id="grid-columns"' in page


def test_the_run_page_draws_four_loss_curves(owner_client, project):
    run = create_run(project, numbers=(0, 1, 2))
    page = html(owner_client.get(reverse("run_detail", args=[run.id])))
    for key in ("total", "content", "style", "tv"):
        assert f'data-series="{key}"' in page
    assert page.count("<polyline") == 4


def test_the_loss_chart_offers_its_values_as_a_table(owner_client, project):
    run = create_run(project, numbers=(0, 1))
    page = html(owner_client.get(reverse("run_detail", args=[run.id])))
    assert "<summary>Show the values as a table</summary>" in page
    assert '<tr><th scope="row">1</th><td class="mono">500</td>' in page


def live_fragment(client, run, after):
    return client.get(reverse("run_detail", args=[run.id]), {"fragment": "live", "after": after})


def test_an_active_run_page_polls_for_server_rendered_parts(owner_client, project):
    run = create_run(project, numbers=(0, 10), status=Run.Status.RUNNING, iterations=40)
    page = html(owner_client.get(reverse("run_detail", args=[run.id])))
    live = reverse("run_detail", args=[run.id]) + "?fragment=live&amp;after=10"
    assert f'id="live-poller" data-live-part hidden data-live-url="{live}"' in page
    assert "Iteration 10 of 40" in page
    assert "45 s" in page  # 30 iterations left at 1.5 s each
    assert '<progress class="progress progress-active" max="40" value="10"' in page
    assert "live.js" in page and "run.js" in page
    assert "<template" not in page  # no client-side copy of the figure's markup


def test_the_live_fragment_holds_only_the_new_iterations_rendered_like_the_first_load(owner_client, project):
    run = create_run(project, numbers=(0, 1, 2), status=Run.Status.RUNNING, iterations=10)
    response = live_fragment(owner_client, run, 1)
    fragment = html(response)
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert 'data-number="2"' in fragment and 'data-number="1"' not in fragment
    assert '<div id="iteration-grid" data-live-part="append">' in fragment
    assert "Iteration 2 · loss 333 · 3.0 s" in fragment
    full = html(owner_client.get(reverse("run_detail", args=[run.id])))
    figure = re.search(r'<figure class="grid-item" data-number="2">.*?</figure>', fragment, re.S).group(0)
    assert figure in full
    assert 'id="loss-chart" data-live-part' in fragment and 'id="run-status"' in fragment
    assert "after=2" in fragment  # the next poll asks for what comes after iteration 2


def test_the_live_fragment_of_a_finished_run_stops_the_polling(owner_client, project):
    run = create_run(project)
    page = html(owner_client.get(reverse("run_detail", args=[run.id])))
    assert '<div id="live-poller" data-live-part hidden></div>' in page
    assert '<div id="live-poller" data-live-part hidden></div>' in html(live_fragment(owner_client, run, 3))
    assert "Done: 3 iterations, final loss 250." in page


def test_a_bad_after_in_the_live_fragment_is_a_clear_400(owner_client, project):
    run = create_run(project)
    response = live_fragment(owner_client, run, "x")
    assert response.status_code == 400


def test_the_run_page_shows_the_runs_current_state_only(owner_client, project):
    run = create_run(project, numbers=(0,), status=Run.Status.RUNNING, iterations=10)
    run.cancel_requested = True
    run.save()
    assert "Cancelling: the run stops" in html(live_fragment(owner_client, run, 0))
    Run.objects.filter(id=run.id).update(status=Run.Status.CANCELLED)
    fragment = html(live_fragment(owner_client, run, 0))
    assert "Cancelling" not in fragment and "This run was cancelled at iteration 0" in fragment
    assert "Cancel run" not in fragment


def test_a_run_cancelled_while_queued_says_it_never_started(owner_client, project):
    run = create_run(project, numbers=(), status=Run.Status.CANCELLED, iterations=10)
    page = html(owner_client.get(reverse("run_detail", args=[run.id])))
    assert "This run was cancelled before it started, so it has no iterations." in page
    assert "cancelled at iteration" not in page and "Continue from" not in page


def test_a_run_with_only_its_start_saved_offers_no_continue_from_iteration_0(owner_client, project):
    """Iteration 0 is the start picture (the photo, or the picture a continued run began from): "Continue
    from iteration 0" at the top of a run that has just started would only launch the same run again.
    Its grid still offers to continue from it."""
    run = create_run(project, numbers=(0,), status=Run.Status.RUNNING, iterations=10, save_every=5)
    page = html(owner_client.get(reverse("run_detail", args=[run.id])))
    assert "data-continue-latest" not in page and "Continue from iteration 0" not in page
    assert "Continue from here" in page
    add_iteration(run, 5)
    assert "Continue from iteration 5" in html(owner_client.get(reverse("run_detail", args=[run.id])))


def test_a_cancelled_run_says_which_iteration_it_reached_and_kept(owner_client, project):
    run = create_run(project, numbers=(0, 3), status=Run.Status.CANCELLED, iterations=10, save_every=10)
    page = html(owner_client.get(reverse("run_detail", args=[run.id])))
    assert "This run was cancelled at iteration 3. Its saved iterations are kept, iteration 3 included." in page
    assert "Continue from iteration 3" in page
    # Its worker had computed iteration 5 when it stopped (gone, or shut down); then it was cancelled.
    Run.objects.filter(id=run.id).update(iterations_done=5)
    page = html(owner_client.get(reverse("run_detail", args=[run.id])))
    assert "This run was cancelled at iteration 5. Its saved iterations are kept, up to iteration 3." in page


def test_the_owner_can_cancel_continue_and_download(owner_client, project):
    run = create_run(project, numbers=(0, 5), status=Run.Status.RUNNING, iterations=10)
    page = html(owner_client.get(reverse("run_detail", args=[run.id])))
    assert reverse("run_cancel", args=[run.id]) in page
    launch = reverse("run_create", args=[project.id])
    assert f"{launch}?from_run={run.id}&amp;from_iteration=5" in page
    assert f"{launch}?from_run={run.id}&amp;from_iteration=0" in page
    assert reverse("run_download", args=[run.id]) in page


def test_others_see_a_public_run_read_only(other_client, public_project):
    run = create_run(public_project, status=Run.Status.RUNNING, iterations=10)
    response = other_client.get(reverse("run_detail", args=[run.id]))
    page = html(response)
    assert response.status_code == 200
    assert "read-only" in page
    assert reverse("run_cancel", args=[run.id]) not in page
    assert "from_iteration" not in page
    assert "Continue from" not in page
    assert reverse("run_download", args=[run.id]) in page


def test_it_hides_other_users_runs(other_client, project):
    run = create_run(project)
    assert other_client.get(reverse("run_detail", args=[run.id])).status_code == 404
    assert other_client.get(reverse("run_detail", args=[run.id]), {"fragment": "chart"}).status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(anonymous_client, project):
    run = create_run(project)
    response = anonymous_client.get(reverse("run_detail", args=[run.id]))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_a_failed_run_says_why(owner_client, project):
    run = create_run(project, numbers=(0,), status=Run.Status.FAILED, error="Out of memory")
    assert "Out of memory" in html(owner_client.get(reverse("run_detail", args=[run.id])))


def test_a_run_with_fifty_iterations_renders_in_a_fixed_number_of_queries(
    owner_client, project, django_assert_max_num_queries
):
    run = create_run(project, numbers=tuple(range(0, 51)), iterations=50)
    with django_assert_max_num_queries(8):
        page = html(owner_client.get(reverse("run_detail", args=[run.id])))
    # Grids show thumbnails only; full PNGs are links.
    assert page.count('loading="lazy"') >= 51
    assert f'src="{reverse("iteration_image", args=[run.id, 50])}"' not in page


# ---------------------------------------------------------------------------------------------
# Run download


def test_the_run_download_is_a_zip_named_like_the_notebook(owner_client, project):
    run = create_run(project, numbers=(0, 1, 2), tv_weight=0.1, style_weight=1000, content_weight=1)
    response = owner_client.get(reverse("run_download", args=[run.id]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert "output_0.1_1000_1_48px.zip" in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    folder = "output_0.1_1000_1_48px/"
    assert sorted(archive.namelist()) == sorted(
        folder + name
        for name in (
            "output_at_iteration_0_style.png",
            "output_at_iteration_0_base.png",
            "output_at_iteration_0.png",
            "output_at_iteration_1.png",
            "output_at_iteration_2.png",
            "run.json",
        )
    )
    assert archive.testzip() is None
    image = Image.open(io.BytesIO(archive.read(folder + "output_at_iteration_2.png")))
    assert image.size == (64, 48)
    record = json.loads(archive.read(folder + "run.json"))
    assert record["settings"]["tv_weight"] == 0.1
    assert record["settings"]["style_weight"] == 1000
    assert [it["number"] for it in record["saved_iterations"]] == [0, 1, 2]
    assert record["saved_iterations"][2]["loss"] == pytest.approx(1000 / 3)
    assert record["saved_iterations"][2]["file"] == "output_at_iteration_2.png"
    # Every computed iteration's losses (this run's saved iterations: it has no loss points).
    assert [row["iteration"] for row in record["losses"]] == [0, 1, 2]


def test_run_json_has_the_losses_of_every_computed_iteration(owner_client, project):
    run = create_run(project, numbers=(0, 4), iterations=4)
    add_points(run, range(0, 5))
    response = owner_client.get(reverse("run_download", args=[run.id]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    record = json.loads(archive.read(f"output_{run.label}/run.json"))
    assert [row["iteration"] for row in record["losses"]] == [0, 1, 2, 3, 4]
    assert record["losses"][3] == {"iteration": 3, "loss": 250.0, "content_loss": 1.0, "style_loss": 2.0,
                                   "tv_loss": 3.0}


def test_a_diverged_loss_is_null_in_run_json(owner_client, project):
    run = create_run(project, numbers=(0,))
    add_iteration(run, 1, loss=math.inf)
    response = owner_client.get(reverse("run_download", args=[run.id]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    record = json.loads(archive.read(f"output_{run.label}/run.json"))
    assert record["saved_iterations"][1]["loss"] is None


def test_others_cannot_download_a_private_run_but_can_download_a_public_one(other_client, project, public_project):
    assert other_client.get(reverse("run_download", args=[create_run(project).id])).status_code == 404
    assert other_client.get(reverse("run_download", args=[create_run(public_project).id])).status_code == 200


# ---------------------------------------------------------------------------------------------
# Project page


def test_the_project_page_tables_its_runs_with_latest_thumbnails(owner_client, project):
    run = create_run(
        project, numbers=(0, 1, 7), tv_weight=1, style_weight=1000, content_weight=1, optimizer="adam", iterations=7
    )
    fresh = create_run(project, numbers=(), status=Run.Status.QUEUED, iterations=5)
    page = html(owner_client.get(reverse("project_detail", args=[project.id])))
    assert 'id="runs-table"' in page
    assert "1_1000_1_48px_adam" in page
    assert reverse("iteration_thumbnail", args=[run.id, 7]) in page
    assert "7 / 7" in page and "0 / 5" in page
    assert "Adam" in page and "Queued" in page and "Done" in page
    assert "125" in page  # final loss 1000/8
    assert f'name="runs" value="{run.id}"' in page and f'name="runs" value="{fresh.id}"' in page
    assert reverse("run_create", args=[project.id]) in page
    assert 'data-sort="number"' in page


def test_the_project_page_does_not_load_iterations_per_run(owner_client, project, django_assert_max_num_queries):
    for tv in (0.1, 1, 10, 100):
        create_run(project, numbers=tuple(range(0, 12)), tv_weight=tv)
    # Session, user, project, runs with their latest numbers, sweeps, style images, and the owner's
    # preview and preview lane: none of them per run.
    with django_assert_max_num_queries(10):
        response = owner_client.get(reverse("project_detail", args=[project.id]))
    assert response.status_code == 200


def test_the_run_and_project_pages_say_how_to_read_a_runs_name(owner_client, project):
    run = create_run(project, tv_weight=0.01, rows=96)
    key = "A run's name is the notebook's folder name: TV weight_style weight_content weight"
    assert key in html(owner_client.get(reverse("run_detail", args=[run.id])))
    assert key in html(owner_client.get(reverse("project_detail", args=[project.id])))


def test_others_see_a_public_project_without_launch_or_edit(other_client, public_project):
    create_run(public_project)
    page = html(other_client.get(reverse("project_detail", args=[public_project.id])))
    assert "read-only" in page
    assert reverse("run_create", args=[public_project.id]) not in page
    assert reverse("project_edit", args=[public_project.id]) not in page


def test_the_project_page_hides_other_users_projects(other_client, project):
    assert other_client.get(reverse("project_detail", args=[project.id])).status_code == 404


def test_a_page_that_is_gone_says_so_in_the_sites_words_even_with_debug_on(owner_client, project, settings):
    """`make run` runs with DEBUG on: Back after deleting a project, or an old link, must not show
    Django's technical page (the URL patterns, "DEBUG = True") but the site's own 404."""
    settings.DEBUG = True
    url = reverse("project_delete", args=[project.id])
    project.delete()
    response = owner_client.get(url)
    assert response.status_code == 404
    page = response.content.decode()
    assert "There is nothing here, or it is not yours to see." in page
    assert "URLconf" not in page and "DEBUG" not in page


# ---------------------------------------------------------------------------------------------
# Compare page


def compare_url(*runs, **params):
    query = "&".join([f"runs={','.join(str(run.id) for run in runs)}"] + [f"{k}={v}" for k, v in params.items()])
    return f"{reverse('compare')}?{query}"


def test_it_compares_runs_side_by_side_and_highlights_what_differs(owner_client, project):
    low = create_run(project, tv_weight=0.1)
    high = create_run(project, tv_weight=1)
    response = owner_client.get(compare_url(low, high))
    page = html(response)
    assert response.status_code == 200
    assert page.count('class="card compare-column"') == 2
    assert low.label in page and high.label in page
    assert '<mark class="differs-mark">TV weight</mark>' in page
    differs = '<div class="differs"><dt><span class="differs-sign" aria-hidden="true">≠ </span>TV weight'
    assert page.count(differs) == 2
    assert "<dt>Style weight</dt>" in page and "≠ </span>Style weight" not in page
    assert "compare.js" in page


def test_it_shows_each_runs_last_iteration_by_default_and_one_chosen_iteration_on_request(owner_client, project):
    short = create_run(project, numbers=(0, 1, 2))
    long = create_run(project, numbers=(0, 2, 4))
    page = html(owner_client.get(compare_url(short, long)))
    assert f'src="{reverse("iteration_image", args=[short.id, 2])}"' in page
    assert f'src="{reverse("iteration_image", args=[long.id, 4])}"' in page
    response = owner_client.get(compare_url(short, long, iteration=1))
    page = html(response)
    assert f'src="{reverse("iteration_image", args=[short.id, 1])}"' in page
    # The long run saved no iteration 1: it shows its latest before it.
    assert f'src="{reverse("iteration_image", args=[long.id, 0])}"' in page
    assert 'data-numbers="0,1,2,4" value="1"' in page  # the slider sits on index 1 (iteration 1)
    assert 'aria-valuetext="iteration 1 of 4"' in page
    assert "Iteration 0 (its latest before 1)" in page


def test_it_charts_each_loss_before_its_weight_one_line_per_run_with_the_latest_values_as_a_table(
    owner_client, project
):
    light = create_run(project, numbers=(0, 4), iterations=4, style_weight=0.1)
    heavy = create_run(project, numbers=(0, 2), iterations=6, style_weight=10, status=Run.Status.RUNNING)
    add_points(light, range(0, 5))
    add_points(heavy, range(0, 4), loss=lambda n: 5000 / (n + 1))
    page = html(owner_client.get(compare_url(light, heavy)))
    section = page[page.index('id="compare-losses"'):]
    assert section.count("<svg viewBox") == 3 and section.count('<svg class="swatch"') == 2  # charts; legend
    for name in ("Content loss", "Style loss", "Total variation"):
        assert f"<strong>{name}</strong>" in section
    # One line per run, through every computed iteration, in launch order, on every chart.
    assert section.count('data-series="run-1"') == 3 and section.count('data-series="run-2"') == 3
    first_line = section[section.index('data-series="run-1"'):]
    assert len(first_line[first_line.index('points="') + 8:].split('"')[0].split()) == 5
    # Unweighted: the style losses are the points' 2.0, whatever each run's style weight.
    assert f"{light.label} at iteration 4: 2.00" in section and f"{heavy.label} at iteration 3: 2.00" in section
    # The table: each run's latest computed iteration.
    assert '<td>4</td><td class="mono">1.00</td><td class="mono">2.00</td><td class="mono">3.00</td>' in section
    assert '<td>3</td><td class="mono">1.00</td>' in section
    # The live fragment carries the section, so a running run's lines grow.
    fragment = html(owner_client.get(compare_url(light, heavy, fragment="live")))
    assert 'id="compare-losses" data-live-part' in fragment


def setting_section(client, *runs, **params):
    """The compare page's losses against the settings that differ, or "" when it has none."""
    page = html(client.get(compare_url(*runs, **params)))
    if 'id="setting-losses"' not in page:
        return ""
    return page[page.index('id="setting-losses"'):page.index('id="compare-losses"')]


def test_three_or_more_runs_that_differ_in_one_setting_get_their_losses_charted_against_it(owner_client, project):
    # Launched out of order: the axis runs from the lowest weight up, on a log scale.
    runs = [create_run(project, style_weight=weight) for weight in (1.0, 0.01, 0.1)]
    for run in runs:  # a style loss that says which run it is
        run.saved_iterations.update(style_loss=100 * run.style_weight)
    section = setting_section(owner_client, *runs)
    assert "Losses against Style weight" in section and "at each run’s last iteration" in section
    assert "at the iteration the slider shows" in section and "against the settings that differ" in section
    assert section.count("<svg viewBox") == 3 and section.count('data-series="run-1"') == 3  # one line a chart
    ticks = re.findall(r'chart-tick-x" x="([\d.]+)" y="\d+">([^<]+)<', section)
    assert [label for _x, label in ticks] == ["0.01", "0.1", "1"] * 3 and "Style weight (log scale)" in section
    xs = [float(x) for x, _label in ticks[:3]]
    assert xs[1] - xs[0] == pytest.approx(xs[2] - xs[1], abs=0.2)
    assert "Style weight 0.1: 10.0" in section and "Style weight 1: 100" in section  # each dot: its run's loss
    table = section[section.index("<table"):]
    assert table.count("<tr>") == 4 and '<td>0.01</td><td>3</td><td class="mono">25.0</td>' in table
    assert "different iterations" not in section
    # The slider's iteration; the live fragment carries the section.
    assert "at iteration 1 of 3" in setting_section(owner_client, *runs, iteration=1)
    # A run that ended sooner (L-BFGS converged) is not behind; one that has not got as far yet is said to
    # be, on the page and on its dot.
    runs[0].saved_iterations.filter(number=3).delete()
    Run.objects.filter(id=runs[0].id).update(iterations_done=2, converged=True)
    assert "different iterations" not in setting_section(owner_client, *runs)
    Run.objects.filter(id=runs[0].id).update(status=Run.Status.RUNNING, converged=False)
    section = html_text(setting_section(owner_client, *runs))
    assert "The runs are at different iterations (2 to 3)" in section and "Style weight 1, iteration 2: 100" in section
    fragment = html(owner_client.get(compare_url(*runs, fragment="live")))
    assert 'id="setting-losses" data-live-part' in fragment


def test_runs_that_differ_in_two_settings_get_one_line_per_value_of_the_one_with_fewer(owner_client, project):
    runs = [create_run(project, tv_weight=tv, style_weight=style, pooling=pooling)
            for tv, style, pooling in ((0.01, 0.1, "max"), (0.1, 1.0, "max"), (1.0, 10.0, "average"))]
    assert setting_section(owner_client, *runs) == ""  # three settings differ
    runs = [create_run(project, tv_weight=tv, style_weight=style)
            for tv in (0.01, 0.1) for style in (0.1, 1.0, 10.0)]
    section = setting_section(owner_client, *runs)
    assert "Losses against Style weight, by TV weight" in section
    assert section.count('data-series="run-') == 6 and "TV weight: 0.1<" in section  # 2 lines a chart; the legend
    pooled = [create_run(project, pooling=pooling, style_weight=style)
              for pooling in ("max", "average") for style in (0.1, 1.0)]
    section = setting_section(owner_client, *pooled)
    assert "Losses against Pooling, by Style weight" in section or "Losses against Style weight, by Pooling" in section
    assert "Pooling changes what the losses measure" in html_text(section)


def html_text(markup):
    return re.sub(r"<[^>]+>", "", markup)


@pytest.mark.parametrize("case", ["two runs", "a setting no sweep varies", "the same settings twice",
                                  "other pictures", "a setting that applies to some runs"])
def test_runs_that_cannot_be_read_against_one_setting_get_no_such_chart(owner_client, project, case):
    runs = [create_run(project, style_weight=weight) for weight in (0.1, 1.0, 10.0)]
    if case == "two runs":
        runs = runs[:2]
    elif case == "a setting no sweep varies":
        runs = [create_run(project, numbers=(0, 1, 2, n)) for n in (3, 4, 5)]  # their iterations differ
    elif case == "the same settings twice":
        runs.append(create_run(project, style_weight=0.1))
    elif case == "other pictures":
        Run.objects.filter(id=runs[0].id).update(content_source="runs/another.png")
    else:
        runs = [create_run(project, init="adain", adain_alpha=alpha) for alpha in (0.2, 0.5)]
        runs.append(create_run(project, init="content"))
    page = html(owner_client.get(compare_url(*runs)))
    assert 'id="compare-losses"' in page and 'id="setting-losses"' not in page


def test_runs_that_have_computed_nothing_yet_say_where_their_losses_will_appear(owner_client, project):
    a = create_run(project, numbers=(), status=Run.Status.QUEUED)
    b = create_run(project, numbers=(), status=Run.Status.QUEUED, tv_weight=2)
    page = html(owner_client.get(compare_url(a, b)))
    assert "The runs' losses appear here once they have computed their first iteration." in page


def test_it_lists_runs_in_launch_order_whatever_the_order_ticked(owner_client, project):
    first, second = create_run(project, tv_weight=0.1), create_run(project, tv_weight=1)
    page = html(owner_client.get(compare_url(second, first)))
    assert page.index(f'data-run-id="{first.id}"') < page.index(f'data-run-id="{second.id}"')


def test_the_compare_page_polls_while_a_run_computes_and_renders_its_parts_on_the_server(owner_client, project):
    done = create_run(project, numbers=(0, 1))
    running = create_run(project, numbers=(0,), status=Run.Status.RUNNING, iterations=5, tv_weight=1)
    page = html(owner_client.get(compare_url(done, running)))
    assert 'id="live-poller" data-live-part hidden data-live-url="' in page
    add_iteration(running, 1)
    fragment = html(owner_client.get(compare_url(done, running, fragment="live")))
    assert f'src="{reverse("iteration_image", args=[running.id, 1])}"' in fragment
    assert f'id="compare-caption-{running.id}"' in fragment
    Run.objects.filter(id=running.id).update(status=Run.Status.DONE)
    assert "data-live-url" not in html(owner_client.get(compare_url(done, running)))


def test_the_crop_region_is_read_from_the_address(owner_client, project):
    a, b = create_run(project), create_run(project, tv_weight=1)
    response = owner_client.get(compare_url(a, b, crop="10,12,20,16"))
    assert 'name="w" min="1" step="1" value="20"' in html(response)
    assert 'name="w" min="1" step="1" value=""' in html(owner_client.get(compare_url(a, b, crop="nonsense")))


def test_it_accepts_runs_ticked_in_the_project_table(owner_client, project):
    a, b = create_run(project), create_run(project, tv_weight=1)
    response = owner_client.get(reverse("compare"), {"runs": [a.id, b.id]})
    assert response.status_code == 200
    assert html(response).count('class="card compare-column"') == 2


@pytest.mark.parametrize(
    "runs, message",
    [
        ("", "at least 2 runs"),
        ("ONE", "at least 2 runs"),
        ("7,x", "“x” is not a run number"),
        ("ALL7", "at most 6 runs"),
    ],
)
def test_it_explains_why_runs_cannot_be_compared(owner_client, project, runs, message):
    made = [create_run(project, numbers=(0,), tv_weight=w) for w in range(1, 8)]
    runs = {"ONE": str(made[0].id), "ALL7": ",".join(str(run.id) for run in made)}.get(runs, runs)
    response = owner_client.get(reverse("compare"), {"runs": runs})
    assert response.status_code == 400
    assert message in html(response)


def test_others_private_runs_cannot_be_compared(other_client, project, public_project, other):
    mine = create_run(create_project(other, "Bob's"))
    theirs = create_run(project)
    public = create_run(public_project)
    assert other_client.get(compare_url(mine, theirs)).status_code == 404
    assert other_client.get(compare_url(mine, public)).status_code == 200


def test_runs_of_different_projects_are_labelled_with_their_project(owner_client, project, owner):
    a = create_run(project)
    b = create_run(create_project(owner, "Second"))
    page = html(owner_client.get(compare_url(a, b)))
    assert '<mark class="differs-mark">Project</mark>' in page
    assert "<dd>Second</dd>" in page


def test_runs_without_saved_iterations_can_still_be_compared(owner_client, project):
    a = create_run(project, numbers=(), status=Run.Status.QUEUED)
    b = create_run(project, numbers=(), status=Run.Status.QUEUED, tv_weight=2)
    response = owner_client.get(compare_url(a, b))
    assert response.status_code == 200
    assert "No saved iteration" in html(response)


def test_the_compare_page_needs_a_login(anonymous_client, project):
    a, b = create_run(project), create_run(project)
    assert anonymous_client.get(compare_url(a, b)).status_code == 302


# ---------------------------------------------------------------------------------------------
# Public gallery


def test_the_public_gallery_shows_the_run_that_finished_last_by_default(other_client, public_project, project):
    # Not the lowest loss: runs with other weights have losses on other scales.
    best = create_run(public_project, numbers=(0, 3))
    blurry = create_run(public_project, numbers=(0, 3))
    Run.objects.filter(id=blurry.id).update(loss=100.0, finished=timezone.now() - timedelta(hours=1))
    Run.objects.filter(id=best.id).update(loss=900.0, finished=timezone.now())
    create_run(public_project, numbers=(0, 1, 2), status=Run.Status.RUNNING)
    create_run(project)  # private: not in the gallery
    page = html(other_client.get(reverse("public_gallery")))
    assert public_project.title in page
    assert project.title not in page
    assert reverse("iteration_thumbnail", args=[best.id, 3]) in page
    assert reverse("iteration_thumbnail", args=[blurry.id, 3]) not in page


def test_my_projects_show_the_picture_of_their_run_that_finished_last(owner_client, owner, project):
    done = create_run(project, numbers=(0, 3))
    create_run(project, numbers=(0, 1), status=Run.Status.RUNNING)
    bare = create_project(owner, title="Nothing run yet")
    page = html(owner_client.get(reverse("project_list")))
    assert reverse("iteration_thumbnail", args=[done.id, 3]) in page
    assert f"{project.title}: iteration 3 of the run that shows it" in page
    assert f'alt="Content image of {bare.title}"' in page  # no run: the two pictures, each described
    assert "no finished run yet" not in page  # the gallery's note, not the owner's


def test_the_public_gallery_shows_the_cover_run_its_owner_chose(owner_client, other_client, public_project):
    chosen = create_run(public_project, numbers=(0, 2))
    better = create_run(public_project, numbers=(0, 3))
    Run.objects.filter(id=chosen.id).update(loss=900.0)
    Run.objects.filter(id=better.id).update(loss=100.0)
    response = owner_client.post(
        reverse("project_edit", args=[public_project.id]),
        {"title": public_project.title, "is_public": "on", "cover_run": chosen.id},
    )
    assert response.status_code == 302
    page = html(other_client.get(reverse("public_gallery")))
    assert reverse("iteration_thumbnail", args=[chosen.id, 2]) in page


def test_only_a_finished_run_of_the_project_can_be_its_cover(owner_client, public_project, project):
    running = create_run(public_project, numbers=(0,), status=Run.Status.RUNNING)
    elsewhere = create_run(project)
    for run in (running, elsewhere):
        response = owner_client.post(
            reverse("project_edit", args=[public_project.id]),
            {"title": public_project.title, "is_public": "on", "cover_run": run.id},
        )
        assert response.status_code == 200
        assert "Select a valid choice" in html(response)


def test_a_public_project_without_finished_runs_shows_its_images(other_client, public_project):
    create_run(public_project, numbers=(0,), status=Run.Status.RUNNING)
    page = html(other_client.get(reverse("public_gallery")))
    assert reverse("project_media", args=[public_project.id, "content-thumb"]) in page
    assert "no finished run yet" in page


# ---------------------------------------------------------------------------------------------
# Theme and queries


def test_the_chosen_theme_is_remembered_and_drawn_from_the_first_paint(client, owner_client):
    response = client.post(reverse("set_theme"), {"theme": "dark", "next": "/accounts/login/"})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert response.cookies["theme"].value == "dark"
    assert '<html lang="en" data-theme="dark">' in html(client.get("/accounts/login/"))
    client.post(reverse("set_theme"), {"theme": "system"})
    assert '<html lang="en">' in html(client.get("/accounts/login/"))


def test_the_theme_switch_sends_nobody_to_another_site(client):
    response = client.post(reverse("set_theme"), {"theme": "light", "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_a_runs_iterations_are_ordered_by_number_without_a_join(db, project):
    run = create_run(project, numbers=(2, 0, 1))
    query = str(run.saved_iterations.all().query)
    assert "JOIN" not in query and "ORDER BY" in query
    assert [it.number for it in run.saved_iterations.all()] == [0, 1, 2]
