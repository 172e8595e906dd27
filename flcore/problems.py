"""Invalid settings, as (field, sentence) pairs.

Every check of a setting (a field's own bounds, a combination of fields, what a dataset, model
or strategy can work with) reports a `Problem`: the field to fix, when there is one, and a
sentence that names the field, the value and what is allowed, e.g.
``Problem("clients_per_round", "clients_per_round=50 exceeds num_clients=10")``. The CLI prints
the sentences; the dashboard shows each one under the widget of its field.
"""

from __future__ import annotations

from typing import NamedTuple


class Problem(NamedTuple):
    field: str | None  # the setting to change; None when no single field is to blame
    message: str

    def __str__(self) -> str:
        return self.message


class ConfigError(ValueError):
    """An invalid experiment setting; `problems` are (field, sentence) pairs, `str()` the sentences."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = [p if isinstance(p, Problem) else Problem(None, str(p)) for p in problems]
        super().__init__("; ".join(p.message for p in self.problems))
