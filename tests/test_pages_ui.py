"""Every HTML page in a real browser (Debian's chromium, driven by Playwright), at a phone's
width (390 px) and a desktop's (1280 px): each shows the one navigation with the links its
visitor should have, and nothing on it is wider than the window. /api/docs/ renders Swagger UI
with every request that leaves the live server refused, as on a machine without internet.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from proposals.identity.services import member_create
from proposals.matches.services import event_match_create
from proposals.models import Conversation, Event
from tests.support.ui import sign_in_form

TIMEOUT_MS = 15_000
PASSWORD = "correct horse battery staple"
WIDTHS = (390, 1280)
# Every visitor's links, by their test id and name; staff also get the ops page and the admin.
COMMON = {
    "nav-find-investors": "Find investors",
    "nav-vote": "Vote",
    "nav-matches": "Matches",
    "nav-discover": "Discover",
    "nav-docs": "API docs",
}
STAFF_ONLY = {"nav-ops": "Ops", "nav-admin": "Admin"}


@dataclass
class Visitor:
    username: str | None  # None: signed out
    staff: bool

    def expected_links(self) -> dict[str, str]:
        links = dict(COMMON)
        if self.staff:
            links.update(STAFF_ONLY)
        links["nav-signout" if self.username else "nav-signin"] = "Sign out" if self.username else "Sign in"
        return links


def members() -> tuple[User, User, str]:
    """A staff member and a plain member with an event match between them; the conversation's id."""
    staff = member_create(username="staffer", password=PASSWORD, display_name="Stella Staff", interests=["ai"])
    # A superuser, as make run's admin is, so the admin's lists open too.
    staff.is_staff = staff.is_superuser = True
    staff.save(update_fields=["is_staff", "is_superuser"])
    member = member_create(username="member", password=PASSWORD, display_name="Milo Member", interests=["ai"])
    now = timezone.now()
    event = Event.objects.create(name="Spring Mixer", starts_at=now, ends_at=now)
    match = event_match_create(event=event, member_a=member, member_b=staff, compatibility=0.8)
    return staff, member, str(Conversation.objects.get(match=match).public_id)


@pytest.fixture
def context(browser: Browser, live_server) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": WIDTHS[0], "height": 844})
    context.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


