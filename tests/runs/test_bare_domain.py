"""A bare domain (``acme.com``) on the run page.

The page assumes https:// for what a founder types without a scheme and says so, both under
the field and on the run it starts. The API does not guess: it takes a full http(s) URL, as
its schema's pattern says, and answers 400 ``invalid_scheme`` to a bare domain; the page is
the one place that completes it, in the open.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from runs.models import MatchRun
from tests.factories import StartupFactory


@pytest.fixture
def phone(new_context) -> Page:
    """A page the width of a phone (the form is typed into on one as often as not)."""
    return new_context(viewport={"width": 390, "height": 844}).new_page()


def submit(page: Page, typed: str) -> list[str]:
    """Type into the run form and submit; returns the URLs the page sent to the API."""
    sent: list[str] = []
    page.on(
        "request",
        lambda request: (
            sent.append(request.post_data_json["url"])
            if request.method == "POST" and request.url.endswith("/api/match/run")
            else None
        ),
    )
    page.goto("/")
    page.get_by_label("Your startup's website").fill(typed)
    page.get_by_role("button", name="Find investors").click()
    return sent


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_bare_domain_runs_as_https_and_the_page_says_which_url_it_used(engine_on, phone):
    StartupFactory(canonical_url="https://acme.example", name="Acme Ledger")

    sent = submit(phone, "  acme.example  ")

    expect(phone.get_by_test_id("run-state")).to_have_text("Queued")
    assert sent == ["https://acme.example"]
    expect(phone.get_by_test_id("run-url-used")).to_have_text("No scheme given, so we used https://acme.example.")
    expect(phone.get_by_test_id("run-url-canonical")).to_have_text("https://acme.example")
    expect(phone.get_by_test_id("form-error")).to_be_hidden()
    run = MatchRun.objects.get()
    assert (run.submitted_url, run.canonical_url) == ("https://acme.example", "https://acme.example")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_field_says_a_domain_is_enough_and_a_full_url_is_sent_as_typed(engine_on, phone):
    phone.goto("/")
    field = phone.get_by_label("Your startup's website")
    hint = phone.get_by_test_id("run-url-hint")
    expect(hint).to_be_visible()
    expect(hint).to_have_text(re.compile(r"A domain like acme\.com is enough: .* we use https://\."))
    expect(field).to_have_attribute("aria-describedby", re.compile(r"\brun-url-hint\b"))
    expect(field).to_have_attribute("placeholder", "your-startup.com")

    StartupFactory(canonical_url="https://acme.example")
    sent = submit(phone, "http://www.acme.example/?utm_source=ad")

    expect(phone.get_by_test_id("run-state")).to_have_text("Queued")
    assert sent == ["http://www.acme.example/?utm_source=ad"]
    expect(phone.get_by_test_id("run-url-used")).to_be_hidden()
    expect(phone.get_by_test_id("run-url-canonical")).to_have_text("http://acme.example")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("typed", "sent_url", "message"),
    [
        # A host and port is not a scheme: https:// goes in front, and the refusal names it.
        (
            "localhost:3000",
            "https://localhost:3000",
            "URL must not point to localhost. (We tried https://localhost:3000.)",
        ),
        # A scheme the API refuses is sent as typed, so its message is the API's own.
        ("ftp://acme.example", "ftp://acme.example", "URL must start with http:// or https://."),
        ("mailto:founder@acme.example", "mailto:founder@acme.example", "URL must start with http:// or https://."),
    ],
)
def test_what_the_api_refuses_is_explained_with_the_url_that_was_tried(engine_on, phone, typed, sent_url, message):
    sent = submit(phone, typed)

    error = phone.get_by_test_id("form-error")
    expect(error).to_have_text(message)
    assert sent == [sent_url]
    expect(phone.get_by_test_id("run")).to_be_hidden()
    assert MatchRun.objects.count() == 0


def test_the_api_takes_full_urls_only_as_its_schema_says(api_client, db):
    refused = api_client.post("/api/match/run", {"url": "acme.example"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_scheme"
    assert MatchRun.objects.count() == 0

    schema = api_client.get("/api/schema/?format=json").json()
    pattern = re.compile(schema["components"]["schemas"]["SubmitInput"]["properties"]["url"]["pattern"])
    assert not pattern.search("acme.example")
    assert pattern.search("https://acme.example")
    assert api_client.post("/api/match/run", {"url": "https://acme.example"}, format="json").status_code == 202
