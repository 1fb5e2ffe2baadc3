"""The in-process snapshot: no query per check, a write seen at once here and within a
second elsewhere, and safe values (never an exception) while the store cannot be read."""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import pytest
from django.db import connection, models
from waffle.models import Switch

from flags import snapshot
from flags.config.registry import config_specs
from flags.config.selectors import config_get
from flags.models import Flag
from flags.names import FLAG_SAFE_VALUES, SAFE_MODE
from flags.services import flag_enabled, flag_percent_set, safe_mode_active, switch_enabled, switch_set


@pytest.mark.django_db
def test_checks_after_the_stamp_check_cost_no_query(django_assert_num_queries):
    Flag.objects.create(name="quiet", percent=Decimal(50))
    flag_enabled("quiet", unit="warm-up")  # loads the snapshot
    with django_assert_num_queries(0):
        answers = {flag_enabled("quiet", unit=f"u{i}") for i in range(2000)}
        assert safe_mode_active() is False
        config_get("runs.fetch")
    assert answers == {True, False}


@pytest.mark.django_db
def test_a_write_in_this_process_is_seen_at_once():
    Flag.objects.create(name="now", everyone=False)
    assert flag_enabled("now") is False
    flag = Flag.objects.get(name="now")
    flag.everyone = True
    flag.save()
    assert flag_enabled("now") is True
    flag_percent_set("now", 30, reason="test")
    switch_set("ops.quiet", True, reason="test")
    assert switch_enabled("ops.quiet") is True


@pytest.mark.django_db
def test_another_process_write_is_seen_within_a_second_of_its_stamp(settings):
    """A write made elsewhere (here: straight SQL, no signal, as another process's commit
    looks from this one) is invisible until the stamp moves, then seen at the next check."""
    settings.FLAGS_STAMP_CHECK_SECONDS = 0.3
    Flag.objects.create(name="elsewhere", everyone=False)
    assert flag_enabled("elsewhere") is False
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Flag._meta.db_table} SET everyone = true WHERE name = 'elsewhere'")
    time.sleep(0.4)
    assert flag_enabled("elsewhere") is False  # same stamp: the snapshot is not reloaded
    with connection.cursor() as cursor:
        cursor.execute("UPDATE flags_stamp SET version = version + 1 WHERE id = 1")
    assert flag_enabled("elsewhere") is False  # checked less than 0.3 s ago
    deadline = time.monotonic() + 2.0
    while not flag_enabled("elsewhere") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert flag_enabled("elsewhere") is True


@pytest.fixture
def store_down():
    """Point this process's database connections at a port nothing listens on (the store is
    really unreachable: every connection attempt fails), and put them back afterwards."""
    settings_dict = connection.settings_dict
    saved = {key: settings_dict[key] for key in ("HOST", "PORT")}
    saved_options = dict(settings_dict.get("OPTIONS", {}))

    def reconnect() -> None:
        connection.close()
        if hasattr(connection, "close_pool"):
            connection.close_pool()

    def down() -> None:
        reconnect()
        settings_dict.update(HOST="127.0.0.1", PORT="1")
        options = settings_dict.setdefault("OPTIONS", {})
        options["connect_timeout"] = 1
        if "pool" in options:
            options["pool"] = {**options["pool"], "min_size": 0, "timeout": 0.5}

    def up() -> None:
        reconnect()
        settings_dict.update(saved)
        settings_dict["OPTIONS"] = saved_options

    yield down, up
    up()


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_store_answers_safe_values_without_raising(store_down, caplog, settings):
    settings.FLAGS_STAMP_CHECK_SECONDS = 0.0
    Flag.objects.create(name="guarded", everyone=False, safe_value=True)
    Flag.objects.create(name="undeclared", everyone=True)
    assert flag_enabled("guarded") is False and flag_enabled("undeclared") is True
    failures = snapshot.store_failures()
    down, up = store_down
    down()
    try:
        with caplog.at_level(logging.ERROR, logger="flags.snapshot"):
            assert flag_enabled("guarded") is True  # the safe value an operator declared
            assert flag_enabled("undeclared") is False  # no safe value: waffle's default (off)
            assert safe_mode_active() is True
            spec = next(s for s in config_specs() if s.name == "runs.fetch")
            assert config_get("runs.fetch") == spec.safe
            for name, safe in FLAG_SAFE_VALUES.items():
                if safe is not None:
                    assert flag_enabled(name) is safe
        assert snapshot.store_failures() > failures
        (counted, _stamp) = snapshot.snapshot_metrics()
        assert counted.samples[0].value == snapshot.store_failures()
        assert "cannot be read" in caplog.text
    finally:
        up()
    assert flag_enabled("guarded") is False  # the store is back: normal answers again


