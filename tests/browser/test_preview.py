"""The instant preview in a browser, on rows made directly (no worker: the test finishes a pending
preview itself, as the preview lane would); the worker-driven walk is in test_gallery_flow.py."""
import re

import pytest
from django.utils import timezone
from PIL import Image
from playwright.sync_api import expect

from gallery import files, previews
from gallery.models import Preview
from stylecore import samples
from tests.browser.test_accessibility import axe_violations
from tests.browser.test_compare_pages import log_in

pytestmark = pytest.mark.browser


def finish(preview, seed=1):
    """What the preview lane does once its engine has the picture (gallery.previews.compute_preview)."""
    files.save_image(preview.image, Image.fromarray(samples.swirls(300, 400, seed=seed)), fmt="JPEG")
    Preview.objects.filter(id=preview.id).update(
        status=Preview.Status.DONE, image=preview.image.name, seconds=0.8, finished=timezone.now()
    )


def picture_shown(page):
    image = page.locator("[data-role=preview-image]")
    expect(image).to_be_visible()
    page.wait_for_function("() => document.querySelector('[data-role=preview-image]').naturalWidth > 0")
    return image


@pytest.mark.parametrize("where", ["project", "launch"])
def test_a_page_opened_while_the_preview_computes_shows_the_picture_when_it_lands(
    page, live_server, owner, project, where, screenshot
):
    # The first visit asked for the preview; the page is opened again (a reload, a second tab, the
    # launch form) while the lane still computes it.
    pending = previews.request_preview(project, previews.shown_alpha(None))
    log_in(page, live_server.url, owner)
    path = f"/projects/{project.id}/" if where == "project" else f"/projects/{project.id}/runs/new/"
    page.goto(live_server.url + path)
    expect(page.locator("#preview-state")).to_have_attribute("data-state", "pending")
    expect(page.locator("#preview-status")).to_have_text(re.compile("Warming up|Computing"))
    figure = page.locator("#preview-figure")
    expect(figure).to_have_text("No preview yet.")
    if where == "project":
        assert axe_violations(page) == []

    finish(pending)
    image = picture_shown(page)
    expect(page.locator("#preview-status")).to_have_text("Preview at style strength 1.00 ready.")
    expect(image).to_have_attribute("alt", re.compile("1.00"))
    expect(figure).to_contain_text("Start a run from this preview")
    screenshot(page, f"preview-pending-first-{where}")
    if where == "project":
        assert axe_violations(page) == []

    # Another strength: the picture shown stays while the new one computes, then gives way to it.
    page.locator("#preview-alpha").fill("0.5")
    expect(page.locator("#preview-state")).to_have_attribute("data-state", "pending")
    expect(page.locator("#preview-status")).to_have_text(re.compile("Warming up|Computing"))
    expect(image).to_have_attribute("alt", re.compile("1.00"))
    finish(previews.current_preview(project, 0.5), seed=2)
    expect(page.locator("#preview-status")).to_have_text("Preview at style strength 0.50 ready.")
    expect(picture_shown(page)).to_have_attribute("alt", re.compile("0.50"))
