"""A rollout's states and decisions, and the one place that says which transitions exist."""

from __future__ import annotations

from django.db import models

from matchplatform.exceptions import Conflict, ErrorCode


class RolloutState(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    ROLLED_BACK = "rolled_back", "Rolled back"
    COMPLETED = "completed", "Completed"


class RollbackAction(models.TextChoices):
    PERCENT_ZERO = "percent_zero", "Set the flag's percentage to 0"
    SAFE_MODE = "safe_mode", "Set the flag's percentage to 0 and turn safe mode on everywhere"


class DecisionKind(models.TextChoices):
    """What a tick (or an operator) decided. The controller decides hold, advance, complete,
    pause and rollback; start and resume are an operator's."""

    START = "start", "Start"
    RESUME = "resume", "Resume"
    HOLD = "hold", "Hold"
    ADVANCE = "advance", "Advance"
    COMPLETE = "complete", "Complete"
    PAUSE = "pause", "Pause"
    ROLLBACK = "rollback", "Roll back"


S = RolloutState

# Every allowed move, by the action that makes it. "advance" stays in running (the next
# stage); "restart" takes a rolled-back rollout back to its first stage (its units are the
# same ones: buckets are sticky).
TRANSITIONS: dict[str, dict[str, str]] = {
    "start": {S.DRAFT: S.RUNNING},
    "restart": {S.ROLLED_BACK: S.RUNNING},
    "pause": {S.RUNNING: S.PAUSED},
    "resume": {S.PAUSED: S.RUNNING},
    "advance": {S.RUNNING: S.RUNNING, S.PAUSED: S.RUNNING},
    "complete": {S.RUNNING: S.COMPLETED, S.PAUSED: S.COMPLETED},
    "rollback": {S.RUNNING: S.ROLLED_BACK, S.PAUSED: S.ROLLED_BACK},
}

LIVE_STATES = (S.RUNNING, S.PAUSED)  # the flag's percentage belongs to the rollout


class RolloutTransitionError(Conflict):
    """The action is not allowed from the rollout's state."""

    def __init__(self, *, action: str, state: str) -> None:
        allowed = sorted(TRANSITIONS.get(action, {}))
        super().__init__(
            code=ErrorCode.CONFLICT,
            message=(
                f"A rollout cannot {action} from '{state!s}'"
                + (f" (only from {', '.join(allowed)})." if allowed else " (no such action).")
            ),
        )
        self.action = action
        self.state = state


def rollout_transition(*, state: str, action: str) -> str:
    """The state ``action`` leads to from ``state``; RolloutTransitionError if not allowed."""
    target = TRANSITIONS.get(action, {}).get(state)
    if target is None:
        raise RolloutTransitionError(action=action, state=state)
    return target


def rollout_actions_allowed(*, state: str) -> list[str]:
    return [action for action, moves in TRANSITIONS.items() if state in moves]
