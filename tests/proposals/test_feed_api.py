"""The matches feed API: filters, sorts, the cursor, bad parameters, answers, mutual
connections and follow-all, privacy, and a constant number of queries per page."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from proposals.identity.services import member_create
from proposals.matches.cursor import Cursor
from proposals.matches.services import event_match_create, matches_expire
from proposals.models import FeedItem, Follow, Match
from tests.factories import EventFactory

pytestmark = pytest.mark.django_db

FEED = "/api/matches/"


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def make_event(name="Demo day"):
    return EventFactory(name=name)


def set_match(match, *, status=None, created_ago=None, expires_in=None):
    """Place a match in time or close it, on the match and both feed rows alike."""
    now = timezone.now()
    fields, feed = {}, {}
    if status is not None:
        fields["status"] = feed["status"] = status
        if status != "pending":
            fields["decided_at"] = now
    if created_ago is not None:
        fields["created_at"] = feed["created_at"] = now - created_ago
    if expires_in is not None:
        fields["expires_at"] = feed["expires_at"] = now + expires_in
    Match.objects.filter(pk=match.pk).update(**fields)
    FeedItem.objects.filter(match=match).update(**feed)
    match.refresh_from_db()
    return match


def connect(a, b, event):
    """An accepted match between a and b (a connection)."""
    return set_match(event_match_create(event=event, member_a=a, member_b=b, compatibility=0.5), status="accepted")


@pytest.fixture
def me():
    return member_create(username="me", display_name="Me")


@pytest.fixture
def feed_world(me):
    """Me with 12 matches of known compatibility, age, deadline and status, some from an
    event; plus a stranger with a match of their own."""
    event, other_event = make_event("Demo day"), make_event("Meetup")
    others = [member_create(username=f"o{i:02d}", display_name=f"Other {i}") for i in range(12)]
    matches = []
    for i, other in enumerate(others):
        ev = event if i % 3 == 0 else other_event
        m = event_match_create(event=ev, member_a=me, member_b=other, compatibility=round(0.05 + i * 0.08, 2))
        matches.append(set_match(m, created_ago=timedelta(hours=i + 1), expires_in=timedelta(hours=24 + 5 * i)))
    # statuses: 0-4 pending (open), 5 pending but past its deadline, 6-7 accepted, 8-9 rejected, 10-11 expired
    set_match(matches[5], expires_in=-timedelta(minutes=2))
    for i in (6, 7):
        set_match(matches[i], status="accepted")
    for i in (8, 9):
        set_match(matches[i], status="rejected")
    for i in (10, 11):
        set_match(matches[i], status="expired", expires_in=-timedelta(hours=i))
    a, b = member_create(username="x1"), member_create(username="x2")
    stranger_match = event_match_create(event=event, member_a=a, member_b=b, compatibility=0.9)
    return {
        "me": me,
        "others": others,
        "matches": matches,
        "event": event,
        "other_event": other_event,
        "stranger": a,
        "stranger_match": stranger_match,
    }


def ids(response):
    assert response.status_code == 200, response.content
    return [item["match_id"] for item in response.json()["results"]]


def pub(*matches):
    return [str(m.public_id) for m in matches]


def walk(client, params, page_size=3):
    seen, cursor = [], None
    for _ in range(50):
        query = {**params, "page_size": page_size}
        if cursor:
            query["cursor"] = cursor
        body = client.get(FEED, query).json()
        seen += [item["match_id"] for item in body["results"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the cursor never ran out")


# -- only mine ---------------------------------------------------------------------------------
def test_the_feed_holds_only_the_members_own_matches(feed_world):
    mine = ids(client_for(feed_world["me"]).get(FEED, {"page_size": 100}))
    assert sorted(mine) == sorted(pub(*feed_world["matches"]))
    assert str(feed_world["stranger_match"].public_id) not in mine
    other = feed_world["others"][0]
    assert ids(client_for(other).get(FEED)) == pub(feed_world["matches"][0])


def test_another_members_match_answers_404_everywhere(feed_world):
    client = client_for(feed_world["me"])
    m = feed_world["stranger_match"].public_id
    for method, url in [
        ("get", f"/api/matches/{m}/"),
        ("post", f"/api/matches/{m}/accept"),
        ("post", f"/api/matches/{m}/reject"),
        ("post", f"/api/matches/{m}/follow-all"),
        ("get", "/api/matches/not-a-uuid/"),
        ("post", "/api/matches/00000000-0000-0000-0000-000000000000/accept"),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code == 404, (url, response.status_code)
        assert response.json()["error"]["code"] in ("match_not_found", "not_found")
    assert Match.objects.get(pk=feed_world["stranger_match"].pk).decision_a == ""


# -- filters ---------------------------------------------------------------------------------
def test_status_filter_each_and_several(feed_world):
    m = feed_world["matches"]
    client = client_for(feed_world["me"])
    by_status = {
        "pending": pub(*m[0:5]),
        "accepted": pub(m[6], m[7]),
        "rejected": pub(m[8], m[9]),
        # the one past its deadline is expired before the sweep reaches it
        "expired": pub(m[5], m[10], m[11]),
    }
    for status, expected in by_status.items():
        got = ids(client.get(FEED, {"status": status, "page_size": 100}))
        assert sorted(got) == sorted(expected), status
        items = client.get(FEED, {"status": status, "page_size": 100}).json()["results"]
        assert {item["status"] for item in items} == {status}
    several = ids(client.get(FEED, {"status": "accepted,rejected", "page_size": 100}))
    assert sorted(several) == sorted(by_status["accepted"] + by_status["rejected"])
    repeated = ids(client.get(f"{FEED}?status=accepted&status=expired&page_size=100"))
    assert sorted(repeated) == sorted(by_status["accepted"] + by_status["expired"])


def test_no_pending_match_past_its_deadline_is_ever_shown_as_pending(feed_world):
    items = client_for(feed_world["me"]).get(FEED, {"page_size": 100}).json()["results"]
    now = timezone.now()
    for item in items:
        if item["status"] == "pending":
            assert datetime.fromisoformat(item["expires_at"]) > now and item["seconds_left"] > 0
        else:
            assert item["seconds_left"] is None
    overdue = next(i for i in items if i["match_id"] == str(feed_world["matches"][5].public_id))
    assert overdue["status"] == "expired"


def test_event_source_and_min_compatibility_filters(feed_world):
    m, client = feed_world["matches"], client_for(feed_world["me"])
    at_event = ids(client.get(FEED, {"event": feed_world["event"].pk, "page_size": 100}))
    assert sorted(at_event) == sorted(pub(*[m[i] for i in range(0, 12, 3)]))
    assert ids(client.get(FEED, {"source": "proposal"})) == []
    assert len(ids(client.get(FEED, {"source": "event", "page_size": 100}))) == 12
    high = client.get(FEED, {"min_compatibility": "0.6", "page_size": 100}).json()["results"]
    assert sorted(i["match_id"] for i in high) == sorted(pub(*[x for x in m if x.compatibility_score >= 0.6]))
    assert all(i["compatibility"] >= 0.6 for i in high) and high
    both = ids(client.get(FEED, {"event": feed_world["event"].pk, "status": "pending", "min_compatibility": "0.2"}))
    assert sorted(both) == sorted(pub(m[3]))


def test_event_and_proposal_items_say_where_they_came_from(feed_world, members, loop_settings):
    from proposals.models import ProposalVoter
    from proposals.voting.services import proposal_queue_refill, proposals_open, vote_cast

    proposal_queue_refill()
    proposals_open()
    assignment = ProposalVoter.objects.select_related("proposal").order_by("id")[0]
    for a in ProposalVoter.objects.filter(proposal=assignment.proposal)[:3]:
        vote_cast(user=a.voter, proposal_id=assignment.proposal.public_id, choice="yes")
    match = Match.objects.get(proposal=assignment.proposal)
    assert match.source == "proposal" and match.compatibility_score == pytest.approx(assignment.proposal.compatibility)
    item = client_for(match.member_a).get(FEED, {"source": "proposal"}).json()["results"][0]
    assert item["source"] == "proposal" and item["event"] is None
    assert FeedItem.objects.filter(match=match).count() == 2
    event_item = client_for(feed_world["me"]).get(FEED, {"event": feed_world["event"].pk}).json()["results"][0]
    assert event_item["source"] == "event" and event_item["event"] == {
        "id": feed_world["event"].pk,
        "name": "Demo day",
    }


# -- sorts and the cursor -------------------------------------------------------------------------
def expected_order(world, sort):
    now = timezone.now()
    m = [Match.objects.get(pk=x.pk) for x in world["matches"]]

    def open_(x):
        return x.status == "pending" and x.expires_at > now

    if sort == "newest":
        return pub(*sorted(m, key=lambda x: (x.created_at, x.pk), reverse=True))
    if sort == "compatibility":
        return pub(*sorted(m, key=lambda x: (x.compatibility_score, x.pk), reverse=True))
    first = sorted([x for x in m if open_(x)], key=lambda x: (x.expires_at, x.pk))
    rest = sorted([x for x in m if not open_(x)], key=lambda x: (x.created_at, x.pk), reverse=True)
    return pub(*first, *rest)


@pytest.mark.parametrize("sort", ["newest", "compatibility", "expiring_soon"])
@pytest.mark.parametrize("page_size", [1, 2, 5, 100])
def test_each_sort_orders_and_the_cursor_walks_every_item_once(feed_world, sort, page_size):
    client = client_for(feed_world["me"])
    params = {} if sort == "newest" else {"sort": sort}
    assert walk(client, params, page_size=page_size) == expected_order(feed_world, sort)


def test_newest_is_the_default_sort_and_20_the_default_page(me):
    event = make_event()
    for i in range(23):
        event_match_create(event=event, member_a=me, member_b=member_create(username=f"d{i}"), compatibility=0.5)
    body = client_for(me).get(FEED).json()
    assert body["sort"] == "newest" and body["page_size"] == 20 and len(body["results"]) == 20
    assert body["next_cursor"]
    rest = client_for(me).get(FEED, {"cursor": body["next_cursor"]}).json()
    assert len(rest["results"]) == 3 and rest["next_cursor"] is None
    assert len(client_for(me).get(FEED, {"page_size": 100}).json()["results"]) == 23


def test_expiring_soon_puts_open_pending_first_by_deadline(feed_world):
    items = client_for(feed_world["me"]).get(FEED, {"sort": "expiring_soon", "page_size": 100}).json()["results"]
    statuses = [i["status"] for i in items]
    assert statuses[:5] == ["pending"] * 5 and "pending" not in statuses[5:]
    deadlines = [i["expires_at"] for i in items[:5]]
    assert deadlines == sorted(deadlines)
    only_closed = ids(client_for(feed_world["me"]).get(FEED, {"sort": "expiring_soon", "status": "accepted"}))
    assert sorted(only_closed) == sorted(pub(feed_world["matches"][6], feed_world["matches"][7]))


@pytest.mark.parametrize("sort", ["newest", "compatibility", "expiring_soon"])
def test_the_cursor_loses_and_repeats_nothing_while_new_matches_arrive(feed_world, sort):
    """Between every two pages a new match arrives that sorts *first* (newest, most
    compatible, soonest deadline): the items that were there at the start each come once."""
    me, client = feed_world["me"], client_for(feed_world["me"])
    before = expected_order(feed_world, sort)
    seen, cursor, n = [], None, 0
    while True:
        query = {"sort": sort, "page_size": 4, **({"cursor": cursor} if cursor else {})}
        body = client.get(FEED, query).json()
        seen += [i["match_id"] for i in body["results"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        n += 1
        newcomer = event_match_create(
            event=feed_world["event"], member_a=me, member_b=member_create(username=f"new{n}"), compatibility=0.99
        )
        set_match(newcomer, expires_in=timedelta(minutes=5))
    assert n >= 2
    assert len(seen) == len(set(seen)), "an item came twice"
    assert [x for x in seen if x in before] == before, "an item was lost or moved"


def test_expiring_soon_does_not_repeat_a_match_that_expires_while_paging(feed_world):
    client = client_for(feed_world["me"])
    soon = set_match(feed_world["matches"][0], expires_in=timedelta(seconds=1.5))
    first = client.get(FEED, {"sort": "expiring_soon", "page_size": 2}).json()
    shown = [i["match_id"] for i in first["results"]]
    assert shown[0] == str(soon.public_id)
    # it passes its deadline before the member asks for page 2
    time.sleep(max((soon.expires_at - timezone.now()).total_seconds(), 0) + 0.2)
    seen, cursor = list(shown), first["next_cursor"]
    while cursor:
        body = client.get(FEED, {"sort": "expiring_soon", "page_size": 2, "cursor": cursor}).json()
        seen += [i["match_id"] for i in body["results"]]
        cursor = body["next_cursor"]
    assert len(seen) == len(set(seen)) == 12


def test_items_carry_what_the_feed_promises(feed_world):
    item = client_for(feed_world["me"]).get(FEED, {"sort": "expiring_soon", "page_size": 1}).json()["results"][0]
    assert set(item) >= {
        "match_id",
        "status",
        "compatibility",
        "expires_at",
        "seconds_left",
        "event",
        "source",
        "with",
        "mutual_connections",
        "my_decision",
        "their_decision",
        "responded_at",
        "conversation_id",
    }
    assert item["with"]["member_id"] == feed_world["others"][0].pk
    assert 23 * 3600 < item["seconds_left"] <= 24 * 3600


# -- invalid parameters ------------------------------------------------------------------------------
def _cursor(payload):
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


BAD = [
    ({"status": "open"}, "status", "pending, accepted, rejected, expired"),
    ({"status": "pending,"}, "status", "pending, accepted, rejected, expired"),
    ({"sort": "oldest"}, "sort", "newest, compatibility, expiring_soon"),
    ({"source": "party"}, "source", "proposal, event"),
    ({"event": "abc"}, "event", "positive whole number"),
    ({"event": "0"}, "event", "positive whole number"),
    ({"event": "-3"}, "event", "positive whole number"),
    ({"event": "²"}, "event", "positive whole number"),
    ({"min_compatibility": "2"}, "min_compatibility", "from 0 to 1"),
    ({"min_compatibility": "-0.1"}, "min_compatibility", "from 0 to 1"),
    ({"min_compatibility": "nan"}, "min_compatibility", "from 0 to 1"),
    ({"min_compatibility": "abc"}, "min_compatibility", "from 0 to 1"),
    ({"min_compatibility": "\u0661"}, "min_compatibility", "from 0 to 1"),
    ({"min_compatibility": "inf"}, "min_compatibility", "from 0 to 1"),
    ({"page_size": "0"}, "page_size", "from 1 to 100"),
    ({"page_size": "101"}, "page_size", "from 1 to 100"),
    ({"page_size": "1e2"}, "page_size", "from 1 to 100"),
    ({"page_size": "99999999999999999999"}, "page_size", "from 1 to 100"),
    ({"cursor": "%%%"}, "cursor", "not one the feed gave out"),
    ({"cursor": "bm90IGpzb24"}, "cursor", "not one the feed gave out"),
    ({"cursor": _cursor([1, "newest", 0, "yesterday", 5])}, "cursor", "not one the feed gave out"),
    ({"cursor": _cursor([1, "newest", 0, "2026-01-01T00:00:00", 5])}, "cursor", "not one the feed gave out"),
    ({"cursor": _cursor([1, "newest", 7, "2026-01-01T00:00:00+00:00", 5])}, "cursor", "not one the feed gave out"),
    ({"cursor": _cursor([1, "newest", 0, "2026-01-01T00:00:00+00:00", "5"])}, "cursor", "not one the feed gave out"),
    ({"cursor": _cursor({"a": 1})}, "cursor", "not one the feed gave out"),
    (
        {"cursor": _cursor([1, "newest", 0, "2026-01-01T00:00:00+00:00", 5, "2026-01-01T00:00:00+00:00"])},
        "cursor",
        None,
    ),
    (
        {"sort": "expiring_soon", "cursor": _cursor([1, "expiring_soon", 0, "2026-01-01T00:00:00+00:00", 5])},
        "cursor",
        None,
    ),
    (
        {"sort": "expiring_soon", "cursor": _cursor([1, "expiring_soon", 0, "2026-01-01T00:00:00+00:00", 5, "x"])},
        "cursor",
        None,
    ),
    ({"cursor": _cursor([1, "newest", 0, "99999-01-01T00:00:00+00:00", 5])}, "cursor", None),
    ({"cursor": "A" * 500}, "cursor", "not one the feed gave out"),
    ({"sort": "compatibility", "cursor": _cursor([1, "compatibility", 0, "Infinity", 5])}, "cursor", None),
    (
        {"sort": "compatibility", "cursor": _cursor([1, "newest", 0, "2026-01-01T00:00:00+00:00", 5])},
        "cursor",
        "sort=newest",
    ),
    ({"order": "newest"}, "order", "The feed takes: status, event"),
]


@pytest.mark.parametrize(("params", "parameter", "says"), BAD)
def test_every_invalid_parameter_is_a_400_naming_it(feed_world, params, parameter, says):
    response = client_for(feed_world["me"]).get(FEED, params)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert set(response.json()) == {"error"}
    assert parameter in error["fields"], error
    if says:
        assert says.lower() in error["message"].lower(), error["message"]


def test_an_event_that_does_not_exist_is_a_404_naming_it(feed_world):
    response = client_for(feed_world["me"]).get(FEED, {"event": "999999"})
    assert response.status_code == 404, response.content
    assert response.json()["error"]["fields"] == {"event": ["No such event."]}


def test_a_parameter_given_twice_is_refused(feed_world):
    response = client_for(feed_world["me"]).get(f"{FEED}?sort=newest&sort=compatibility")
    assert response.status_code == 400 and "sort" in response.json()["error"]["fields"]


def test_the_feed_needs_a_signed_in_member(feed_world):
    response = APIClient().get(FEED)
    assert response.status_code == 401 and set(response.json()) == {"error"}


def test_a_cursor_it_gave_out_is_decodable_and_roundtrips():
    from datetime import UTC, datetime

    for sort, key in [("newest", datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)), ("compatibility", 0.1 + 0.2)]:
        cursor = Cursor(sort=sort, segment=0, key=key, id=42)
        assert Cursor.decode(cursor.encode(), sort=sort) == cursor


# -- answering ---------------------------------------------------------------------------------------
def test_accept_then_the_other_accepts_and_a_decided_match_answers_409(feed_world):
    me, other = feed_world["me"], feed_world["others"][0]
    m = feed_world["matches"][0].public_id
    first = client_for(me).post(f"/api/matches/{m}/accept")
    assert first.status_code == 200 and first.json()["status"] == "pending"
    assert first.json()["my_decision"] == "accept" and first.json()["responded_at"] is not None
    second = client_for(other).post(f"/api/matches/{m}/accept").json()
    assert second["status"] == "accepted" and second["their_decision"] == "accept"
    assert set(FeedItem.objects.filter(match__public_id=m).values_list("status", flat=True)) == {"accepted"}
    for who in (me, other):
        for verb in ("accept", "reject"):
            late = client_for(who).post(f"/api/matches/{m}/{verb}")
            assert late.status_code == 409 and late.json()["error"]["code"] == "match_closed"
    assert ids(client_for(me).get(FEED, {"status": "accepted", "page_size": 100})).count(str(m)) == 1


def test_an_answer_is_final_and_the_same_answer_again_changes_nothing(feed_world):
    me = feed_world["me"]
    m = feed_world["matches"][2].public_id
    first = client_for(me).post(f"/api/matches/{m}/accept").json()
    again = client_for(me).post(f"/api/matches/{m}/accept")
    assert again.status_code == 200 and again.json()["responded_at"] == first["responded_at"]
    changed = client_for(me).post(f"/api/matches/{m}/reject")
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "already_answered"
    match = Match.objects.get(public_id=m)
    assert (match.status, match.decision_a) == ("pending", "accept")


def test_reject_closes_the_match_for_both(feed_world):
    me, other = feed_world["me"], feed_world["others"][1]
    m = feed_world["matches"][1].public_id
    assert client_for(other).post(f"/api/matches/{m}/reject").json()["status"] == "rejected"
    assert client_for(me).get(f"/api/matches/{m}/").json()["status"] == "rejected"
    assert client_for(me).post(f"/api/matches/{m}/accept").status_code == 409
    match = Match.objects.get(public_id=m)
    assert match.responded_at_b is not None and match.responded_at_a is None and match.decided_at is not None


def test_a_match_past_its_deadline_answers_409_before_and_after_the_sweep(feed_world):
    m = feed_world["matches"][5]
    client = client_for(feed_world["me"])
    early = client.post(f"/api/matches/{m.public_id}/accept")
    assert early.status_code == 409 and "expired" in early.json()["error"]["message"]
    assert matches_expire() == 1
    assert Match.objects.get(pk=m.pk).status == "expired"
    assert set(FeedItem.objects.filter(match=m).values_list("status", flat=True)) == {"expired"}
    assert client.post(f"/api/matches/{m.public_id}/reject").status_code == 409
    assert matches_expire() == 0


def test_expiry_runs_on_beat_at_least_every_minute(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["proposals.expire_matches"]
    assert entry["task"] == "proposals.expire_matches" and entry["schedule"] <= 60
    from proposals.tasks import expire_matches

    assert expire_matches.name == "proposals.expire_matches"


def test_the_expiry_sweep_expires_more_than_one_batch(me):
    event = make_event()
    made = []
    for i in range(7):
        made.append(
            event_match_create(event=event, member_a=me, member_b=member_create(username=f"e{i}"), compatibility=0.3)
        )
        set_match(made[-1], expires_in=-timedelta(seconds=1))
    assert matches_expire(batch=3) == 7
    assert not FeedItem.objects.filter(status="pending").exists()


# -- connections, privacy, mutual connections, follow-all ----------------------------------------------------
@pytest.fixture
def network(me):
    """me -- friend (accepted). friend's other connections: pub (public), priv (private),
    conn_mine (connections-only, also my connection), conn_theirs (connections-only, not
    mine). I am also connected to pub. A pending match with pend."""
    event = make_event()
    friend = member_create(username="friend", display_name="Friend")
    people = {
        "pub": member_create(username="pub", display_name="Pub", privacy="public"),
        "priv": member_create(username="priv", display_name="Priv", privacy="private"),
        "conn_mine": member_create(username="cm", display_name="Conn mine", privacy="connections"),
        "conn_theirs": member_create(username="ct", display_name="Conn theirs", privacy="connections"),
    }
    accepted = connect(me, friend, event)
    for person in people.values():
        connect(friend, person, event)
    connect(me, people["pub"], event)
    connect(me, people["priv"], event)
    connect(me, people["conn_mine"], event)
    pend = member_create(username="pend", display_name="Pending")
    pending = event_match_create(event=event, member_a=me, member_b=pend, compatibility=0.4)
    return {"me": me, "friend": friend, "accepted": accepted, "pending": pending, "event": event, **people}


def test_mutual_connections_lists_shared_connections_but_never_a_private_one(network):
    body = client_for(network["me"]).get("/api/matches/mutual-connections", {"member": network["friend"].pk}).json()
    names = sorted(p["display_name"] for p in body["results"])
    # shared: pub, priv, conn_mine; priv is private so it is not listed.
    assert names == ["Conn mine", "Pub"] and body["count"] == 2 and body["visible"] is True
    feed_item = client_for(network["me"]).get(f"/api/matches/{network['accepted'].public_id}/").json()
    assert feed_item["mutual_connections"] == 2


def test_mutual_connections_are_hidden_by_the_other_members_privacy(network, me):
    event = network["event"]
    # A private member's connections are hidden even from their connections.
    hermit = member_create(username="hermit", privacy="private")
    connect(me, hermit, event)
    connect(hermit, network["pub"], event)
    body = client_for(me).get("/api/matches/mutual-connections", {"member": hermit.pk}).json()
    assert body == {**body, "visible": False, "count": 0, "results": []}
    assert "bio" not in body["member"]
    # A connections-only member shows them to connections only.
    shy = member_create(username="shy", privacy="connections")
    connect(shy, network["pub"], event)
    pending = event_match_create(event=make_event("Later"), member_a=me, member_b=shy, compatibility=0.3)
    assert client_for(me).get("/api/matches/mutual-connections", {"member": shy.pk}).json()["visible"] is False
    set_match(pending, status="rejected")
    connect(me, shy, event)
    seen = client_for(me).get("/api/matches/mutual-connections", {"member": shy.pk}).json()
    assert seen["visible"] is True and [p["display_name"] for p in seen["results"]] == ["Pub"]
    # and the feed's count agrees with the list
    items = client_for(me).get(FEED, {"page_size": 100}).json()["results"]
    counts = {i["with"]["member_id"]: i["mutual_connections"] for i in items}
    assert counts[hermit.pk] == 0 and counts[shy.pk] == 1


@pytest.mark.parametrize(
    ("member", "status"), [("abc", 400), ("0", 400), ("", 400), (None, 400), ("99999999", 404), (" 1", 400)]
)
def test_mutual_connections_refuses_bad_members(network, member, status):
    query = {} if member is None else {"member": network["me"].pk if member == "self" else member}
    response = client_for(network["me"]).get("/api/matches/mutual-connections", query)
    assert response.status_code == status and set(response.json()) == {"error"}
    if status == 400:
        assert "member" in response.json()["error"]["fields"]


def test_mutual_connections_with_oneself_are_ones_own_connections_but_never_a_private_one(network):
    me = network["me"]
    body = client_for(me).get("/api/matches/mutual-connections", {"member": me.pk})
    assert body.status_code == 200, body.content
    shown = {p["member_id"] for p in body.json()["results"]}
    assert shown == {network["friend"].pk, network["pub"].pk, network["conn_mine"].pk}  # not priv
    assert body.json()["visible"] is True and body.json()["count"] == 3


def test_mutual_connections_of_a_stranger_are_404_unless_they_are_public(network):
    client = client_for(network["me"])
    for privacy in ("private", "connections"):
        stranger = member_create(username=f"s-{privacy}", display_name="Secret Name", privacy=privacy)
        connect(stranger, network["pub"], network["event"])
        response = client.get("/api/matches/mutual-connections", {"member": stranger.pk})
        assert response.status_code == 404 and b"Secret Name" not in response.content
    public = member_create(username="s-public", display_name="Open Book", privacy="public")
    connect(public, network["pub"], network["event"])
    body = client.get("/api/matches/mutual-connections", {"member": public.pk}).json()
    assert body["visible"] is True and [p["display_name"] for p in body["results"]] == ["Pub"]


def test_the_other_members_profile_shows_only_what_their_privacy_allows(network):
    items = client_for(network["me"]).get(FEED, {"page_size": 100}).json()["results"]
    cards = {i["with"]["display_name"]: i["with"] for i in items}
    assert "bio" not in cards["Priv"] and cards["Priv"]["privacy"] == "private"
    assert "interests" in cards["Conn mine"]  # connections-only, and we are connected
    assert "interests" in cards["Pub"]
    stranger = member_create(username="stranger2", display_name="Shy stranger", privacy="connections")
    event_match_create(event=network["event"], member_a=network["me"], member_b=stranger, compatibility=0.2)
    items = client_for(network["me"]).get(FEED, {"page_size": 100}).json()["results"]
    card = next(i["with"] for i in items if i["with"]["display_name"] == "Shy stranger")
    assert "interests" not in card and "bio" not in card  # pending, not connected


def test_follow_all_follows_what_privacy_allows_and_is_safe_to_repeat(network):
    client = client_for(network["me"])
    url = f"/api/matches/{network['accepted'].public_id}/follow-all"
    first = client.post(url)
    assert first.status_code == 200
    # friend's connections besides me: pub, priv, conn_mine, conn_theirs
    assert first.json() == {"followed": 2, "already_followed": 0, "skipped_privacy": 2, "network_visible": True}
    followed = set(Follow.objects.filter(follower=network["me"]).values_list("followee__username", flat=True))
    assert followed == {"pub", "cm"}
    again = client.post(url).json()
    assert again == {"followed": 0, "already_followed": 2, "skipped_privacy": 2, "network_visible": True}
    assert Follow.objects.filter(follower=network["me"]).count() == 2


def test_follow_all_counts_an_earlier_follow_as_already_followed(network):
    Follow.objects.create(follower=network["me"], followee=network["pub"])
    result = client_for(network["me"]).post(f"/api/matches/{network['accepted'].public_id}/follow-all").json()
    assert result == {"followed": 1, "already_followed": 1, "skipped_privacy": 2, "network_visible": True}


def test_follow_all_of_a_private_members_network_follows_nobody(network, me):
    hermit = member_create(username="hermit2", privacy="private")
    match = connect(me, hermit, network["event"])
    connect(hermit, network["pub"], network["event"])
    connect(hermit, network["priv"], network["event"])
    result = client_for(me).post(f"/api/matches/{match.public_id}/follow-all").json()
    # not even how many connections they have
    assert result == {"followed": 0, "already_followed": 0, "skipped_privacy": 0, "network_visible": False}
    assert not Follow.objects.exists()


@pytest.mark.parametrize("status", ["pending", "rejected", "expired", "overdue"])
def test_follow_all_of_a_match_that_is_not_accepted_is_403(network, status):
    match = network["pending"]
    if status == "overdue":
        set_match(match, expires_in=-timedelta(seconds=5))
    elif status != "pending":
        set_match(match, status=status)
    response = client_for(network["me"]).post(f"/api/matches/{match.public_id}/follow-all")
    assert response.status_code == 403 and response.json()["error"]["code"] == "match_not_accepted"
    assert not Follow.objects.exists()


def test_follow_all_is_404_for_someone_elses_match(network):
    outsider = member_create(username="outsider")
    response = client_for(outsider).post(f"/api/matches/{network['accepted'].public_id}/follow-all")
    assert response.status_code == 404


# -- queries per page -------------------------------------------------------------------------------------
def _queries(client, params):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(FEED, params)
    assert response.status_code == 200
    return len(ctx.captured_queries), len(response.json()["results"])


@pytest.mark.parametrize("sort", ["newest", "compatibility", "expiring_soon"])
def test_the_number_of_queries_per_page_does_not_grow_with_the_page(network, sort, flags_snapshot_warm):
    me, event = network["me"], network["event"]
    for i in range(30):
        other = member_create(username=f"q{i}", privacy=["public", "connections", "private"][i % 3])
        m = event_match_create(event=event, member_a=me, member_b=other, compatibility=(i % 10) / 10)
        if i % 4 == 0:
            connect(other, network["pub"], event)
        if i % 5 == 0:
            set_match(m, status="accepted")
    client = client_for(me)
    counts = {}
    for size in (2, 10, 20, 30, 60):
        counts[size], n = _queries(client, {"sort": sort, "page_size": size})
        assert n == min(size, 35)  # 5 matches from the network, 30 made here
    filtered, _ = _queries(
        client, {"sort": sort, "page_size": 30, "status": "pending,accepted", "min_compatibility": "0"}
    )
    # expiring_soon's pages of 30 and 60 run past the 25 open pending matches into the rest:
    # the same statement reads both parts.
    assert len(set(counts.values())) == 1 and filtered == counts[2], counts
    # One statement: the page with its joins, connections and clock. (The client here is signed
    # in without a session; a real request adds the session's user, test_request_path.py.)
    assert counts[2] == 1, counts


# -- the database plan: one index range per sort, no sort step ---------------------------------------------
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL plan")
@pytest.mark.parametrize(
    ("params", "index"),
    [
        ({"sort": "newest"}, "proposals_feed_newest"),
        ({"sort": "compatibility"}, "proposals_feed_compat"),
        ({"sort": "expiring_soon", "status": "pending"}, "proposals_feed_expiring"),
        ({"sort": "newest", "status": "accepted"}, "proposals_feed_status"),
        ({"sort": "compatibility", "status": "accepted"}, "proposals_feed_status_compat"),
        ({"sort": "newest", "event": "EVENT"}, "proposals_feed_event"),
        ({"sort": "newest", "source": "event"}, "proposals_feed_source"),
    ],
)
def test_each_sort_and_filter_reads_its_index_without_sorting(feed_world, params, index):
    client = client_for(feed_world["me"])
    params = {k: (feed_world["event"].pk if v == "EVENT" else v) for k, v in params.items()}
    first = client.get(FEED, {**params, "page_size": 1}).json()
    assert first["next_cursor"]
    statements = []

    def capture(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        assert client.get(FEED, {**params, "page_size": 1, "cursor": first["next_cursor"]}).status_code == 200
    sql, sql_params = next((q, p) for q, p in statements if "ORDER BY" in q and "proposals_feeditem" in q)
    with connection.cursor() as cursor:
        # Statistics as a live table has them: on a never-analyzed table of a few rows every
        # index looks alike to the planner, and which one it picks depends on the tests before.
        cursor.execute("ANALYZE proposals_feeditem")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute("EXPLAIN " + sql, sql_params)
        plan = [row[0] for row in cursor.fetchall()]
    # The page's ids come from the named index, read directly under a LIMIT: an index range
    # from the cursor on, never sorted. (Only the page's own few rows may be put in order
    # above it, and a second segment's ids read the same way.)
    text = "\n".join(plan)
    scans = [i for i, line in enumerate(plan) if f"Scan using {index} " in line]
    assert scans, text
    for i in scans:
        assert _parent(plan, i).strip().startswith("->  Limit") or _parent(plan, i).startswith("Limit"), text


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL plan")
@pytest.mark.parametrize(
    ("sort", "segment", "min_compatibility"),
    [("expiring_soon", 1, None), ("newest", 0, 0.5)],
    ids=["expiring-second-segment", "newest-min-compatibility"],
)
def test_filters_on_the_newest_range_are_answered_from_the_index_alone(feed_world, sort, segment, min_compatibility):
    """expiring_soon's second segment (all but open pending matches) and min_compatibility read
    the newest index with a filter on columns it carries, so the ordered range under the LIMIT
    needs no table row to decide. Without them, a prepared statement's generic plan (sized for
    the average member) read all of a busy member's items by bitmap scan and sorted them."""
    from proposals.matches.params import FeedQuery
    from proposals.matches.sql import page_statement

    now = timezone.now()
    as_of = now if sort == "expiring_soon" else None
    cursor = Cursor(sort=sort, segment=segment, key=now - timedelta(hours=3), id=2**40, as_of=as_of)
    sql, params = page_statement(
        member_id=feed_world["me"].pk,
        query=FeedQuery(sort=sort, cursor=cursor, min_compatibility=min_compatibility),
    )
    with connection.cursor() as db:
        for method in ("seqscan", "indexscan", "bitmapscan", "sort"):  # only index-only reads left
            db.execute(f"SET LOCAL enable_{method} = off")
        db.execute("EXPLAIN " + sql, params)
        plan = [row[0] for row in db.fetchall()]
    text = "\n".join(plan)
    scans = [i for i, line in enumerate(plan) if "Index Only Scan using proposals_feed_newest " in line]
    assert scans, text
    for i in scans:
        assert _parent(plan, i).lstrip().removeprefix("->").lstrip().startswith("Limit"), text


def _parent(plan, i):
    """The EXPLAIN line of node ``i``'s parent: the nearest line above it that starts less indented."""
    depth = len(plan[i]) - len(plan[i].lstrip())
    for line in reversed(plan[:i]):
        is_node = "->" in line or not line.startswith(" ")
        if is_node and len(line) - len(line.lstrip()) < depth:
            return line
    return ""
