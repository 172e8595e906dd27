"""Sweeps: a grid of settings and seeds, expanded into one config per combination.

A grid is a JSON object whose keys are config fields and whose values are the lists of values
to try; the key ``"seeds"`` lists the seeds each setting is run with, e.g.

    {"strategy": ["fedavg", "median"], "alpha": [0.1, 1.0], "seeds": [0, 1, 2]}

is 2 x 2 settings x 3 seeds = 12 runs. Every other field comes from a base config (the CLI's
``--config`` file and flags). `check_grid` refuses a bad grid with a sentence naming the key;
`expand` builds every combination's config and refuses the whole sweep, naming the settings,
when any combination is not a valid config, so that a sweep is queued whole or not at all. A
*setting* is a combination without its seed: the runs of one setting differ only in the seed,
and Compare draws their mean and spread (`final_accuracy_table` gives the numbers).
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from flcore.config import ConfigError, ExperimentConfig

SEEDS = "seeds"
MAX_RUNS = 1000  # a bigger grid is more likely a mistake than a plan
NAME_LENGTH = 200  # ExperimentConfig.name's limit


class SweepError(ValueError):
    """A grid that cannot be swept; the message says what to change."""


@dataclass(frozen=True)
class Combination:
    setting: tuple[tuple[str, Any], ...]  # the grid's (field, value) pairs, seeds aside, in grid order
    seed: int
    config: ExperimentConfig


def read_grid(path: str | Path) -> dict[str, list]:
    """The grid in a JSON file, checked (see `check_grid`)."""
    path = Path(path)
    if not path.exists():
        raise SweepError(f"--grid {path} does not exist")
    try:
        grid = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SweepError(f"--grid {path} is not valid JSON: {err}") from None
    return check_grid(grid)


def check_grid(grid: Any) -> dict[str, list]:
    """`grid` if every key is a config field (or "seeds") with a non-empty list of distinct
    values; else SweepError naming the first key that is not."""
    if not isinstance(grid, dict):
        raise SweepError('the grid must be a JSON object of field: [values], e.g. {"lr": [0.01, 0.1], "seeds": [0, 1]}')
    if not grid:
        raise SweepError('the grid is empty; give at least one field with a list of values, e.g. {"lr": [0.01, 0.1]}')
    fields = list(ExperimentConfig.model_fields)
    for key, values in grid.items():
        if key == "seed":
            raise SweepError(f'grid key "seed" names one seed; list the seeds under "seeds", e.g. "seeds": {_example(values)}')
        if key == "name":
            raise SweepError('grid key "name" cannot be swept: the sweep names each of its runs after its settings and seed')
        if key != SEEDS and key not in fields:
            close = difflib.get_close_matches(key, [*fields, SEEDS], n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            raise SweepError(f'grid key "{key}" is not a setting{hint}; `python -m flcore run --help` lists the settings')
        if not isinstance(values, list):
            raise SweepError(f'grid key "{key}" must be a list of values, e.g. "{key}": {_example(values)}; got {json.dumps(values)}')
        if not values:
            raise SweepError(f'grid key "{key}" has an empty list; give at least one value')
        shown = [json.dumps(v, sort_keys=True) for v in values]
        repeated = next((v for v in shown if shown.count(v) > 1), None)
        if repeated is not None:
            raise SweepError(f'grid key "{key}" lists {repeated} twice; each value once')
    if SEEDS in grid:
        bad = next((s for s in grid[SEEDS] if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= 2**31 - 1), None)
        if bad is not None:
            raise SweepError(f'"seeds" must be whole numbers from 0 to {2**31 - 1}; got {json.dumps(bad)}')
    return grid


def _example(value: Any) -> str:
    return json.dumps(value if isinstance(value, list) else [value])


def size(grid: dict[str, list]) -> int:
    return math.prod(len(v) for v in grid.values())


def describe_size(grid: dict[str, list]) -> str:
    """E.g. '2 strategy x 2 alpha x 3 seeds = 12 runs'."""
    parts = [f"{len(v)} {k}" for k, v in grid.items() if k != SEEDS] + ([f"{len(grid[SEEDS])} seeds"] if SEEDS in grid else [])
    total = size(grid)
    return f"{' x '.join(parts)} = {total} run{'s' if total != 1 else ''}"


def setting_label(setting: tuple[tuple[str, Any], ...]) -> str:
    """E.g. 'strategy=median, alpha=0.1' (the base settings when the grid sweeps only seeds)."""
    return ", ".join(f"{k}={_value(v)}" for k, v in setting) or "base settings"


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def setting_of(config: ExperimentConfig, grid: dict[str, list]) -> tuple[tuple[str, Any], ...]:
    """The setting a run of the sweep belongs to: its values of the grid's fields, seeds aside."""
    return tuple((k, getattr(config, k, None)) for k in grid if k != SEEDS)


def expand(grid: dict[str, list], base: ExperimentConfig, name: str) -> list[Combination]:
    """Every combination's config (settings in grid order, seeds innermost), each named
    '<name> · <setting> · seed <s>'. SweepError, naming the refused settings, if any is invalid."""
    grid = check_grid(grid)
    total = size(grid)
    if total > MAX_RUNS:
        raise SweepError(f"the grid makes {describe_size(grid)}, more than {MAX_RUNS}; sweep fewer values at once")
    keys = [k for k in grid if k != SEEDS]
    seeds = grid.get(SEEDS, [base.seed])
    combos, refused = [], []
    for values in itertools.product(*(grid[k] for k in keys)):
        setting = tuple(zip(keys, values))
        label = setting_label(setting)
        try:
            configs = [base.replace(**dict(setting), seed=s, name=_name(name, label, s)) for s in seeds]
        except ConfigError as err:
            refused.append(f"{label}: {err}")
            continue
        combos += [Combination(setting, s, c) for s, c in zip(seeds, configs)]
    if refused:
        shown = "; ".join(refused[:5]) + (f"; and {len(refused) - 5} more" if len(refused) > 5 else "")
        settings = len(refused)
        raise SweepError(
            f"{settings} of the grid's {total // len(seeds)} settings {'is' if settings == 1 else 'are'} refused, so nothing was queued: {shown}"
        )
    return combos


def _name(sweep: str, label: str, seed: int) -> str:
    tail = f" · {label} · seed {seed}"
    return (sweep[: max(0, NAME_LENGTH - len(tail))] + tail)[-NAME_LENGTH:]


def final_accuracy_table(finals: pd.DataFrame) -> pd.DataFrame:
    """Per setting (in order of appearance): the runs with a result, their final accuracy's
    mean and standard deviation over seeds (sample std; 0 with one seed), and both as text.

    `finals` has columns setting, seed and final_accuracy (NaN for a run without a round yet)."""
    rows = []
    for setting, group in finals.groupby("setting", sort=False):
        values = group["final_accuracy"].dropna()
        mean = float(values.mean()) if len(values) else math.nan
        std = float(values.std(ddof=1)) if len(values) > 1 else (0.0 if len(values) else math.nan)
        text = f"{mean:.2%} ± {std:.2%}" if len(values) else "no rounds yet"
        rows.append({"setting": setting, "runs": f"{len(values)} / {len(group)}", "mean": mean, "std": std, "final accuracy": text})
    return pd.DataFrame(rows, columns=["setting", "runs", "mean", "std", "final accuracy"])
