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
