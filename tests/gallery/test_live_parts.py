"""Every live part has a place on its page: live.js swaps a part only into the element of the same
id already there, so a page first rendered in one state must hold every part that a later state's
fragment brings (a page opened while a preview computes once had no figure for the picture)."""
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from gallery import previews
from gallery.models import Preview, Run, Sweep
from gallery.views import previews as preview_views
from tests.gallery.test_pages import add_iteration, create_run

pytestmark = pytest.mark.django_db


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.live = set(), set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
            if "data-live-part" in attrs:
                self.live.add(attrs["id"])


def ids(html):
    parser = _Ids()
    parser.feed(html)
    return parser


def get(client, url, **params):
    response = client.get(url, params)
    assert response.status_code == 200, url
    return response.content.decode()


def assert_fragment_fits(page_html, fragment_html):
    page, fragment = ids(page_html), ids(fragment_html)
    assert fragment.live, "the fragment has no live parts"
    missing = fragment.live - page.ids
    assert not missing, f"live parts with no element on the page: {sorted(missing)}"


PREVIEW_STATES = ["none", Preview.Status.PENDING, Preview.Status.FAILED, Preview.Status.DONE]


def set_preview_state(project, state):
    Preview.objects.filter(project=project).delete()
    if state != "none":
        preview = previews.request_preview(project, 1.0)
        Preview.objects.filter(id=preview.id).update(status=state, error="out of memory")


@pytest.mark.parametrize("first", PREVIEW_STATES)
@pytest.mark.parametrize("page_name", ["project_detail", "run_create"])
def test_the_preview_parts_have_a_place_whatever_state_the_page_opened_in(
    owner_client, project, page_name, first, monkeypatch
):
    monkeypatch.setattr(preview_views, "PREVIEW_WAIT_SECONDS", 0)
    set_preview_state(project, first)
    page_html = get(owner_client, reverse(page_name, args=[project.id]))
    for later in PREVIEW_STATES:
        set_preview_state(project, later)
        fragment = get(owner_client, reverse("preview_fragment", args=[project.id]), alpha="1")
        assert_fragment_fits(page_html, fragment)


def test_the_run_page_opened_while_queued_has_a_place_for_every_later_part(owner_client, project):
    run = create_run(project, numbers=(), status=Run.Status.QUEUED, iterations=4)
    page_html = get(owner_client, reverse("run_detail", args=[run.id]))
    for status, number in [(Run.Status.RUNNING, 1), (Run.Status.RUNNING, 2), (Run.Status.DONE, 4)]:
        add_iteration(run, number)
        Run.objects.filter(id=run.id).update(status=status, iterations_done=number)
        fragment = get(owner_client, reverse("run_detail", args=[run.id]), fragment="live", after=-1)
        assert_fragment_fits(page_html, fragment)
    for status in (Run.Status.FAILED, Run.Status.CANCELLED):
        Run.objects.filter(id=run.id).update(status=status)
        assert_fragment_fits(page_html, get(owner_client, reverse("run_detail", args=[run.id]), fragment="live"))


def test_the_sweep_and_compare_pages_opened_before_any_picture_have_a_place_for_every_later_part(
    owner_client, project
):
    runs = [create_run(project, numbers=(), status=Run.Status.QUEUED, iterations=2, tv_weight=w) for w in (1, 0.1)]
    sweep = Sweep.objects.create(project=project, axis1="tv_weight", axis1_values=[1, 0.1])
    for row, run in enumerate(runs):
        Run.objects.filter(id=run.id).update(sweep=sweep, sweep_row=row, sweep_column=0)
    sweep_url = reverse("sweep_detail", args=[sweep.id])
    compare_query = {"runs": ",".join(str(run.id) for run in runs)}
    sweep_page = get(owner_client, sweep_url)
    compare_page = get(owner_client, reverse("compare"), **compare_query)
    for number, status in [(1, Run.Status.RUNNING), (2, Run.Status.DONE)]:
        for run in runs:
            add_iteration(run, number)
            Run.objects.filter(id=run.id).update(status=status, iterations_done=number)
        assert_fragment_fits(sweep_page, get(owner_client, sweep_url, fragment="live"))
        assert_fragment_fits(compare_page, get(owner_client, reverse("compare"), fragment="live", **compare_query))
