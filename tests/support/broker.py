"""Pointing this process's Celery app at another broker in a test."""

from __future__ import annotations

from typing import Any

from kombu import pools as kombu_pools


def celery_pools_reset(app: Any) -> None:
    """Close and forget the broker pools, so that the next message opens a connection to the
    broker configured now. kombu keeps its pools by connection and would hand a closed one
    back to the next user of the same URL ("Acquire on closed pool"): all are dropped."""
    kombu_pools.reset()
    app._pool = None
    app.amqp._producer_pool = None
