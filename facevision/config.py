"""Plain-dict round trips for the configuration dataclasses (JSON in checkpoints and run folders)."""
from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T", bound="DictConfig")


class DictConfig:
    """Mixin for dataclasses: ``to_dict`` gives JSON-able values (tuples -> lists); ``from_dict`` ignores
    unknown keys (older or newer files) and turns lists back into tuples where the default is a tuple."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_dict(cls: type[T], d: dict[str, Any]) -> T:
        kwargs = {f.name: tuple(d[f.name]) if isinstance(f.default, tuple) else d[f.name]
                  for f in fields(cls) if f.name in d}
        return cls(**kwargs)
