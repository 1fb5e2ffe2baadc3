"""Every change to a flag, switch or sample is a history row: who, when, before, after, why;
the admin shows it and restores an earlier version."""

from __future__ import annotations

from decimal import Decimal

import pytest
from waffle.models import Switch

from flags.models import Flag
from flags.names import SAFE_MODE

pytestmark = pytest.mark.django_db


def form(**fields: str) -> dict[str, str]:
    """The flag admin's form as a browser sends it (waffle's flag has editable timestamps)."""
    return {
        "everyone": "unknown",
        "superusers": "on",
        "languages": "",
        "note": "",
        "rollout_group": "",
        "safe_value": "unknown",
        "created_0": "2026-12-01",
        "created_1": "10:00:00",
        "modified_0": "2026-12-01",
        "modified_1": "10:00:00",
        **fields,
    }


def test_a_flag_changed_in_the_admin_records_who_before_and_after(admin_client, admin_user):
    flag = Flag.objects.create(name="beta_feed", percent=Decimal(5), note="the new feed")
    response = admin_client.post(
        f"/admin/flags/flag/{flag.pk}/change/",
        form(name="beta_feed", percent="25", note="the new feed"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    latest, earlier = flag.history.order_by("-history_id")[:2]
    assert latest.history_user == admin_user and latest.history_type == "~"
    delta = latest.diff_against(earlier)
    assert [(c.field, c.old, c.new) for c in delta.changes if c.field == "percent"] == [
        ("percent", Decimal("5.0"), Decimal("25.0"))
    ]
    page = admin_client.get(f"/admin/flags/flag/{flag.pk}/history/").content.decode()
    assert "25" in page and admin_user.get_username() in page


def test_the_safe_mode_switch_keeps_its_history_with_a_reason():
    switch = Switch.objects.get_or_create(name=SAFE_MODE, defaults={"active": False})[0]
    switch.active = True
    switch._change_reason = "error rate over 10 % after the deploy"
    switch.save()
    switch.active = False
    switch._change_reason = "recovered"
    switch.save()
    states = list(switch.history.order_by("history_id").values_list("active", "history_change_reason"))
    assert states[-2:] == [(True, "error rate over 10 % after the deploy"), (False, "recovered")]


def test_an_earlier_flag_version_can_be_restored(admin_client):
    flag = Flag.objects.create(name="ramp", percent=Decimal(5))
    flag.percent = Decimal(50)
    flag.save()
    first = flag.history.earliest("history_id")
    response = admin_client.post(
        f"/admin/flags/flag/{flag.pk}/history/{first.history_id}/",
        form(name="ramp", percent="5.0"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    flag.refresh_from_db()
    assert flag.percent == Decimal(5)
    assert flag.history.count() == 3  # created, raised, restored


def test_the_reason_given_in_the_admin_is_kept_with_the_change(admin_client):
    switch = Switch.objects.get_or_create(name=SAFE_MODE, defaults={"active": False})[0]
    response = admin_client.post(
        f"/admin/waffle/switch/{switch.pk}/change/",
        {
            "name": SAFE_MODE,
            "active": "on",
            "note": "",
            "created_0": "2026-12-01",
            "created_1": "10:00:00",
            "modified_0": "2026-12-01",
            "modified_1": "10:00:00",
            "change_reason": "p95 over 2 s since 14:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    latest = switch.history.latest("history_id")
    assert (latest.active, latest.history_change_reason) == (True, "p95 over 2 s since 14:00")
    page = admin_client.get(f"/admin/waffle/switch/{switch.pk}/history/").content.decode()
    assert "p95 over 2 s since 14:00" in page


def test_the_flag_page_restores_an_earlier_version_in_one_click(admin_client, admin_user):
    from flags.services import flag_enabled

    flag = Flag.objects.create(name="restorable", everyone=True)
    flag.everyone = False
    flag._change_reason = "turned off"
    flag.save()
    assert flag_enabled("restorable") is False
    page = admin_client.get(f"/admin/flags/flag/{flag.pk}/change/").content.decode()
    first = flag.history.order_by("history_id").first()
    restore_url = f"/admin/flags/flag/{flag.pk}/restore/{first.history_id}/"
    assert f'formaction="{restore_url}"' in page and "Restore #" in page
    response = admin_client.post(restore_url)
    assert response.status_code == 302
    assert Flag.objects.get(pk=flag.pk).everyone is True and flag_enabled("restorable") is True
    latest = flag.history.order_by("-history_id").first()
    assert latest.history_user == admin_user and latest.history_change_reason == f"restore #{first.history_id}"
    assert admin_client.get(restore_url).status_code == 405  # a change is a POST (with its CSRF token)


def test_config_in_the_admin_is_validated_by_its_schema_and_restored_in_one_click(admin_client):
    from flags.config.models import ConfigValue
    from flags.config.selectors import config_get

    added = admin_client.post(
        "/admin/flags/configvalue/add/",
        {"name": "runs.fetch", "value": '{"unknown_sites": false}', "change_reason": "pause"},
    )
    assert added.status_code == 302, added.content.decode()[:3000]
    row = ConfigValue.objects.get(name="runs.fetch")
    assert row.version == 1 and config_get("runs.fetch").unknown_sites is False
    bad = admin_client.post(
        f"/admin/flags/configvalue/{row.pk}/change/",
        {"name": "runs.fetch", "value": '{"unknown_sites": false, "paused_retry_seconds": -5}'},
    )
    assert bad.status_code == 200
    assert "value.paused_retry_seconds" in bad.content.decode()
    assert ConfigValue.objects.get(pk=row.pk).version == 1
    changed = admin_client.post(
        f"/admin/flags/configvalue/{row.pk}/change/",
        {"name": "runs.fetch", "value": '{"unknown_sites": true}', "change_reason": "resume"},
    )
    assert changed.status_code == 302
    assert ConfigValue.objects.get(pk=row.pk).version == 2
    page = admin_client.get(f"/admin/flags/configvalue/{row.pk}/change/").content.decode()
    assert "Restore v1" in page and "resume" in page
    first = row.history.get(version=1)
    admin_client.post(f"/admin/flags/configvalue/{row.pk}/restore/{first.history_id}/")
    restored = ConfigValue.objects.get(pk=row.pk)
    assert restored.version == 3 and restored.value["unknown_sites"] is False
    assert config_get("runs.fetch").unknown_sites is False