def offline(page: Page, live_server_url: str) -> list[str]:
    """Refuse every request that is not to the live server; returns the refused URLs."""
    refused: list[str] = []

    def handle(route: Route) -> None:
        if route.request.url.startswith(live_server_url + "/"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", handle)
    return refused


def check_page(page: Page, path: str, visitor: Visitor) -> None:
    """The navigation is there with exactly the visitor's links, each inside the window, the
    current page marked, the favicon linked, and nothing scrolls sideways."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 844})
        response = page.goto(path)
        assert response is not None and response.status == 200, f"{path} answered {response and response.status}"
        where = f"{path} at {width} px as {visitor.username or 'a visitor'}"
        nav = page.get_by_test_id("site-nav")
        expect(nav).to_be_visible()
        expected = visitor.expected_links()
        items = nav.locator("li")
        expect(items).to_have_count(len(expected))
        for testid, name in expected.items():
            link = nav.get_by_test_id(testid)
            expect(link).to_be_visible()
            expect(link).to_have_text(name)
            box = link.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, f"{testid} leaves {where}"
        for testid in STAFF_ONLY:
            if not visitor.staff:
                expect(nav.get_by_test_id(testid)).to_have_count(0)
        # Measured once the page's script has drawn what it loads, in the page's own fonts.
        expect(page.locator('[data-testid$="-loading"]:visible')).to_have_count(0)
        page.evaluate("document.fonts.ready.then(() => true)")
        scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll_width <= inner_width, f"{where} overflows: {scroll_width} px wide"
        icon = page.locator('link[rel="icon"][type="image/svg+xml"]')
        expect(icon).to_have_attribute("href", "/static/favicon.svg")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_every_page_shows_the_navigation_and_fits_a_phone_and_a_desktop_for_each_kind_of_visitor(
    context: BrowserContext, live_server
):
    _, _, conversation_id = members()
    page = context.new_page()
    refused = offline(page, live_server.url)

    anonymous = Visitor(username=None, staff=False)
    for path in ("/", "/signin", "/signout", "/api/docs/", "/admin/login/"):
        check_page(page, path, anonymous)
    # The links a visitor cannot use yet lead to signing in.
    page.get_by_test_id("nav-vote").click()
    expect(page).to_have_url(f"{live_server.url}/signin?next=/vote")

    member = Visitor(username="member", staff=False)
    sign_in_form(page, "member", PASSWORD, next_path="/vote")
    expect(page).to_have_url(f"{live_server.url}/vote")
    member_pages = (
        "/",
        "/vote",
        "/matches",
        "/discover",
        f"/conversations/{conversation_id}",
        "/signin",
        "/signout",
        "/api/docs/",
    )
    for path in member_pages:
        check_page(page, path, member)
    expect(page.get_by_test_id("nav-docs")).to_have_attribute("aria-current", "page")
    page.goto("/matches")
    expect(page.get_by_test_id("nav-matches")).to_have_attribute("aria-current", "page")
    page.goto("/discover")
    expect(page.get_by_test_id("nav-discover")).to_have_attribute("aria-current", "page")
    # Not staff: the admin sends the member to its own sign-in.
    page.goto("/admin/")
    expect(page).to_have_url(f"{live_server.url}/admin/login/?next=/admin/")

    page.get_by_test_id("nav-signout").click()
    expect(page).to_have_url(f"{live_server.url}/signin")
    expect(page.get_by_test_id("nav-signin")).to_be_visible()

    staff = Visitor(username="staffer", staff=True)
    sign_in_form(page, "staffer", PASSWORD, next_path="/ops/matches")
    expect(page).to_have_url(f"{live_server.url}/ops/matches")
    for path in (*member_pages, "/ops/matches", "/admin/", "/admin/auth/user/"):
        check_page(page, path, staff)
    expect(page.get_by_test_id("nav-admin")).to_have_attribute("aria-current", "page")

    assert refused == [], f"pages asked for files outside the site: {refused}"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_locked_out_page_has_the_navigation_too(context: BrowserContext, settings):
    # The page the admin's sign-in form answers once a client is locked out.
    settings.AXES_FAILURE_LIMIT = 1
    member_create(username="member", password=PASSWORD)
    page = context.new_page()
    page.goto("/admin/login/")
    page.get_by_label("Username").fill("member")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("locked-out")).to_be_visible()
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 844})
        nav = page.get_by_test_id("site-nav")
        for testid, name in Visitor(username=None, staff=False).expected_links().items():
            expect(nav.get_by_test_id(testid)).to_have_text(name)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_api_docs_render_swagger_ui_with_its_operations_with_no_network(context: BrowserContext, live_server):
    page = context.new_page()
    refused = offline(page, live_server.url)
    scripts: list[str] = []
    page.on("request", lambda request: scripts.append(request.url) if request.resource_type == "script" else None)

    page.goto("/api/docs/")

    ui = page.locator("#swagger-ui")
    expect(ui.locator(".info .title")).to_contain_text("matchplatform API")
    operations = ui.locator(".opblock")
    expect(operations.first).to_be_visible()
    assert operations.count() >= 10
    submit = ui.locator(".opblock-post", has_text="/api/match/run").first
    expect(submit).to_contain_text("Submit a startup URL for matching")
    # Opening an operation works offline too: its parameters and responses are drawn.
    submit.locator(".opblock-summary").click()
    expect(submit.locator(".responses-wrapper")).to_contain_text("202")
    assert refused == [], f"the docs asked for files outside the site: {refused}"
    assert any("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in url for url in scripts)


def test_the_favicon_and_swagger_uis_files_are_served_by_the_site_itself(db):
    client = Client()
    favicon = client.get("/favicon.ico")
    assert favicon.status_code == 302
    assert favicon["Location"] == "/static/favicon.svg"
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200
    assert icon["Content-Type"].startswith("image/svg+xml")
    assert b"<svg" in b"".join(icon.streaming_content)

    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "https://" not in html and "http://" not in html, "the page names no other site"
    for name in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"):
        url = f"/static/drf_spectacular_sidecar/swagger-ui-dist/{name}"
        assert url in html
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(b"".join(asset.streaming_content)) > 1000
