"""Discovery's flags, named once, each with its safe value (what it reads in safe mode)."""

from __future__ import annotations

from flags.names import FLAG_SAFE_VALUES

LEARNING_ENABLED = "learning.enabled"  # log each ranking decision (LearningEvent)
MARKETPLACE_SUGGEST = "marketplace.suggest"  # serve suggestions at all
CRUSH_MODE = "crush_mode.enabled"  # an experimental surface: off in safe mode

FLAG_SAFE_VALUES.update(
    {
        # Safe mode keeps logging (decisions are then logged as not randomized, p_exp 0) and
        # keeps suggestions (from fallback slates); it turns the experimental surface off.
        LEARNING_ENABLED: None,
        MARKETPLACE_SUGGEST: None,
        CRUSH_MODE: False,
    }
)
