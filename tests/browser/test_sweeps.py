"""A 2 × 2 sweep in a real browser on a real worker: launch it, watch the matrix fill in without a
reload, move the slider, drag a crop and see four zoomed crops, download the matrix as a PNG."""
import re

import pytest
from PIL import Image
from playwright.sync_api import expect

from gallery.models import Run, Sweep
from tests.browser.helpers import SCREENSHOTS, log_in
from tests.factories import create_project, make_image
from tests.workers import start_worker, stop_worker, wait_until, worker_env_for_test_db

pytestmark = [pytest.mark.browser, pytest.mark.worker]

ITERATIONS = 1  # iterations 0 and 1: enough for the slider; four runs on one worker on a busy machine


@pytest.mark.timeout(1800)

def test_a_user_launches_a_2x2_sweep_and_reads_it_as_a_matrix(page, live_server, settings, tmp_path, owner,
                                                              screenshot):
    worker_log = tmp_path / "worker.log"
    worker = start_worker(worker_env_for_test_db(settings.MEDIA_ROOT), worker_log)
    try:
        project = create_project(owner, content=make_image(96, 72, seed=3), style=make_image(80, 80, seed=4))
        base = live_server.url
        log_in(page, base, owner)
        page.goto(f"{base}/projects/{project.id}/")
        page.click("a:has-text('New sweep')")
        page.select_option("#id_axis1-setting", "tv_weight")
        page.fill("#id_axis1-values", "0.0001, 0.01")
        page.select_option("#id_axis2-setting", "style_weight")
        page.fill("#id_axis2-values", "0.1 1")
        page.fill("#id_rows", "64")
        page.fill("#id_iterations", str(ITERATIONS))
        page.fill("#id_save_every", "1")
        page.fill("#id_start_rows", "64")  # one size: no coarse scales to compute
        page.select_option("#id_init", "content")
        page.click("[data-sweep-preview-button]")
        expect(page.locator("[data-sweep-count]")).to_have_text("4 runs (2 × 2)")
        screenshot(page, "sweep-form")
        page.click("[data-sweep-launch]")
        expect(page).to_have_url(re.compile(r"/sweeps/\d+/$"))
        sweep = Sweep.objects.get()

        # The matrix fills in while the worker computes, without a reload.
        page.evaluate("window.__notReloaded = true")
        cells = page.locator("td.compare-column")
        expect(cells).to_have_count(4)
        page.wait_for_function("() => document.querySelectorAll('[data-compare-image]').length >= 1",
                               timeout=400_000)
        screenshot(page, "sweep-filling")
        wait_until(lambda: not sweep.runs.filter(status__in=Run.ACTIVE).exists(), timeout=1500, worker=worker,
                   log_path=worker_log)
        expect(page.locator("td.compare-column .status")).to_have_text(["Done"] * 4, timeout=30_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-compare-image]')].filter(i => i.complete && i.naturalWidth > 0)"
            ".length === 4"
        )
        assert page.evaluate("window.__notReloaded") is True
        expect(page.locator(f"#sweep-progress-{sweep.id} [data-sweep-progress-text]")).to_have_text("4 of 4 runs done")
        expect(page.locator("[data-sweep-cancel]")).to_have_count(0)

        # The losses against the swept values: TV weight across, a line per style weight, a dot per run.
        swept = page.locator("#sweep-losses")
        expect(swept.locator("h2")).to_contain_text("Losses against TV weight, by Style weight")
        expect(swept.locator("svg[role=img]")).to_have_count(3)
        expect(swept.locator("svg[role=img]").first.locator("circle")).to_have_count(4)
        swept.scroll_into_view_if_needed()
        screenshot(page, "sweep-losses")

        # One slider for every cell, and for the losses against the swept values.
        page.locator("#iteration-slider").fill("1")
        expect(page).to_have_url(re.compile(r"\?iteration=1$"))
        for run in sweep.runs.all():
            expect(page.locator(f"#compare-image-{run.id} img")).to_have_attribute(
                "src", re.compile(rf"/runs/{run.id}/iterations/1/image/$"))
        expect(swept.locator("h2")).to_contain_text(f"at iteration 1 of {ITERATIONS}")

        # A crop dragged on one cell shows the region of all four, magnified pixel for pixel.
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-compare-image]')].every(i => i.complete && i.naturalWidth > 0)"
        )
        box = page.locator("[data-compare-image]").nth(0).bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.7, steps=6)
        page.mouse.up()
        expect(page.locator("#crop-panel")).to_be_visible()
        expect(page).to_have_url(re.compile(r"iteration=1&crop=\d+,\d+,\d+,\d+$"))
        _x, _y, w, h = (int(v) for v in re.search(r"crop=(\d+),(\d+),(\d+),(\d+)", page.url).groups())
        sizes = page.locator("[data-crop-canvas]").evaluate_all("cs => cs.map(c => [c.width, c.height])")
        assert len(sizes) == 4 and all(cw >= 2 * w and cw % w == 0 and ch % h == 0 for cw, ch in sizes)
        expect(page.locator("[data-crop-box]:visible")).to_have_count(4)
        screenshot(page, "sweep-crop")

        # The PNG link follows the slider and the crop; the download is the labelled figure.
        png_link = page.locator("[data-sweep-png]")
        expect(png_link).to_have_attribute("href", re.compile(r"matrix\.png\?iteration=1&crop=\d+,\d+,\d+,\d+$"))
        with page.expect_download() as download_info:
            png_link.click()
        figure = Image.open(download_info.value.path())
        assert figure.format == "PNG" and figure.width > 400
        assert figure.text["Rows"] == "TV weight: 0.0001, 0.01"
        assert figure.text["Columns"] == "Style weight: 0.1, 1"
        figure.save(SCREENSHOTS / "sweep-matrix-export.png")  # to look at beside the screenshots

        # The address keeps the view; a click on a picture opens its run.
        page.reload()
        expect(page.locator("#iteration-value")).to_have_text(f"iteration 1 of {ITERATIONS}")
        expect(page.locator("#crop-panel")).to_be_visible()
        first = sweep.runs.get(sweep_row=0, sweep_column=0)
        page.locator(f'td[data-run-id="{first.id}"] [data-compare-image]').click()
        expect(page).to_have_url(re.compile(rf"/runs/{first.id}/$"))

        # The project page lists the sweep, done.
        page.goto(f"{base}/projects/{project.id}/")
        expect(page.locator(f"#sweep-progress-{sweep.id} [data-sweep-progress-text]")).to_have_text("4 of 4 runs done")
        screenshot(page, "sweep-project-page")
    finally:
        stop_worker(worker)

