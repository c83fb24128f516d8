"""A live page whose server stops answering says so, and stops saying so once it answers again."""
import pytest
from playwright.sync_api import expect

from gallery.models import Run
from tests.browser.helpers import log_in
from tests.factories import create_project, create_run

pytestmark = pytest.mark.browser


def test_a_live_page_says_when_the_server_stops_answering(page, live_server, owner):
    run = create_run(create_project(owner), status=Run.Status.RUNNING, iterations=10)
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/runs/{run.id}/")
    live_url = page.locator("#live-poller").get_attribute("data-live-url")
    path = live_url.split("?")[0]
    notice = page.locator("#live-offline")
    # The server going away (a restart, `make run` stopped): every poll fails.
    page.route(lambda url: path in url, lambda route: route.abort("connectionrefused"))
    expect(notice).to_be_visible(timeout=30_000)
    expect(notice).to_have_attribute("role", "status")
    expect(notice).to_contain_text("stopped updating")
    # Back again: the next poll answers, and the notice goes.
    page.unroute_all()
    expect(notice).to_have_count(0, timeout=30_000)
