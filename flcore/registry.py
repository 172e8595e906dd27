"""Name -> implementation registries.

Datasets, partitioners, models, strategies, attacks, executors and client metrics are each registered by name in one
`Registry`. The config validation, the CLI and the dashboard's dropdowns all read these
registries, so a new algorithm appears everywhere once it is registered, and no name from a
config is ever `eval`-ed.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered implementation with the text the CLI and dashboard show for it."""

    name: str
    obj: T
    label: str
    description: str
    params: tuple[str, ...] = ()  # names of the ExperimentConfig fields this entry reads
    describe: Callable[[Any], str] | None = None  # the entry with its settings in a few words, from a config

    def summary(self, config: Any) -> str:
        """This entry with the settings `config` gives it, in a few words (its label without `describe`)."""
        return self.describe(config) if self.describe is not None else self.label


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
        describe: Callable[[Any], str] | None = None,
    ) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, obj, label or name, description, tuple(params), describe)
            return obj

        return add

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}") from None

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


def import_modules(package: str, path: list[str], first: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> None:
    """Import a package's modules so their registrations run: `first` in that order (the order
    the dashboard lists their entries in), then every other module of the package, so that a new
    file that registers something needs no line anywhere else."""
    names = [m.name for m in pkgutil.iter_modules(path) if m.name not in skip]
    for name in [*first, *sorted(set(names) - set(first))]:
        importlib.import_module(f"{package}.{name}")
