"""The gallery in a real browser, end to end: sign up, upload, launch two runs with different TV
weights, watch a real worker compute them live, browse the grid, compare and zoom into a crop."""
import os
import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect

from gallery.models import Run
from stylecore import samples
from tests.workers import start_worker, stop_worker, wait_until, worker_env_for_test_db

pytestmark = [pytest.mark.browser, pytest.mark.worker]

PASSWORD = "a long enough passphrase 42"
# Tiny runs keep the test quick; larger ones make better pictures for docs/screenshots, e.g.
# BROWSER_RUN_ROWS=128 BROWSER_RUN_ITERATIONS=12 BROWSER_RUN_STYLE_WEIGHT=0.3 pytest tests/browser
RUN_ROWS = int(os.environ.get("BROWSER_RUN_ROWS", "64"))
RUN_ITERATIONS = int(os.environ.get("BROWSER_RUN_ITERATIONS", "3"))
RUN_STYLE_WEIGHT = os.environ.get("BROWSER_RUN_STYLE_WEIGHT")  # None: the launch form's default


def write_png(path, pixels):
    Image.fromarray(pixels).save(path)
    return str(path)


def sign_up(page, base_url, username):
    page.goto(f"{base_url}/accounts/signup/")
    page.fill("#id_username", username)
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("button:has-text('Sign up')")
    expect(page).to_have_url(re.compile(r"/projects/$"))


def launch_run(page, project_url, *, tv_weight, screenshot=None):
    page.goto(project_url)
    page.click("a:has-text('New run')")
    expect(page.locator("#id_style_weight")).to_have_value(re.compile(r"^0?\.3$"))  # prefilled default
    estimate = page.locator("[data-role=estimate]")
    expect(estimate).to_contain_text("Expected duration: about")
    before = estimate.inner_text()
    page.fill("#id_tv_weight", str(tv_weight))
    if RUN_STYLE_WEIGHT:
        page.fill("#id_style_weight", RUN_STYLE_WEIGHT)
    page.fill("#id_rows", str(RUN_ROWS))
    page.fill("#id_iterations", str(RUN_ITERATIONS))
    page.fill("#id_save_every", "1")
    # The estimate follows what was typed (a run of a few iterations at 64 rows is much shorter).
    expect(page.locator("[data-role=estimate]")).not_to_have_text(before, timeout=15_000)
    expect(page.locator("[data-role=estimate]")).to_contain_text(f"{RUN_ITERATIONS * 20 + 2} loss evaluations")
    if screenshot:
        screenshot(page, "run-form")
    page.click("button:has-text('Launch run')")
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    return int(re.search(r"/runs/(\d+)/$", page.url).group(1))


