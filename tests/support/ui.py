"""Browser-test helpers shared by the member pages' Playwright tests."""

from __future__ import annotations

from playwright.sync_api import Page


def sign_in_form(page: Page, username: str, password: str, *, next_path: str | None = None) -> None:
    """Fill and submit the /signin form (the caller checks where it lands)."""
    page.goto("/signin" + (f"?next={next_path}" if next_path else ""))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_test_id("signin-submit").click()
