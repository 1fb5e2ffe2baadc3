"""Config names and their schemas, declared in code: each name's pydantic model, its default
(what ``config_get`` answers before anyone wrote a value) and, optionally, its safe value
(what it answers while safe mode is on), next to each other.

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

from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True)
class ConfigSpec(Generic[T]):
    name: str
    schema: type[T]
    default: T
    safe: T | None
    description: str


_SPECS: dict[str, ConfigSpec[BaseModel]] = {}


def config_declare(name: str, *, schema: type[T], default: T, safe: T | None = None, description: str) -> ConfigSpec[T]:
    spec = ConfigSpec(name=name, schema=schema, default=default, safe=safe, description=description)
    _SPECS[name] = spec  # type: ignore[assignment]  # invariance: every spec's schema is a BaseModel
    return spec


def config_spec(name: str) -> ConfigSpec[BaseModel]:
    """The declaration of ``name`` (KeyError if no app declared it)."""
    return _SPECS[name]


def config_specs() -> list[ConfigSpec[BaseModel]]:
    return sorted(_SPECS.values(), key=lambda s: s.name)
