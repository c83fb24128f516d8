"""The header with a long user name (150 characters are allowed): no sideways scrolling on a phone."""
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

LONG_NAME = "Maximilian.Alexander-Hohenzollern_" + "x" * 60


@pytest.mark.parametrize("width", [390, 1280])
def test_a_long_user_name_is_shortened_not_pushed_off_the_page(page, live_server, db, width, screenshot):
    page.set_viewport_size({"width": width, "height": 844})
    page.goto(f"{live_server.url}/accounts/signup/")
    page.fill("#id_username", LONG_NAME)
    page.fill("#id_password1", "correct horse battery staple")
    page.fill("#id_password2", "correct horse battery staple")
    page.click("main button[type=submit]")
    # The welcome message names the user too: it wraps.
    expect(page.locator(".message")).to_contain_text(f"Welcome, {LONG_NAME}.")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    name = page.locator(".user-menu a")
    expect(name).to_have_attribute("title", f"{LONG_NAME}: change password")
    box = name.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    # The header keeps its lines: the name pushes neither the account nor the theme switch onto a line of its own.
    header = page.locator(".site-header").bounding_box()
    assert header["height"] <= (110 if width < 640 else 60)
    screenshot(page, f"header-long-name-{width}", full_page=False)


def test_a_long_owner_name_wraps_on_their_public_pages(page, live_server, other):
    from django.contrib.auth.models import User

    from gallery.models import Run
    from tests.browser.helpers import log_in
    from tests.factories import create_project, create_run

    owner = User.objects.create_user(LONG_NAME, password="correct horse battery staple")
    project = create_project(owner, is_public=True)
    run = create_run(project, status=Run.Status.DONE)
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, live_server.url, other)
    for url in (f"/projects/{project.id}/", f"/runs/{run.id}/", "/gallery/"):
        page.goto(live_server.url + url)
        expect(page.locator("main")).to_contain_text(f"by {LONG_NAME}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, url