def test_a_user_launches_two_tv_weights_watches_them_and_compares_a_crop(
    page, live_server, settings, tmp_path, screenshot
):
    worker_log, preview_log = tmp_path / "worker.log", tmp_path / "preview.log"
    # Start the workers first: they load TensorFlow while the browser signs up and uploads.
    env = worker_env_for_test_db(settings.MEDIA_ROOT)
    worker = start_worker(env, worker_log)
    preview_worker = start_worker(env | {"WORKER_LANE": "preview"}, preview_log)
    try:
        base = live_server.url
        sign_up(page, base, "carol")

        page.goto(f"{base}/projects/new/")
        page.fill("#id_title", "Lake house in swirls")
        page.set_input_files("#id_content_image", write_png(tmp_path / "lake.png", samples.landscape(96, 128)))
        page.set_input_files("#id_style_image", write_png(tmp_path / "swirls.png", samples.swirls(128, 128)))
        page.click("button:has-text('Create project')")
        expect(page).to_have_url(re.compile(r"/projects/\d+/$"))
        project_url = page.url
        expect(page.locator("text=No runs yet.")).to_be_visible()

        # The instant preview: the picture at full style strength arrives from the preview lane,
        # and moving the slider brings another one.
        preview = page.locator("[data-role=preview-image]")
        expect(preview).to_be_visible(timeout=240_000)
        first_src = preview.get_attribute("src")
        page.locator("#preview-alpha").fill("0.3")
        expect(page.locator("#preview-alpha-value")).to_have_text("0.30")
        expect(preview).not_to_have_attribute("src", first_src, timeout=60_000)
        expect(page.locator("[data-role=preview-image]")).to_have_attribute("alt", re.compile("0.30"))
        screenshot(page, "project-preview")
        start_link = page.locator("[data-role=preview-start]")
        expect(start_link).to_have_attribute("href", re.compile("init=adain&adain_alpha=0.30"))

        # TV weights a hundredfold apart, as the notebook compared 0.1 and 1 (the engine's terms are
        # normalised, so its useful TV weights are small).
        smooth = launch_run(page, project_url, tv_weight=0.01, screenshot=screenshot)
        sharp = launch_run(page, project_url, tv_weight=0.0001)
        expect(page.locator("[data-download-run]")).to_be_hidden()  # nothing saved yet
        expect(page.locator("[data-continue-latest]")).to_be_hidden()

        # The second run's page, open while it waits and runs: it must fill in without a reload.
        page.evaluate("window.__notReloaded = true")
        expect(page.locator("[data-run-status]")).to_have_text(re.compile("Queued|Running"))
        wait_until(
            lambda: Run.objects.filter(id=sharp, status=Run.Status.RUNNING).exists()
            or Run.objects.filter(id=sharp, status__in=Run.FINISHED).exists(),
            timeout=240 + 60 * RUN_ITERATIONS,
            worker=worker,
            log_path=worker_log,
        )
        expect(page.locator("[data-run-status]")).to_have_text(re.compile("Running|Done"), timeout=10_000)
        # Half way: the bar, the speed and the first iterations, all arrived without a reload.
        page.wait_for_function(
            f"() => document.querySelectorAll('.grid-item[data-number]').length > {RUN_ITERATIONS // 2}",
            timeout=120_000 + 30_000 * RUN_ITERATIONS,
        )
        screenshot(page, "run-page-live")
        expect(page.locator("[data-progress-text]")).to_have_text(
            f"Iteration {RUN_ITERATIONS} of {RUN_ITERATIONS}", timeout=180_000 + 60_000 * RUN_ITERATIONS
        )
        expect(page.locator("[data-run-status]")).to_have_text("Done", timeout=30_000)
        expect(page.locator("[data-progress-percent]")).to_have_text("100%")
        assert page.evaluate("window.__notReloaded") is True
        numbers = page.locator(".grid-item[data-number]").evaluate_all("items => items.map(i => +i.dataset.number)")
        assert numbers == list(range(RUN_ITERATIONS + 1))
        expect(page.locator("#loss-chart polyline")).to_have_count(4)
        expect(page.locator("[data-cancel-form]")).to_have_count(0)
        expect(page.locator("[data-download-run]")).to_be_visible()

        # The grid: a column control and a keyboard lightbox.
        page.locator("#grid-columns").fill("2")
        grid = page.locator("#iteration-grid")
        columns = grid.evaluate("g => getComputedStyle(g).gridTemplateColumns.split(' ').length")
        assert columns == 2
        page.locator("#grid-columns").fill("3")
        page.locator('.grid-item[data-number="1"] .grid-link').click()
        lightbox = page.locator("#lightbox")
        expect(lightbox).to_be_visible()
        expect(lightbox.locator("[data-lightbox-caption]")).to_contain_text("Iteration 1 ·")
        page.keyboard.press("ArrowRight")
        expect(lightbox.locator("[data-lightbox-caption]")).to_contain_text("Iteration 2 ·")
        page.wait_for_function("() => document.querySelector('[data-lightbox-image]').naturalWidth > 0")
        screenshot(page, "run-page-lightbox", full_page=False)
        page.keyboard.press("Escape")
        expect(lightbox).to_be_hidden()
        page.reload()
        screenshot(page, "run-page-done")
        page.emulate_media(color_scheme="dark")  # the dark theme follows the system's preference
        expect(page.locator("body")).to_have_css("background-color", "rgb(27, 28, 31)")
        screenshot(page, "run-page-dark")
        page.emulate_media(color_scheme="light")
        page.evaluate("localStorage.clear()")  # a phone without a column preference gets two
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(page.url)
        assert grid.evaluate("g => getComputedStyle(g).gridTemplateColumns.split(' ').length") == 2
        screenshot(page, "run-page-phone")
        page.set_viewport_size({"width": 1280, "height": 860})

        # The first run finished before the second started.
        assert Run.objects.get(id=smooth).status == Run.Status.DONE

        # Project page: both runs, sortable, pick both to compare.
        page.goto(project_url)
        rows = page.locator("#runs-table tbody tr")
        expect(rows).to_have_count(2)
        expect(page.locator("#runs-table img.run-thumb")).to_have_count(2)
        page.click("#runs-table th:has-text('Created') button")  # newest first, now oldest first
        assert rows.nth(0).get_attribute("data-run-id") == str(smooth)
        page.click("#runs-table th:has-text('Created') button")
        assert rows.nth(0).get_attribute("data-run-id") == str(sharp)
        screenshot(page, "project-page")
        compare_button = page.locator("[data-compare-button]")
        expect(compare_button).to_be_disabled()
        page.check(f'input[name="runs"][value="{smooth}"]')
        page.check(f'input[name="runs"][value="{sharp}"]')
        expect(compare_button).to_be_enabled()
        compare_button.click()
        expect(page).to_have_url(re.compile(rf"/compare/\?runs={sharp},{smooth}$"))

        # Compare page, in launch order: the TV weight is what differs; drag a crop box on one image.
        expect(page.locator(".compare-column").nth(0)).to_have_attribute("data-run-id", str(smooth))
        expect(page.locator("mark.differs-mark")).to_have_text("TV weight")
        images = page.locator("[data-compare-image]")
        expect(images).to_have_count(2)
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-compare-image]')].every(i => i.complete && i.naturalWidth > 0)"
        )
        box = images.nth(0).bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.30, box["y"] + box["height"] * 0.35)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.70, steps=6)
        page.mouse.up()
        expect(page.locator("#crop-panel")).to_be_visible()
        expect(page).to_have_url(re.compile(r"crop=\d+,\d+,\d+,\d+"))
        x, y, w, h = (int(v) for v in re.search(r"crop=(\d+),(\d+),(\d+),(\d+)", page.url).groups())
        assert w > 5 and h > 5
        assert page.locator('#crop-form input[name="w"]').input_value() == str(w)
        canvases = page.locator("[data-crop-canvas]")
        sizes = canvases.evaluate_all("cs => cs.map(c => [c.width, c.height])")
        assert len(sizes) == 2 and all(cw >= w * 2 and cw % w == 0 for cw, _ch in sizes)
        assert canvases.nth(0).evaluate("c => getComputedStyle(c).imageRendering") == "pixelated"
        expect(page.locator("[data-crop-box]").nth(1)).to_be_visible()
        screenshot(page, "compare-crop")

        # Typed coordinates, kept in the address: a reload shows the same comparison.
        page.fill('#crop-form input[name="x"]', "10")
        page.fill('#crop-form input[name="y"]', "12")
        page.fill('#crop-form input[name="w"]', "24")
        page.fill('#crop-form input[name="h"]', "20")
        page.click("#crop-form button:has-text('Zoom')")
        expect(page).to_have_url(re.compile(r"crop=10,12,24,20"))
        page.locator("#iteration-slider").fill("1")
        expect(page).to_have_url(re.compile(r"iteration=1&crop=10,12,24,20"))
        expect(images.nth(0)).to_have_attribute("src", re.compile(rf"/runs/{smooth}/iterations/1/image/$"))
        page.reload()
        expect(page.locator("#crop-panel")).to_be_visible()
        expect(page.locator("#iteration-value")).to_have_text(f"iteration 1 of {RUN_ITERATIONS}")
        expect(page.locator("[data-crop-summary]")).to_have_text("x 10, y 12, 24×20 px")

        # Download the run as a zip.
        page.goto(f"{base}/runs/{sharp}/")
        with page.expect_download() as download_info:
            page.click("[data-download-run]")
        download = download_info.value
        assert download.suggested_filename.endswith(f"output_{Run.objects.get(id=sharp).label}.zip")
        assert Path(download.path()).stat().st_size > 1000

        # Made public, the project is in the gallery with the image of its run that finished last.
        page.goto(f"{project_url}edit/")
        page.check("#id_is_public")
        page.click("button:has-text('Save')")
        page.goto(f"{base}/gallery/")
        expect(page.locator(".project-card .cover img")).to_have_count(1)
        screenshot(page, "public-gallery")
    finally:
        stop_worker(preview_worker)
        stop_worker(worker)