@pytest.mark.django_db
def test_safe_mode_overrides_every_declared_flag_and_config():
    declared = {name: safe for name, safe in FLAG_SAFE_VALUES.items() if safe is not None}
    for name, safe in declared.items():
        Flag.objects.update_or_create(name=name, defaults={"everyone": not safe})
    Flag.objects.create(name="admin_declared", everyone=True, safe_value=False)
    switch_set(SAFE_MODE, True, reason="test")
    for name, safe in declared.items():
        assert flag_enabled(name) is safe
    assert flag_enabled("admin_declared") is False
    for spec in config_specs():
        if spec.safe is not None:
            assert config_get(spec.name) == spec.safe, spec.name
    switch_set(SAFE_MODE, False, reason="test")
    assert flag_enabled("admin_declared") is True
    assert Switch.objects.get(name=SAFE_MODE).active is False


class _Undo(Exception):
    pass


@pytest.mark.django_db(transaction=True)
def test_what_a_rolled_back_write_showed_is_not_kept():
    """A process that read its own uncommitted write, then rolled it back, must not keep it,
    even when another commit brings the stamp to the value the rolled-back write had."""
    from django.db import transaction

    from flags.models import Stamp

    Flag.objects.create(name="undone", everyone=False)
    assert flag_enabled("undone") is False
    with pytest.raises(_Undo), transaction.atomic():
        flag = Flag.objects.get(name="undone")
        flag.everyone = True
        flag.save()  # bumps the stamp in this transaction
        assert flag_enabled("undone") is True  # its own write, inside its transaction
        raise _Undo
    Stamp.objects.filter(pk=1).update(version=models.F("version") + 1)  # another commit, same stamp
    assert flag_enabled("undone") is False


@pytest.mark.django_db(transaction=True)
def test_a_write_another_thread_has_not_committed_is_not_seen_here(settings):
    """Threads of one process (gunicorn's gthread) share the snapshot: what one thread reads
    of its own open transaction stays its own, and is gone when that transaction rolls back."""
    import threading

    from django.db import connections, transaction

    settings.FLAGS_STAMP_CHECK_SECONDS = 3600.0  # this thread trusts the shared snapshot it holds
    Flag.objects.create(name="pending", everyone=False)
    assert flag_enabled("pending") is False
    wrote, done = threading.Event(), threading.Event()
    seen_by_writer: list[bool] = []

    def writer() -> None:
        try:
            with pytest.raises(_Undo), transaction.atomic():
                flag = Flag.objects.get(name="pending")
                flag.everyone = True
                flag.save()
                seen_by_writer.append(flag_enabled("pending"))
                wrote.set()
                done.wait(10)
                raise _Undo
        finally:
            connections.close_all()

    thread = threading.Thread(target=writer)
    thread.start()
    assert wrote.wait(10)
    try:
        assert flag_enabled("pending") is False  # not committed: not this thread's to see
    finally:
        done.set()
        thread.join(10)
    assert seen_by_writer == [True]  # the writer read its own write
    assert flag_enabled("pending") is False  # and it was rolled back
