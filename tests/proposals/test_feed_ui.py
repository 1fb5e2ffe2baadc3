"""The matches feed page (/matches) in a real browser (Debian's chromium, driven by Playwright).

One member, Mia, with 26 matches: one from the community voting loop and the rest from two
events, in every status. The page filters, sorts and pages them through /api/matches/,
keeps its state in the query string, accepts and rejects, shows mutual connections and
follows all of an accepted match's connections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from proposals.identity.services import member_create
from proposals.matches.services import event_match_create, match_decide
from proposals.models import Event, FeedItem, Follow, Match, Profile, Proposal, ProposalStatus
from proposals.voting.services import proposal_queue_refill, proposals_open, vote_cast
from tests.support.ui import sign_in_form

PASSWORD = "correct horse battery staple"
GUESTS = 20
SEVEN_DAYS_LEFT = re.compile(r"^[67] d \d{1,2} h left$")


@dataclass
class World:
    mia: User
    spring: Event
    summit: Event
    pat: Match  # the community proposal; Pat has not answered
    ella: Match  # Spring Mixer, two hours left
    olive: Match  # Autumn Summit, Olive accepted already
    sam: Match  # Autumn Summit, accepted by both
    molly: Match  # Autumn Summit, accepted by both
    rex: Match  # Autumn Summit, Mia turned it down


def accept_both(match: Match, *members: User) -> None:
    for member in members:
        match_decide(user=member, match_id=match.public_id, decision="accept")


@pytest.fixture
def world(settings) -> World:
    settings.PROPOSALS_VOTERS_PER_PROPOSAL = 5
    settings.PROPOSALS_APPROVE_THRESHOLD = 3
    settings.PROPOSALS_QUEUE_LOW = settings.PROPOSALS_QUEUE_HIGH = 1
    settings.PROPOSALS_VOTING_LOW = settings.PROPOSALS_VOTING_HIGH = 1

    # The community match first: Mia and Pat share the most interests, so the loop proposes
    # them; three of the five voters say yes.
    mia = member_create(
        username="mia", password=PASSWORD, display_name="Mia Member", interests=["ai", "robotics", "open-source"]
    )
    pat = member_create(username="pat", display_name="Pat Proposal", interests=["ai", "robotics", "climate"])
    hobbies = ["music", "film", "food", "art", "travel"]
    voters = [member_create(username=f"v{i}", interests=[hobby]) for i, hobby in enumerate(hobbies)]
    assert proposal_queue_refill() == 1
    assert proposals_open() == 1
    proposal = Proposal.objects.get(status=ProposalStatus.VOTING)
    assert {proposal.member_a_id, proposal.member_b_id} == {mia.pk, pat.pk}
    for voter in voters[:3]:
        vote_cast(user=voter, proposal_id=proposal.public_id, choice="yes")
    pat_match = Match.objects.get(proposal=proposal)

    now = timezone.now()
    spring = Event.objects.create(name="Spring Mixer", starts_at=now - timedelta(days=1), ends_at=now)
    summit = Event.objects.create(
        name="Autumn Summit", starts_at=now - timedelta(days=3), ends_at=now - timedelta(days=2)
    )

    def person(username: str, name: str, privacy: str = Profile.Privacy.PUBLIC) -> User:
        return member_create(
            username=username,
            display_name=name,
            bio=f"{name} likes meeting people.",
            interests=["ai", "music"],
            privacy=privacy,
        )

    for i in range(1, GUESTS + 1):
        privacy = {6: Profile.Privacy.CONNECTIONS, 7: Profile.Privacy.PRIVATE}.get(i, Profile.Privacy.PUBLIC)
        guest = person(f"guest{i:02d}", f"Guest {i:02d}", privacy)
        event_match_create(event=spring, member_a=mia, member_b=guest, compatibility=round(0.30 + 0.02 * i, 2))

    ttl = settings.PROPOSALS_MATCH_TTL_SECONDS
    settings.PROPOSALS_MATCH_TTL_SECONDS = 2 * 3600
    ella = event_match_create(event=spring, member_a=mia, member_b=person("ella", "Ella Early"), compatibility=0.57)
    settings.PROPOSALS_MATCH_TTL_SECONDS = ttl

    olive_user = person("olive", "Olive Open")
    olive = event_match_create(event=summit, member_a=mia, member_b=olive_user, compatibility=0.88)
    match_decide(user=olive_user, match_id=olive.public_id, decision="accept")

    sam_user, molly_user = person("sam", "Sam Summit"), person("molly", "Molly Mutual")
    sam = event_match_create(event=summit, member_a=mia, member_b=sam_user, compatibility=0.95)
    accept_both(sam, mia, sam_user)
    molly = event_match_create(event=summit, member_a=mia, member_b=molly_user, compatibility=0.91)
    accept_both(molly, mia, molly_user)

    rex = event_match_create(event=summit, member_a=mia, member_b=person("rex", "Rex Rejected"), compatibility=0.8)
    match_decide(user=mia, match_id=rex.public_id, decision="reject")

    # Sam's other connections: Molly (Mia's connection too), a public, a private and a
    # connections-only member. Mia already follows Molly.
    friendship = event_match_create(event=summit, member_a=sam_user, member_b=molly_user, compatibility=0.7)
    accept_both(friendship, sam_user, molly_user)
    for username, name, privacy in [
        ("cora", "Cora Connected", Profile.Privacy.PUBLIC),
        ("perry", "Perry Private", Profile.Privacy.PRIVATE),
        ("connie", "Connie Connections", Profile.Privacy.CONNECTIONS),
    ]:
        friend = person(username, name, privacy)
        friendship = event_match_create(event=summit, member_a=sam_user, member_b=friend, compatibility=0.6)
        accept_both(friendship, sam_user, friend)
    Follow.objects.create(follower=mia, followee=molly_user)

    assert FeedItem.objects.filter(member=mia).count() == GUESTS + 6
    return World(
        mia=mia, spring=spring, summit=summit, pat=pat_match, ella=ella, olive=olive, sam=sam, molly=molly, rex=rex
    )


# --- helpers -----------------------------------------------------------------------------
def sign_in(page: Page, username: str = "mia", *, next_path: str = "/matches") -> None:
    sign_in_form(page, username, PASSWORD, next_path=next_path)
    expect(page).to_have_url(re.compile(r"/matches(\?.*)?$"))


def ready(page: Page) -> None:
    expect(page.locator("#matches-app")).to_have_attribute("data-state", re.compile(r"^(ready|empty)$"))


def rows(page: Page) -> Locator:
    return page.get_by_test_id("match-row")


def names(page: Page) -> Locator:
    return rows(page).get_by_test_id("match-name")


def card(page: Page, name: str) -> Locator:
    return rows(page).filter(has=page.get_by_role("heading", name=name, exact=True))


def expected(mia: User, *, order: tuple[str, ...] = ("-created_at", "-id"), **filters) -> list[str]:
    """The other members' names in the order the feed gives them (what the API promises)."""
    items = FeedItem.objects.filter(member=mia, **filters).select_related("other__profile").order_by(*order)
    return [item.other.profile.display_name for item in items]


