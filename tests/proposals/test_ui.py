"""The member pages in a real browser (Debian's chromium, driven by Playwright).

No Celery worker or beat runs here: where the loop needs its sweepers the test plays beat
itself (``proposal_queue_refill`` + ``proposals_open``), between two votes.
"""

from __future__ import annotations

import math
import random
import re

import pytest
from django.test import Client
from eth_account import Account
from eth_account.messages import encode_defunct
from playwright.sync_api import Page, expect

from proposals.identity.services import member_create
from proposals.invariants import proposals_healthy
from proposals.models import Match, Profile, Proposal, ProposalStatus, ProposalVoter, Vote
from proposals.vocab import INTERESTS
from proposals.voting.services import proposal_queue_refill, proposals_open, vote_cast
from tests.support.ui import sign_in_form

PASSWORD = "correct horse battery staple"

FIRST = ["Ada", "Grace", "Alan", "Katherine", "Linus", "Margaret", "Tim", "Radia", "Ken", "Barbara", "Dennis",
         "Frances", "Edsger", "Hedy", "John", "Shafi", "Leslie", "Sophie", "Donald", "Evelyn"]  # fmt: skip
LAST = ["Lovelace", "Hopper", "Turing", "Johnson", "Torvalds", "Hamilton", "Berners-Lee", "Perlman", "Thompson",
        "Liskov", "Ritchie", "Allen", "Dijkstra", "Lamarr", "McCarthy", "Goldwasser", "Lamport", "Wilson"]  # fmt: skip
BIOS = [
    "Building tools for small teams. Happy to swap notes on hiring and shipping early.",
    "Former teacher, now product lead at a seed-stage startup. I like long walks and short meetings.",
    "Hardware tinkerer and weekend climber. Looking for people who ship physical things.",
    "Angel investor with an engineering past; I read every pitch deck to the end.",
    "Designer who writes code. Currently obsessed with onboarding flows.",
    "Researcher turned founder, working on open data for cities.",
]


@pytest.fixture
def ui_loop_settings(settings):
    """A busier loop than the shared loop_settings: enough open work for twenty votes in a row."""
    settings.PROPOSALS_VOTERS_PER_PROPOSAL = 5
    settings.PROPOSALS_APPROVE_THRESHOLD = 3
    settings.PROPOSALS_QUEUE_LOW = 10
    settings.PROPOSALS_QUEUE_HIGH = 15
    settings.PROPOSALS_VOTING_LOW = 4
    settings.PROPOSALS_VOTING_HIGH = 6
    return settings


def community(*, size: int, seed: int = 7) -> list:
    """Members with names, bios and overlapping interests; every tenth keeps a private profile."""
    rng = random.Random(seed)
    return [
        member_create(
            username=f"member{i:03d}",
            display_name=f"{FIRST[i % len(FIRST)]} {LAST[(i * 7) % len(LAST)]}",
            bio=rng.choice(BIOS),
            interests=rng.sample(INTERESTS, rng.randint(2, 5)),
            privacy=Profile.Privacy.PRIVATE if i % 10 == 9 else Profile.Privacy.PUBLIC,
        )
        for i in range(size)
    ]


def beat() -> None:
    """What celery beat does every few seconds for the proposals loop."""
    proposal_queue_refill()
    proposals_open()


def sign_in(page: Page, username: str, password: str = PASSWORD, *, next_path: str | None = None) -> None:
    sign_in_form(page, username, password, next_path=next_path)


