"""Registrations made when the app is ready (see discovery.apps): discovery's worker topics
(the events queue's and the discovery queue's; discovery.events has the map) and the
sign-up hook."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.signals import post_save

from discovery.events import USER_SIGNUP, event_publish, topics_register

topics_register()


def _user_signed_up(sender: type, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    """A new member: publish ``discovery.user-signup`` in the transaction that creates them
    (the event commits with the account or not at all; a worker is woken on commit). Rows
    loaded from fixtures (``raw``) are not sign-ups."""
    if created and not raw:
        event_publish(topic=USER_SIGNUP, user=instance)


post_save.connect(_user_signed_up, sender=get_user_model(), dispatch_uid="discovery-user-signup-event")