# --- the tests -----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_feed_filters_sorts_and_pages_and_keeps_its_state_in_the_url(world, page):
    mia = world.mia
    newest = expected(mia)
    assert len(newest) == 26
    sign_in(page)
    ready(page)

    # The first page: the 20 newest, each with what it is and how long is left to answer.
    expect(names(page)).to_have_text(newest[:20])
    expect(page.get_by_test_id("matches-summary")).to_have_text("Page 1 · 20 matches shown")
    expect(page.get_by_test_id("page-previous")).to_be_disabled()
    expect(page.get_by_test_id("page-next")).to_be_enabled()
    sam = card(page, "Sam Summit")
    expect(sam.get_by_test_id("match-status")).to_have_text("Accepted")
    expect(sam.get_by_test_id("match-compatibility")).to_have_text("95%")
    expect(sam.get_by_test_id("match-source")).to_have_text("Event: Autumn Summit")
    expect(sam.get_by_test_id("match-time-left")).to_have_count(0)
    expect(sam.get_by_test_id("match-bio")).to_have_text("Sam Summit likes meeting people.")
    expect(sam.get_by_test_id("match-interests").locator("li")).to_have_text(["ai", "music"])
    expect(card(page, "Rex Rejected").get_by_test_id("match-status")).to_have_text("Turned down")
    expect(card(page, "Olive Open").get_by_test_id("match-time-left")).to_have_text(SEVEN_DAYS_LEFT)
    ella = card(page, "Ella Early")
    expect(ella.get_by_test_id("match-time-left")).to_have_text(re.compile(r"^1 h \d{1,2} min left$"))
    expect(ella.get_by_test_id("match-time-left")).to_have_attribute("role", "timer")
    expect(ella.get_by_test_id("match-source")).to_have_text("Event: Spring Mixer")
    pending = page.locator('[data-testid="match-row"][data-status="pending"]')
    expect(pending).to_have_count(17)
    expect(pending.get_by_test_id("match-time-left")).to_have_count(17)
    answered = page.locator('[data-testid="match-row"]:not([data-status="pending"])')
    expect(answered).to_have_count(3)
    expect(answered.get_by_test_id("match-time-left")).to_have_count(0)
    # What privacy allows: a private member shows only their name, a connections-only one
    # keeps their profile for their connections.
    for name, note in [
        ("Guest 07", "Private profile: only their name is shown."),
        ("Guest 06", "Shares their profile with connections only."),
    ]:
        expect(card(page, name).get_by_test_id("match-private")).to_have_text(note)
        expect(card(page, name).get_by_test_id("match-bio")).to_have_count(0)
        expect(card(page, name).get_by_test_id("match-interests")).to_have_count(0)
    page.screenshot(path="/tmp/ui-feed.png", full_page=True)

    # Paging forward and back, through the buttons, a reload and the browser's Back.
    page.get_by_test_id("page-next").click()
    ready(page)
    expect(names(page)).to_have_text(newest[20:])
    expect(page.get_by_test_id("page-number")).to_have_text("Page 2")
    expect(page.get_by_test_id("page-next")).to_be_disabled()
    expect(page).to_have_url(re.compile(r"/matches\?cursor=[\w-]+$"))
    expect(card(page, "Pat Proposal").get_by_test_id("match-source")).to_have_text("Community proposal")
    page.reload()
    ready(page)
    expect(names(page)).to_have_text(newest[20:])
    expect(page.get_by_test_id("page-number")).to_have_text("Page 2")
    page.get_by_test_id("page-previous").click()
    ready(page)
    expect(names(page)).to_have_text(newest[:20])
    expect(page.get_by_test_id("page-previous")).to_be_disabled()
    expect(page).to_have_url(re.compile(r"/matches$"))
    page.get_by_test_id("page-next").click()
    expect(names(page)).to_have_text(newest[20:])
    page.go_back()
    ready(page)
    expect(names(page)).to_have_text(newest[:20])

    # Ten a page: three pages, forward to the end and back to the start.
    page.get_by_label("Per page").select_option("10")
    ready(page)
    expect(page).to_have_url(re.compile(r"/matches\?page_size=10$"))
    expect(names(page)).to_have_text(newest[:10])
    for n, chunk in ((2, newest[10:20]), (3, newest[20:])):
        page.get_by_test_id("page-next").click()
        ready(page)
        expect(names(page)).to_have_text(chunk)
        expect(page.get_by_test_id("page-number")).to_have_text(f"Page {n}")
    expect(page.get_by_test_id("page-next")).to_be_disabled()
    for n, chunk in ((2, newest[10:20]), (1, newest[:10])):
        page.get_by_test_id("page-previous").click()
        ready(page)
        expect(names(page)).to_have_text(chunk)
        expect(page.get_by_test_id("page-number")).to_have_text(f"Page {n}")
    expect(page.get_by_test_id("page-previous")).to_be_disabled()

    # Filter by status (several at once); a reload keeps the filter.
    page.get_by_label("Accepted", exact=True).check()
    ready(page)
    expect(page).to_have_url(re.compile(r"\?status=accepted&page_size=10$"))
    expect(names(page)).to_have_text(["Molly Mutual", "Sam Summit"])
    expect(page.get_by_test_id("matches-pager")).to_be_hidden()
    page.get_by_label("Turned down", exact=True).check()
    ready(page)
    expect(page).to_have_url(re.compile(r"\?status=accepted,rejected&page_size=10$"))
    expect(names(page)).to_have_text(["Rex Rejected", "Molly Mutual", "Sam Summit"])
    page.reload()
    ready(page)
    expect(page.get_by_label("Accepted", exact=True)).to_be_checked()
    expect(page.get_by_label("Turned down", exact=True)).to_be_checked()
    expect(page.get_by_label("Pending", exact=True)).not_to_be_checked()
    expect(page.get_by_label("Per page")).to_have_value("10")
    expect(names(page)).to_have_text(["Rex Rejected", "Molly Mutual", "Sam Summit"])
    page.get_by_label("Pending", exact=True).check()
    ready(page)
    expect(names(page)).to_have_text(newest[:10])  # every status but expired: all of them
    page.get_by_test_id("filter-reset").click()
    ready(page)
    expect(page).to_have_url(re.compile(r"/matches$"))
    expect(page.get_by_label("Accepted", exact=True)).not_to_be_checked()
    expect(names(page)).to_have_text(newest[:20])

    # By source and by event.
    page.get_by_label("Source").select_option("proposal")
    ready(page)
    expect(names(page)).to_have_text(["Pat Proposal"])
    expect(page.get_by_label("Event", exact=True)).to_be_disabled()
    page.get_by_label("Source").select_option("event")
    ready(page)
    expect(names(page)).to_have_text(expected(mia, source="event")[:20])
    expect(page.get_by_label("Event", exact=True)).to_be_enabled()
    page.get_by_label("Event", exact=True).select_option(label="Autumn Summit")
    ready(page)
    expect(page).to_have_url(re.compile(rf"\?source=event&event={world.summit.pk}$"))
    expect(names(page)).to_have_text(["Rex Rejected", "Molly Mutual", "Sam Summit", "Olive Open"])

    # And by minimum compatibility (a percentage on the page, a fraction in the API).
    page.get_by_label("Minimum compatibility (%)").fill("90")
    page.get_by_label("Minimum compatibility (%)").press("Enter")
    ready(page)
    expect(page).to_have_url(re.compile(rf"\?source=event&event={world.summit.pk}&min_compatibility=0\.9$"))
    expect(names(page)).to_have_text(["Molly Mutual", "Sam Summit"])
    page.get_by_label("Event", exact=True).select_option("")
    page.get_by_label("Source").select_option("")
    ready(page)
    expect(page).to_have_url(re.compile(r"\?min_compatibility=0\.9$"))
    expect(names(page)).to_have_text(["Molly Mutual", "Sam Summit"])
    page.reload()
    ready(page)
    expect(page.get_by_label("Minimum compatibility (%)")).to_have_value("90")
    expect(names(page)).to_have_text(["Molly Mutual", "Sam Summit"])
    page.get_by_test_id("filter-reset").click()
    ready(page)

    # Sorting: most compatible first, across pages too.
    by_compat = expected(mia, order=("-compatibility", "-id"))
    page.get_by_label("Sort by").select_option("compatibility")
    ready(page)
    expect(page).to_have_url(re.compile(r"\?sort=compatibility$"))
    expect(names(page)).to_have_text(by_compat[:20])
    first_page = [float(v) for v in rows(page).evaluate_all("rs => rs.map(r => r.dataset.compatibility)")]
    assert first_page == sorted(first_page, reverse=True)
    assert first_page[0] == 0.95
    page.get_by_test_id("page-next").click()
    ready(page)
    expect(names(page)).to_have_text(by_compat[20:])
    second_page = [float(v) for v in rows(page).evaluate_all("rs => rs.map(r => r.dataset.compatibility)")]
    assert second_page == sorted(second_page, reverse=True)
    assert max(second_page) <= min(first_page)

    # Expiring soonest: open pending matches by deadline (Ella's two hours first), then the rest.
    page.get_by_label("Sort by").select_option("expiring_soon")
    ready(page)
    expect(page).to_have_url(re.compile(r"\?sort=expiring_soon$"))
    open_pending = expected(mia, order=("expires_at", "id"), status="pending")
    rest = expected(mia, status__in=["accepted", "rejected", "expired"])
    assert open_pending[0] == "Ella Early"
    expect(names(page)).to_have_text((open_pending + rest)[:20])
    expect(rows(page).first.get_by_test_id("match-time-left")).to_have_text(re.compile(r"^1 h \d{1,2} min left$"))
    page.reload()
    ready(page)
    expect(page.get_by_label("Sort by")).to_have_value("expiring_soon")
    expect(names(page)).to_have_text((open_pending + rest)[:20])

    # On a phone the filters and cards fit the screen: nothing scrolls sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path="/tmp/ui-feed-mobile.png", full_page=True)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_member_accepts_rejects_sees_mutual_connections_and_follows_all(world, page):
    sign_in(page)
    ready(page)

    # Olive said yes already: Mia's yes makes it a connection, in place on the page.
    olive = card(page, "Olive Open")
    expect(olive.get_by_test_id("match-status")).to_have_text("Pending")
    expect(olive.get_by_test_id("match-their-decision")).to_have_text("Accepted")
    expect(olive.get_by_test_id("match-my-decision")).to_have_text("Not answered")
    expect(olive.get_by_test_id("match-follow-all")).to_have_count(0)
    olive.get_by_role("button", name="Accept the match with Olive Open").click()
    expect(olive.get_by_test_id("match-status")).to_have_text("Accepted")
    expect(olive.get_by_test_id("match-my-decision")).to_have_text("Accepted")
    expect(olive.get_by_test_id("match-accept")).to_have_count(0)
    expect(olive.get_by_test_id("match-reject")).to_have_count(0)
    expect(olive.get_by_test_id("match-time-left")).to_have_count(0)
    expect(olive.get_by_test_id("match-follow-all")).to_be_visible()
    expect(olive.get_by_test_id("match-conversation")).to_be_visible()
    world.olive.refresh_from_db()
    assert world.olive.status == Match.Status.ACCEPTED
    olive.get_by_test_id("match-follow-all").click()
    expect(olive.get_by_test_id("match-follow-result")).to_have_text("Followed 0 · 0 already · 0 hidden by privacy")

    # Sam: one mutual connection (Molly), listed on demand.
    sam = card(page, "Sam Summit")
    mutual = sam.get_by_role("button", name="Mutual connections (1)")
    expect(mutual).to_have_attribute("aria-expanded", "false")
    mutual.click()
    expect(mutual).to_have_attribute("aria-expanded", "true")
    expect(sam.get_by_test_id("match-mutual-name")).to_have_text(["Molly Mutual"])
    page.screenshot(path="/tmp/ui-feed-mutual.png", full_page=True)
    mutual.click()
    expect(sam.get_by_test_id("match-mutual-panel")).to_be_hidden()
    card(page, "Guest 20").get_by_test_id("match-mutual").click()
    expect(card(page, "Guest 20").get_by_test_id("match-mutual-none")).to_have_text(
        "You and Guest 20 have no connections in common yet."
    )
    card(page, "Guest 07").get_by_test_id("match-mutual").click()
    expect(card(page, "Guest 07").get_by_test_id("match-mutual-hidden")).to_have_text(
        "Guest 07 keeps their connections private."
    )
    card(page, "Guest 06").get_by_test_id("match-mutual").click()
    expect(card(page, "Guest 06").get_by_test_id("match-mutual-hidden")).to_have_text(
        "Guest 06 shows their connections only to their own connections."
    )

    # Follow all of Sam's connections: Cora is new, Molly is followed already, the private and
    # the connections-only member stay out.
    sam.get_by_role("button", name="Follow all of Sam Summit’s connections").click()
    result = sam.get_by_test_id("match-follow-result")
    expect(result).to_have_text("Followed 1 · 1 already · 2 hidden by privacy")
    expect(result).to_have_attribute("role", "status")
    followed = set(Follow.objects.filter(follower=world.mia).values_list("followee__username", flat=True))
    assert followed == {"molly", "cora"}
    sam.get_by_test_id("match-follow-all").click()
    expect(result).to_have_text("Followed 0 · 2 already · 2 hidden by privacy")

    # Pat has not answered: Mia's yes leaves the match pending, waiting for Pat.
    page.get_by_label("Source").select_option("proposal")
    ready(page)
    pat = card(page, "Pat Proposal")
    pat.get_by_test_id("match-accept").click()
    expect(pat.get_by_test_id("match-my-decision")).to_have_text("Accepted")
    expect(pat.get_by_test_id("match-status")).to_have_text("Pending")
    expect(pat.get_by_test_id("match-waiting")).to_have_text("You accepted; waiting for Pat Proposal to answer.")
    expect(pat.get_by_test_id("match-time-left")).to_have_text(SEVEN_DAYS_LEFT)
    expect(pat.get_by_test_id("match-conversation")).to_be_visible()
    expect(pat.get_by_test_id("match-accept")).to_have_count(0)

    # Turning a guest down closes the match and its conversation link.
    page.get_by_test_id("filter-reset").click()
    ready(page)
    guest = card(page, "Guest 20")
    guest.get_by_role("button", name="Reject the match with Guest 20").click()
    expect(guest.get_by_test_id("match-status")).to_have_text("Turned down")
    expect(guest.get_by_test_id("match-conversation")).to_have_count(0)
    expect(guest.get_by_test_id("match-time-left")).to_have_count(0)

    # The new states are the server's: a reload shows them, and the accepted filter finds Olive.
    page.get_by_label("Accepted", exact=True).check()
    ready(page)
    expect(names(page)).to_have_text(["Molly Mutual", "Sam Summit", "Olive Open"])
    page.get_by_label("Accepted", exact=True).uncheck()
    page.get_by_label("Turned down", exact=True).check()
    ready(page)
    expect(names(page)).to_have_text(["Rex Rejected", "Guest 20"])


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_errors_from_the_api_show_in_an_alert_and_the_page_recovers(world, page, new_context):
    sign_in(page)
    ready(page)
    alert = page.get_by_test_id("matches-error")

    # Bad values in the query string are the API's to refuse; the page shows its message.
    for query, message in [
        ("min_compatibility=2", "min_compatibility is a number from 0 to 1."),
        ("sort=sideways", "sort is one of newest, compatibility, expiring_soon."),
        ("event=999999", "There is no such event."),
        ("cursor=not-a-cursor", "This cursor is not one the feed gave out; start again without it."),
    ]:
        page.goto(f"/matches?{query}")
        expect(alert).to_have_text(message)
        expect(alert).to_have_attribute("role", "alert")
        expect(page.locator("#matches-app")).to_have_attribute("data-state", "error")
        expect(page.get_by_test_id("match-list")).to_be_hidden()
    page.screenshot(path="/tmp/ui-feed-error.png", full_page=True)
    page.get_by_test_id("matches-first-page").click()
    ready(page)
    expect(rows(page)).to_have_count(20)
    page.goto("/matches?min_compatibility=2")
    expect(alert).to_be_visible()
    page.get_by_test_id("matches-error-reset").click()
    ready(page)
    expect(page).to_have_url(re.compile(r"/matches$"))
    expect(alert).to_be_hidden()
    expect(rows(page)).to_have_count(20)

    # A percentage out of range is caught on the page, before any request.
    minimum = page.get_by_label("Minimum compatibility (%)")
    minimum.fill("150")
    minimum.press("Enter")
    expect(page.get_by_test_id("filter-min-error")).to_have_text("Enter a percentage from 0 to 100, or leave it empty.")
    expect(minimum).to_have_attribute("aria-invalid", "true")
    expect(page).to_have_url(re.compile(r"/matches$"))

    # Filters nothing fits: a calm empty state with a way back.
    minimum.fill("99")
    minimum.press("Enter")
    ready(page)
    empty = page.get_by_test_id("matches-empty")
    expect(empty).to_be_visible()
    expect(empty.get_by_role("heading")).to_have_text("No matches fit these filters")
    expect(minimum).not_to_have_attribute("aria-invalid", "true")
    empty.get_by_role("button", name="Reset filters").click()
    ready(page)
    expect(rows(page)).to_have_count(20)

    # The deadline passes while the page is open: accepting answers 409, the card says why
    # and shows the match as it now is.
    ella = card(page, "Ella Early")
    expect(ella.get_by_test_id("match-accept")).to_be_visible()
    past = timezone.now() - timedelta(seconds=1)
    Match.objects.filter(pk=world.ella.pk).update(expires_at=past)
    FeedItem.objects.filter(match=world.ella).update(expires_at=past)
    ella.get_by_test_id("match-accept").click()
    expect(ella.get_by_test_id("match-error")).to_have_text("This match is expired and can no longer change.")
    expect(ella.get_by_test_id("match-status")).to_have_text("Expired")
    expect(ella.get_by_test_id("match-accept")).to_have_count(0)
    expect(ella.get_by_test_id("match-time-left")).to_have_count(0)

    # A member with no matches at all gets the plain empty state.
    member_create(username="newbie", password=PASSWORD, display_name="New Bie")
    fresh = new_context().new_page()
    sign_in(fresh, "newbie")
    ready(fresh)
    expect(fresh.get_by_test_id("matches-empty").get_by_role("heading")).to_have_text("No matches yet")
    expect(fresh.get_by_test_id("matches-empty-reset")).to_be_hidden()
    expect(fresh.get_by_test_id("matches-pager")).to_be_hidden()
