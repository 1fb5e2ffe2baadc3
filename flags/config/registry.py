"""Config names and their schemas, declared in code: each name's pydantic model, its default
(what ``config_get`` answers before anyone wrote a value) and, optionally, its safe value
(what it answers while safe mode is on: a fixed value, or ``safe_update``, a change of the
value in force), next to each other.

    RANKER_POLICY = config_declare(
        "ranker.policy",
        schema=RankerPolicy,
        default=RankerPolicy(version="epsilon_greedy_v1", epsilon=0.08),
        safe=RankerPolicy(version="epsilon_greedy_v1", epsilon=0.0),
        description="The discovery ranker's policy.",
    )

Apps declare their names in a module their ``AppConfig.ready`` imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True)
class ConfigSpec(Generic[T]):
    name: str
    schema: type[T]
    default: T
    safe: T | None
    description: str
    # Safe mode's value as a change of the value in force (e.g. ``{"epsilon": 0.0}``: stop
    # exploring, keep the configured window), instead of one fixed ``safe`` value.
    safe_update: Mapping[str, Any] | None = field(default=None)


_SPECS: dict[str, ConfigSpec[BaseModel]] = {}


def config_declare(
    name: str,
    *,
    schema: type[T],
    default: T,
    safe: T | None = None,
    safe_update: Mapping[str, Any] | None = None,
    description: str,
) -> ConfigSpec[T]:
    if safe is not None and safe_update is not None:
        raise ValueError(f"config {name}: declare a safe value or a safe update, not both")
    if safe_update is not None:
        default.model_copy(update=dict(safe_update))  # fields it names must exist: fail at import
        unknown = set(safe_update) - set(schema.model_fields)
        if unknown:
            raise ValueError(f"config {name}: the safe update names unknown fields {sorted(unknown)}")
    spec = ConfigSpec(
        name=name, schema=schema, default=default, safe=safe, safe_update=safe_update, description=description
    )
    _SPECS[name] = spec  # type: ignore[assignment]  # invariance: every spec's schema is a BaseModel
    return spec


def config_spec(name: str) -> ConfigSpec[BaseModel]:
    """The declaration of ``name`` (KeyError if no app declared it)."""
    return _SPECS[name]


def config_specs() -> list[ConfigSpec[BaseModel]]:
    return sorted(_SPECS.values(), key=lambda s: s.name)