# Records whether the "no proposals" panel was ever shown, however briefly.
WATCH_NO_PROPOSALS = """
window.__sawNoProposals = false;
document.addEventListener("DOMContentLoaded", function () {
  var panel = document.querySelector('[data-testid="no-proposals"]');
  if (!panel) return;
  new MutationObserver(function () {
    if (!panel.hidden) window.__sawNoProposals = true;
  }).observe(panel, { attributes: true, attributeFilter: ["hidden"] });
});
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_member_signs_in_and_votes_twenty_times_in_a_row_without_ever_running_out(ui_loop_settings, page):
    voter = member_create(username="voter", password=PASSWORD, display_name="Val Voter", interests=["ai", "music"])
    # Enough members that beat can keep the queue above its low mark for the whole session:
    # every proposal opened for the voter keeps its pair busy until it is decided.
    community(size=90)
    proposal_queue_refill()
    proposals_open()
    proposal_queue_refill()
    assert proposals_healthy()

    page.add_init_script(WATCH_NO_PROPOSALS)
    sign_in(page, "voter", next_path="/vote")
    expect(page).to_have_url(re.compile(r"/vote$"))
    expect(page.get_by_role("link", name="Vote")).to_have_attribute("aria-current", "page")

    card = page.get_by_test_id("proposal-card")
    none = page.get_by_test_id("no-proposals")
    counter = page.get_by_test_id("votes-cast")
    expect(card).to_be_visible()
    expect(counter).to_have_text("0")

    seen: list[str] = []
    for i in range(20):
        beat()
        assert proposals_healthy(), f"the loop is unhealthy before vote {i + 1}"
        proposal_id = card.get_attribute("data-proposal-id")
        assert proposal_id and proposal_id not in seen
        seen.append(proposal_id)

        # The card shows the proposal the voter is assigned to, as the API describes it.
        proposal = Proposal.objects.select_related("member_a__profile", "member_b__profile").get(public_id=proposal_id)
        assert proposal.status == ProposalStatus.VOTING
        assert ProposalVoter.objects.filter(proposal=proposal, voter=voter, voted=False).exists()
        people = page.get_by_test_id("member")
        expect(people).to_have_count(2)
        for k, member in enumerate((proposal.member_a, proposal.member_b)):
            person, profile = people.nth(k), member.profile
            expect(person.get_by_test_id("member-name")).to_have_text(profile.display_name)
            if profile.privacy == Profile.Privacy.PRIVATE:
                expect(person.get_by_test_id("member-private")).to_be_visible()
                expect(person.get_by_test_id("member-interests")).to_be_hidden()
                expect(person.get_by_test_id("member-bio")).not_to_contain_text(profile.bio)
            else:
                expect(person.get_by_test_id("member-private")).to_be_hidden()
                expect(person.get_by_test_id("member-interests").locator("li")).to_have_text(profile.interests)
                expect(person.get_by_test_id("member-bio")).to_have_text(profile.bio)
        # Rounded half up, as the page's Math.round does.
        expect(page.get_by_test_id("compatibility")).to_have_text(f"{math.floor(proposal.compatibility * 100 + 0.5)}%")
        expect(page.get_by_test_id("time-left")).to_have_text(re.compile(r"^(\d+:)?\d{1,2}:\d{2}$"))
        if i == 3:
            page.screenshot(path="/tmp/ui-vote.png", full_page=True)

        page.get_by_test_id("vote-yes" if i % 2 == 0 else "vote-no").click()

        expect(counter).to_have_text(str(i + 1))
        expect(card).not_to_have_attribute("data-proposal-id", proposal_id)
        expect(card).to_be_visible()
        expect(none).to_be_hidden()
        expect(page.get_by_test_id("vote-error-box")).to_be_hidden()

    assert page.evaluate("window.__sawNoProposals") is False
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path="/tmp/ui-vote-mobile.png", full_page=True)
    expect(counter).to_have_text("20")
    votes = Vote.objects.filter(voter=voter)
    assert votes.count() == 20
    assert {str(pid) for pid in votes.values_list("proposal__public_id", flat=True)} == set(seen)
    assert votes.filter(choice=Vote.Choice.YES).count() == 10
    assert votes.filter(choice=Vote.Choice.NO).count() == 10


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_with_nothing_to_vote_on_the_page_says_so_calmly_and_checking_again_finds_new_work(ui_loop_settings, page):
    # A community of one: there is no pair to propose, so not even the on-demand opening helps.
    member_create(username="voter", password=PASSWORD, display_name="Val Voter", interests=["ai"])
    sign_in(page, "voter", next_path="/vote")

    none = page.get_by_test_id("no-proposals")
    expect(none).to_be_visible()
    expect(none.get_by_role("heading")).to_have_text("No proposals right now")
    expect(page.get_by_test_id("proposal-card")).to_be_hidden()
    expect(page.get_by_test_id("vote-error-box")).to_be_hidden()
    page.screenshot(path="/tmp/ui-vote-empty.png", full_page=True)

    community(size=12)
    beat()
    none.get_by_role("button", name="Check again").click()
    expect(page.get_by_test_id("proposal-card")).to_be_visible()
    expect(none).to_be_hidden()
    expect(page.get_by_test_id("member-name")).to_have_count(2)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_signing_in_refuses_a_bad_password_inline_and_the_vote_page_needs_a_session(page):
    member_create(username="grace", password=PASSWORD, display_name="Grace Hopper", interests=["ai"])

    page.goto("/vote")
    expect(page).to_have_url(re.compile(r"/signin\?next=/vote$"))
    # No wallet in this browser: the Ethereum button is there but off, and says why.
    expect(page.get_by_test_id("siwe-button")).to_be_disabled()
    expect(page.get_by_test_id("siwe-note")).to_contain_text("No Ethereum wallet was found")

    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password", exact=True).fill("not her password")
    page.get_by_test_id("signin-submit").click()
    error = page.get_by_test_id("signin-error")
    expect(error).to_have_text("That username and password do not match. Check them and try again.")
    expect(error).to_have_attribute("role", "alert")
    expect(page).to_have_url(re.compile(r"/signin$"))
    expect(page.get_by_label("Username")).to_have_value("grace")
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    expect(page.get_by_label("Password", exact=True)).to_have_attribute("aria-invalid", "true")
    page.screenshot(path="/tmp/ui-signin.png", full_page=True)
    page.goto("/vote")
    expect(page).to_have_url(re.compile(r"/signin\?next=/vote$"))  # still signed out

    # The right password, and `next` takes the member where they were going.
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_test_id("signin-submit").click()
    expect(page).to_have_url(re.compile(r"/vote$"))

    # Signing out is a POST from the nav; afterwards the pages need a session again.
    page.get_by_test_id("nav-signout").click()
    expect(page).to_have_url(re.compile(r"/signin$"))
    expect(page.get_by_role("status")).to_contain_text("You are signed out.")
    page.goto("/matches")
    expect(page).to_have_url(re.compile(r"/signin\?next=/matches$"))

    # `next` is honoured only for a path on this site.
    for hostile in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        sign_in(page, "grace", next_path=hostile)
        expect(page).to_have_url(re.compile(r"^http://localhost:\d+/vote$"))
        page.get_by_test_id("nav-signout").click()
        expect(page).to_have_url(re.compile(r"/signin$"))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_matched_members_talk_in_their_conversation_until_one_rejects_the_match(settings, new_context):
    settings.PROPOSALS_VOTERS_PER_PROPOSAL = 5
    settings.PROPOSALS_APPROVE_THRESHOLD = 3
    settings.PROPOSALS_QUEUE_LOW = settings.PROPOSALS_QUEUE_HIGH = 1
    settings.PROPOSALS_VOTING_LOW = settings.PROPOSALS_VOTING_HIGH = 1
    shared = ["ai", "robotics", "open-source"]
    ada = member_create(
        username="ada",
        password=PASSWORD,
        display_name="Ada Lovelace",
        interests=shared,
        bio="Analytical engines, poetry.",
    )
    bob = member_create(
        username="bob", password=PASSWORD, display_name="Bob Babbage", interests=shared, bio="Difference engines."
    )
    voters = [member_create(username=f"v{i}", interests=[f]) for i, f in enumerate(["music", "film", "food", "art"])]
    voters.append(member_create(username="eve", password=PASSWORD, interests=["travel"]))

    # Ada and Bob share every interest, so the loop proposes them first; three voters say yes.
    assert proposal_queue_refill() == 1
    assert proposals_open() == 1
    proposal = Proposal.objects.get(status=ProposalStatus.VOTING)
    assert {proposal.member_a_id, proposal.member_b_id} == {ada.pk, bob.pk}
    for voter in voters[:3]:
        vote_cast(user=voter, proposal_id=proposal.public_id, choice="yes")
    match = Match.objects.select_related("conversation").get(proposal=proposal)
    conversation_path = f"/conversations/{match.conversation.public_id}"

    # Ada finds the match on her matches page, accepts it, and opens the conversation.
    page_a = new_context().new_page()
    sign_in(page_a, "ada", next_path="/matches")
    row = page_a.get_by_test_id("match-row")
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("match-name")).to_have_text("Bob Babbage")
    expect(row.get_by_test_id("match-status")).to_have_text("Pending")
    expect(row.get_by_test_id("match-source")).to_have_text("Community proposal")
    expect(row.get_by_test_id("match-time-left")).to_have_text(re.compile(r"^[67] d \d{1,2} h left$"))
    expect(row.get_by_test_id("match-my-decision")).to_have_text("Not answered")
    row.get_by_test_id("match-accept").click()
    expect(row.get_by_test_id("match-my-decision")).to_have_text("Accepted")
    expect(row.get_by_test_id("match-accept")).to_have_count(0)
    expect(row.get_by_test_id("match-waiting")).to_have_text("You accepted; waiting for Bob Babbage to answer.")
    page_a.screenshot(path="/tmp/ui-matches.png", full_page=True)
    row.get_by_test_id("match-conversation").click()
    expect(page_a).to_have_url(re.compile(re.escape(conversation_path) + "$"))
    expect(page_a.get_by_test_id("conversation-with")).to_have_text("Bob Babbage")
    expect(page_a.get_by_test_id("messages-empty")).to_be_visible()

    # Bob, in a browser of his own, opens the same conversation.
    context_b = new_context()
    page_b = context_b.new_page()
    sign_in(page_b, "bob", next_path=conversation_path)
    expect(page_b).to_have_url(re.compile(re.escape(conversation_path) + "$"))
    expect(page_b.get_by_test_id("conversation-with")).to_have_text("Ada Lovelace")

    page_a.get_by_label("Your message").fill("Hello Bob! Shall we talk about engines?")
    page_a.get_by_test_id("message-send").click()
    expect(page_a.get_by_test_id("message")).to_have_count(1)
    expect(page_a.get_by_label("Your message")).to_have_value("")
    seen_by_bob = page_b.get_by_test_id("message")
    expect(seen_by_bob).to_have_count(1)
    expect(seen_by_bob.get_by_test_id("message-text")).to_have_text("Hello Bob! Shall we talk about engines?")
    expect(seen_by_bob).to_contain_text("Ada Lovelace")

    page_b.get_by_label("Your message").fill("Gladly, Ada.\nDifference or analytical?")
    page_b.get_by_label("Your message").press("Enter")
    expect(page_a.get_by_test_id("message")).to_have_count(2)
    expect(page_a.get_by_test_id("message").nth(1).get_by_test_id("message-text")).to_have_text(
        "Gladly, Ada.\nDifference or analytical?"
    )
    expect(page_a.get_by_test_id("message").nth(0)).to_have_class(re.compile(r"\bmessage--mine\b"))
    page_a.screenshot(path="/tmp/ui-conversation.png", full_page=True)
    page_a.emulate_media(color_scheme="dark")
    page_a.screenshot(path="/tmp/ui-conversation-dark.png", full_page=True)
    page_a.emulate_media(color_scheme="light")

    # Someone else cannot even see that the conversation exists.
    eve = Client()
    eve.force_login(voters[-1])
    assert eve.get(conversation_path).status_code == 404
    assert eve.get("/conversations/not-a-uuid").status_code == 404
    anonymous = Client().get(conversation_path)
    assert anonymous.status_code == 302
    assert anonymous["Location"] == f"/signin?next={conversation_path}"

    # Bob turns the match down from his matches page: both conversation pages close.
    page_b2 = context_b.new_page()
    page_b2.goto("/matches")
    row_b = page_b2.get_by_test_id("match-row")
    row_b.get_by_test_id("match-reject").click()
    expect(row_b.get_by_test_id("match-status")).to_have_text("Turned down")
    expect(row_b.get_by_test_id("match-their-decision")).to_have_text("Accepted")
    expect(row_b.get_by_test_id("match-my-decision")).to_have_text("Turned down")
    expect(row_b.get_by_test_id("match-conversation")).to_have_count(0)  # a turned-down match has none
    for viewer in (page_a, page_b):
        expect(viewer.get_by_test_id("conversation-closed")).to_be_visible()
        expect(viewer.get_by_label("Your message")).to_be_disabled()
        expect(viewer.get_by_test_id("message-send")).to_be_disabled()
    page_a.reload()
    expect(page_a.get_by_label("Your message")).to_be_disabled()
    expect(page_a.get_by_test_id("message")).to_have_count(2)
    match.refresh_from_db()
    assert match.status == Match.Status.REJECTED
    page_a.screenshot(path="/tmp/ui-conversation-closed.png", full_page=True)


# A stand-in for a wallet extension: the page sees window.ethereum; signing happens in Python.
FAKE_WALLET = """
window.__walletReject = true;
window.ethereum = {
  request: async function ({ method, params }) {
    if (method === "eth_requestAccounts") return [ADDRESS];
    if (method === "eth_chainId") return "0x1";
    if (method === "personal_sign") {
      if (window.__walletReject) {
        window.__walletReject = false;
        throw Object.assign(new Error("User rejected the request."), { code: 4001 });
      }
      return window.__walletSign(params[0], params[1]);
    }
    throw Object.assign(new Error("Unsupported method " + method), { code: 4200 });
  },
};
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_member_signs_in_with_an_ethereum_wallet(page, live_server):
    account = Account.from_key("0x" + "4c" * 32)
    signed: list[str] = []

    def wallet_sign(message_hex: str, address: str) -> str:
        message = bytes.fromhex(message_hex.removeprefix("0x")).decode()
        signed.append(message)
        assert address == account.address
        return "0x" + bytes(account.sign_message(encode_defunct(text=message)).signature).hex()

    page.expose_function("__walletSign", wallet_sign)
    # Wallets hand out lower-case addresses; the page must put the checksummed one in the message.
    page.add_init_script(FAKE_WALLET.replace("ADDRESS", f'"{account.address.lower()}"'))
    page.goto("/signin?next=/matches")
    button = page.get_by_test_id("siwe-button")
    expect(button).to_be_enabled()

    button.click()  # the wallet refuses the first time
    expect(page.get_by_test_id("siwe-error")).to_have_text(
        "You cancelled the request in your wallet. Nothing was signed."
    )
    expect(page).to_have_url(re.compile(r"/signin\?next=/matches$"))

    button.click()
    expect(page).to_have_url(re.compile(r"/matches$"))
    expect(page.get_by_test_id("matches-empty")).to_be_visible()

    profile = Profile.objects.get(wallet_address=account.address)
    assert profile.wallet_verified_at is not None
    (message,) = signed
    host = live_server.url.removeprefix("http://")
    lines = message.split("\n")
    assert lines[0] == f"{host} wants you to sign in with your Ethereum account:"
    assert lines[1] == account.address
    assert f"URI: {live_server.url}" in lines
    assert "Version: 1" in lines
    assert "Chain ID: 1" in lines
    assert any(re.fullmatch(r"Nonce: [A-Za-z0-9]{8,}", line) for line in lines)
    assert any(re.fullmatch(r"Issued At: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line) for line in lines)


# --- the pages' server side, without a browser ---------------------------------------------
@pytest.mark.django_db
def test_the_sign_in_form_needs_its_csrf_token():
    member_create(username="grace", password=PASSWORD)
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/signin", {"username": "grace", "password": PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in strict.session


@pytest.mark.django_db
def test_password_guessing_is_slowed_down_per_client_even_for_the_right_password(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    member_create(username="grace", password=PASSWORD)
    for _ in range(2):
        assert client.post("/signin", {"username": "grace", "password": "guess"}).status_code == 400
    assert client.post("/signin", {"username": "grace", "password": "guess"}).status_code == 429  # the third locks out
    refused = client.post("/signin", {"username": "grace", "password": PASSWORD})
    assert refused.status_code == 429
    assert b"Too many failed attempts" in refused.content
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_signing_out_takes_a_post(client):
    user = member_create(username="grace", password=PASSWORD)
    client.force_login(user)
    assert client.get("/signout").status_code == 200  # a page that asks, not a sign-out
    assert client.session.get("_auth_user_id") == str(user.pk)
    response = client.post("/signout")
    assert response.status_code == 302
    assert response["Location"] == "/signin"
    assert "_auth_user_id" not in client.session
