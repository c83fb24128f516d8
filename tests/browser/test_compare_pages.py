"""Browser checks of the compare and run pages on rows made directly (no worker needed)."""
import pytest
from playwright.sync_api import expect

from gallery.models import Run
from tests.browser.helpers import log_in
from tests.factories import create_project, create_run

pytestmark = pytest.mark.browser


def test_a_crop_is_scaled_for_a_run_of_another_size_and_said_so(page, live_server, owner):
    project = create_project(owner)
    small = create_run(project, size=(64, 48), tv_weight=0.1)
    large = create_run(project, size=(128, 96), tv_weight=1)
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/compare/?runs={small.id},{large.id}&crop=8,6,16,12")
    note = page.locator("[data-crop-note]")
    expect(note).to_be_visible()
    expect(note).to_contain_text("128×96 px: its region is x 16, y 12, 32×24")
    # The same part of the picture from both: 16×12 px magnified ×30, and 32×24 px magnified ×15.
    sizes = page.locator("[data-crop-canvas]").evaluate_all("cs => cs.map(c => [c.width, c.height])")
    assert sizes == [[480, 360], [480, 360]]
    expect(page.locator("[data-crop-caption]").nth(0)).to_have_text("×30")
    expect(page.locator("[data-crop-caption]").nth(1)).to_have_text("×15 · scaled region")
    boxes = page.locator("[data-crop-box]").evaluate_all(
        "bs => bs.map(b => b.style.getPropertyValue('--crop-left') + ' ' + b.style.getPropertyValue('--crop-width'))"
    )
    assert boxes[0] == boxes[1] == "12.5% 25%"


def test_too_few_runs_get_a_message_not_an_error(page, live_server, owner):
    project = create_project(owner)
    run = create_run(project)
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/compare/?runs={run.id}")
    expect(page.locator("[data-compare-error]")).to_have_text("Choose at least 2 runs to compare (you chose 1).")


def test_the_lightbox_walks_the_grid_with_the_keyboard(page, live_server, owner):
    run = create_run(create_project(owner), numbers=tuple(range(0, 45)), iterations=44)
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/runs/{run.id}/")
    expect(page.locator(".grid-item[data-number]")).to_have_count(45)
    page.locator('.grid-item[data-number="44"] .grid-link').click()
    caption = page.locator("[data-lightbox-caption]")
    expect(caption).to_contain_text("Iteration 44 ·")
    page.keyboard.press("ArrowLeft")
    expect(caption).to_contain_text("Iteration 43 ·")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")  # past the end, round to the style image
    expect(caption).to_contain_text("Style")
    page.keyboard.press("Escape")
    expect(page.locator("#lightbox")).to_be_hidden()


def test_others_get_no_owner_buttons_on_a_public_run(page, live_server, owner, other):
    run = create_run(create_project(owner, is_public=True), status=Run.Status.RUNNING, iterations=10)
    log_in(page, live_server.url, other)
    page.goto(f"{live_server.url}/runs/{run.id}/")
    expect(page.locator("[data-run-status]")).to_have_text("Running")
    expect(page.locator("[data-cancel-form]")).to_have_count(0)
    expect(page.locator("text=Continue from")).to_have_count(0)


def test_the_pages_crop_arithmetic_gives_the_pngs_numbers(page, live_server, owner):
    """crop.js and gallery/crop.py on the same edge cases: ties, an image much smaller than the
    reference, regions at the far edge, coarse iterations' full sizes."""
    from gallery.crop import clamp_region, full_size, scaled_region

    project = create_project(owner)
    first, second = create_run(project, tv_weight=0.1), create_run(project, tv_weight=1)
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/compare/?runs={first.id},{second.id}")
    page.wait_for_function("() => window.StyleGalleryCrop")
    references = [(64, 48), (400, 533), (473, 800), (101, 75), (7, 5)]
    sizes = [(80, 60), (16, 12), (200, 267), (236, 400), (3, 2), (1, 1), (641, 481)]
    regions = [(0, 0, 1, 1), (2, 2, 2, 2), (5, 3, 7, 9), (63, 47, 1, 1), (31, 17, 33, 31), (100, 100, 900, 900),
               (399, 532, 5, 5), (1, 1, 472, 799)]
    cases = [(dict(zip("xywh", region)), reference, size)
             for reference in references for size in sizes for region in regions]
    full_sizes = [((w, h), rows, full) for (w, h) in sizes for rows, full in ((h, 2 * h + 1), (h, 3 * h), (0, 9), (h, h))]
    in_js = page.evaluate(
        """([cases, fullSizes]) => {
            const C = window.StyleGalleryCrop;
            return {
                scaled: cases.map(([region, [w, h], [iw, ih]]) => {
                    const clamped = C.clamp(region, {w: w, h: h});
                    const part = C.scaled(clamped, {w: w, h: h}, iw, ih);
                    return [clamped.x, clamped.y, clamped.w, clamped.h, part.x, part.y, part.w, part.h];
                }),
                full: fullSizes.map(([[w, h], rows, full]) => { const s = C.fullSize(w, h, rows, full); return [s.w, s.h]; }),
            };
        }""",
        [[[region, list(reference), list(size)] for region, reference, size in cases],
         [[list(size), rows, full] for size, rows, full in full_sizes]],
    )
    in_python = []
    for region, reference, size in cases:
        clamped = clamp_region(region, reference)
        in_python.append([clamped[k] for k in "xywh"] + list(scaled_region(clamped, reference, size)))
    assert in_js["scaled"] == in_python
    assert in_js["full"] == [list(full_size(size, rows, full)) for size, rows, full in full_sizes]
