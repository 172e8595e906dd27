"""Name -> implementation registries.

Datasets, partitioners, models, strategies and attacks are each registered by name in one
`Registry`. The config validation, the CLI and the dashboard's dropdowns all read these
registries, so a new algorithm appears everywhere once it is registered, and no name from a
config is ever `eval`-ed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered implementation with the text the CLI and dashboard show for it."""

    name: str
    obj: T
    label: str
    description: str
    params: tuple[str, ...]  # names of the ExperimentConfig fields this entry reads


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self,
        name: str,
        *,
        label: str | None = None,
        description: str = "",
        params: tuple[str, ...] = (),
    ) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, obj, label or name, description, tuple(params))
            return obj

        return add

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())

    def __contains__(self, name: Any) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
