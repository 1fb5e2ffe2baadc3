"""profile_update writes only what it changes, shown with two real connections.

One connection changes a member's load and wallet (the voting loop, a wallet sign-in) and
holds the row until it commits; meanwhile the member edits their profile: profile_update
reads the profile (the old load and wallet: the other change is not committed yet), then
waits for the row. Once the other change commits, the edit goes through. A full ``save()``
of what it read would write the old load and wallet back; writing only the edited fields
keeps the other change.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from proposals.identity.services import member_create, profile_update
from proposals.models import Profile
from tests.support.concurrency import Worker, wait_until_blocked

pytestmark = pytest.mark.django_db(transaction=True)

WALLET = "0x" + "ab" * 20


def profile_update_full_save(*, user: User, display_name: str) -> Profile:
    """How profile_update wrote before: read the profile, set the field, save() every column."""
    with transaction.atomic():
        profile, _ = Profile.objects.get_or_create(user=user, defaults={"display_name": str(user)[:80]})
        profile.display_name = display_name
        profile.save()
    return profile


def _edit_during_a_concurrent_change(edit: Callable[..., object]) -> Profile:
    member = member_create(username="editor", display_name="Before")
    Profile.objects.filter(user=member).update(open_assignments=1)
    editor = Worker(lambda: edit(user=member, display_name="After"))
    editor.start()
    assert editor.ready.wait(timeout=30)
    try:
        with transaction.atomic():  # the other connection: the voting loop and a wallet sign-in
            Profile.objects.filter(user=member).update(open_assignments=4, wallet_address=WALLET)
            editor.go.set()
            wait_until_blocked(editor.pid)  # it has read the profile and waits to write it
    finally:
        editor.go.set()
        editor.join(timeout=60)
    assert not editor.is_alive()
    assert editor.error is None
    return Profile.objects.get(user=member)


def test_a_full_save_of_the_profile_read_earlier_loses_the_concurrent_change():
    profile = _edit_during_a_concurrent_change(profile_update_full_save)

    assert profile.display_name == "After"
    assert (profile.open_assignments, profile.wallet_address) == (1, None)  # the other change is gone


def test_profile_update_keeps_a_change_committed_while_it_ran():
    profile = _edit_during_a_concurrent_change(profile_update)

    assert profile.display_name == "After"
    assert (profile.open_assignments, profile.wallet_address) == (4, WALLET)


# -- the admin's edit --------------------------------------------------------------------
def _admin_save(save_model: Callable[..., None]) -> Profile:
    """The admin's save of a profile it read before the voting loop and a wallet sign-in
    changed the row (read, then the other change commits, then the form is saved)."""
    from django.contrib import admin
    from django.test import RequestFactory

    from proposals.admin import ProfileAdmin, ProfileAdminForm

    member = member_create(username="edited", display_name="Before", interests=["ai"])
    stale = Profile.objects.get(user=member)
    Profile.objects.filter(user=member).update(open_assignments=4, wallet_address=WALLET)
    form = ProfileAdminForm(
        data={
            "user": member.pk,
            "display_name": "After",
            "bio": "",
            "interests": '["ai", "climate"]',
            "privacy": "public",
            "is_active": "on",
        },
        instance=stale,
    )
    assert form.is_valid(), form.errors
    request = RequestFactory().post("/admin/")
    save_model(ProfileAdmin(Profile, admin.site), request, form.save(commit=False), form, True)
    return Profile.objects.get(user=member)


def test_a_plain_admin_save_would_write_back_what_it_read():
    from django.contrib import admin

    profile = _admin_save(admin.ModelAdmin.save_model)
    assert (profile.open_assignments, profile.wallet_address) == (0, None)  # the lost update


def test_the_admin_saves_only_the_fields_its_form_changed():
    from proposals.admin import ProfileAdmin
    from proposals.vocab import interest_mask

    profile = _admin_save(ProfileAdmin.save_model)
    assert (profile.display_name, profile.interests) == ("After", ["ai", "climate"])
    assert profile.interest_mask == interest_mask(["ai", "climate"])  # kept in step by the service
    assert (profile.open_assignments, profile.wallet_address) == (4, WALLET)


def test_the_admin_refuses_an_unknown_interest_with_a_form_error(admin_client):
    member = member_create(username="typo", display_name="Typo")
    profile = Profile.objects.get(user=member)
    response = admin_client.post(
        f"/admin/proposals/profile/{profile.pk}/change/",
        {"display_name": "Typo", "bio": "", "interests": '["not-an-interest"]', "privacy": "public", "is_active": "on"},
    )
    assert response.status_code == 200
    assert "A list of interests" in response.content.decode()
    assert Profile.objects.get(pk=profile.pk).interests == []
