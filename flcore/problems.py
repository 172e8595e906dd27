"""Invalid settings, as (field, sentence) pairs.

Every check of a setting (a field's own bounds, a combination of fields, what a dataset, model
or strategy can work with) reports a `Problem`: the field to fix, when there is one, and a
sentence that names the field, the value and what is allowed, e.g.
``Problem("clients_per_round", "clients_per_round=50 exceeds num_clients=10")``. The CLI prints
the sentences; the dashboard shows each one under the widget of its field.
"""

from __future__ import annotations

from typing import Any, NamedTuple

SHOWN_CHARACTERS = 80  # a refused value longer than this is cut in messages (a 5 MB argument is not echoed)


class Problem(NamedTuple):
    field: str | None  # the setting to change; None when no single field is to blame
    message: str

    def __str__(self) -> str:
        return self.message


def shown(value: Any, limit: int = SHOWN_CHARACTERS) -> str:
    """`repr(value)` for a message, cut after `limit` characters with how long it was:
    ``'xxxx…' (10002 characters)``."""
    return cut(repr(value), limit)


def cut(text: str, limit: int = SHOWN_CHARACTERS) -> str:
    """`text`, cut after `limit` characters with how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def cut_long_words(message: str, longest: int = 200) -> str:
    """`message` with every run of non-blank characters longer than `longest` cut as `cut` does:
    for messages that quote a value someone else wrote (argparse's), so a 5 MB argument is not
    echoed whole, while a path of ordinary length is left alone."""
    import re

    return re.sub(rf"\S{{{longest + 1},}}", lambda m: cut(m.group()), message)


class ConfigError(ValueError):
    """An invalid experiment setting; `problems` are (field, sentence) pairs, `str()` the sentences."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = [p if isinstance(p, Problem) else Problem(None, str(p)) for p in problems]
        super().__init__("; ".join(p.message for p in self.problems))
