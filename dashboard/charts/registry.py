"""The chart registry: each chart is declared once, where it is drawn.

`@chart(name, caption=..., example=...)` on a chart function registers it in `CHARTS` (a
`flcore.registry.Registry`, like the engine's strategies and datasets): its name is the key the
pages place it by, its caption the one line shown under it (`CAPTIONS` is read from here), and
its example says which arguments to draw it with from a `Sample`, a small run in the store's
frames. The server's warm-up (`warm_up`) and the tests draw every registered chart from its
example, so a new chart needs no line in a hand-kept list anywhere. A function that draws several
charts (accuracy and loss of compared runs) is registered once per chart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from flcore.records import EVALUATION_COLUMNS, typed_frame
from flcore.registry import Registry


@dataclass(frozen=True)
class Sample:
    """A run as the charts receive it: the store's frames (`RunStore.rounds_frame`,
    `clients_frame`, `partition_frame`, `offline_frame`, `evaluations_frame`) and what the pages
    know about it."""

    rounds: pd.DataFrame
    clients: pd.DataFrame
    partition: pd.DataFrame
    offline: pd.DataFrame
    num_clients: int
    total_rounds: int | None = None
    class_names: Sequence[str] | None = None
    evaluations: pd.DataFrame = field(default_factory=lambda: typed_frame([], EVALUATION_COLUMNS))

    def empty(self) -> Sample:
        """The same run before its first round: every frame with its columns and no rows."""
        frames = {name: getattr(self, name).iloc[0:0] for name in ("rounds", "clients", "partition", "offline", "evaluations")}
        return replace(self, **frames)

    @property
    def curves(self) -> pd.DataFrame:
        """Two runs to compare (column `run`): this one, "a", and "b" at half its accuracy."""
        rounds = self.rounds
        return pd.concat([rounds.assign(run="a"), rounds.assign(run="b", test_accuracy=rounds["test_accuracy"] / 2)])

    @property
    def sweep(self) -> pd.DataFrame:
        """A sweep of this run (columns `setting`, `seed`): two settings of two seeds each."""
        rounds = self.rounds
        return pd.concat(
            [
                rounds.assign(setting=setting, seed=seed, test_accuracy=rounds["test_accuracy"] * scale + 0.02 * seed)
                for setting, scale in (("lr=0.1", 1.0), ("lr=0.01", 0.5))
                for seed in (0, 1)
            ],
            ignore_index=True,
        )


@dataclass(frozen=True)
class Chart:
    """A registered chart: the function that draws it and the arguments of an example."""

    draw: Callable[..., go.Figure]
    example: Callable[[Sample], tuple]  # a Sample -> the positional arguments of `draw`

    def figure(self, sample: Sample) -> go.Figure:
        """The chart drawn from `sample`, as its example says."""
        return self.draw(*self.example(sample))


CHARTS: Registry[Chart] = Registry("chart")  # an entry's description is the chart's caption


def chart(name: str, *, caption: str, example: Callable[[Sample], tuple]) -> Callable[[Callable[..., go.Figure]], Callable[..., go.Figure]]:
    """Register the decorated function as chart `name`, shown with `caption` under it (the one
    line saying what to look for), drawn for an example with the arguments `example(sample)`."""

    def register(draw: Callable[..., go.Figure]) -> Callable[..., go.Figure]:
        CHARTS.register(name, description=caption)(Chart(draw, example))
        return draw

    return register


def made_up() -> Sample:
    """A tiny made-up run of two clients and two rounds, with every column a chart reads."""
    from flcore.data.partition import counts_frame

    rounds = pd.DataFrame({
        "round": [1, 2], "test_loss": [1.0, 0.5], "test_accuracy": [0.5, 0.7], "wall_time_s": [0.1, 0.1],
        "bytes_received": [10, 10], "epsilon": [1.0, 2.0], "drift_cosine_mean": [0.5, 0.4], "drift_cosine_std": [0.1, 0.2],
        "sim_round_s": [2.0, 3.0], "sim_clock_s": [2.0, 5.0],
        "client_accuracy_mean": [0.45, 0.65], "client_accuracy_worst10": [0.4, 0.6], "client_accuracy_below": [1.0, 0.0],
        "personal_accuracy_mean": [0.7, 0.85], "personal_accuracy_worst10": [0.6, 0.8], "personal_accuracy_below": [0.0, 0.0],
    })  # fmt: skip
    clients = pd.DataFrame({
        "round": [1, 1, 2, 2], "client_id": [0, 1, 0, 1], "train_loss": [1.0, 2.0, 0.5, 1.5],
        "update_norm": [1.0, 1.0, 0.5, 0.5], "malicious": [False, True, False, True],
        "status": ["trained", "trained", "trained", "late"], "drift_cosine": [0.9, -0.5, 0.8, -0.6],
        "drift_distance": [1.0, 3.0, 0.9, 3.2],
    })  # fmt: skip
    offline = pd.DataFrame({"round": [2], "group": [1], "counts": [[0, 1]]})
    evaluations = pd.DataFrame({
        "round": [1, 1, 2, 2], "client_id": [0, 1, 0, 1], "test_samples": [2, 2, 2, 2], "test_loss": [1.0, 1.2, 0.6, 0.8],
        "test_accuracy": [0.5, 0.4, 0.7, 0.6], "personal_loss": [0.5, 0.9, 0.3, 0.5], "personal_accuracy": [0.8, 0.6, 0.9, 0.8],
    })  # fmt: skip
    return Sample(
        rounds, clients, counts_frame(np.array([[3, 1], [0, 4]])), offline, num_clients=2, total_rounds=2, evaluations=evaluations
    )


def warm_up() -> None:
    """Draw (and serialize) every registered chart once, from a tiny made-up run.

    Plotly imports the validators of each trace type on first use, which made the first Run
    page after a server start take about a second more of server CPU, taken from the run it
    showed. The server calls this in the background when it starts."""
    import plotly.io as pio

    sample = made_up()
    for entry in CHARTS.entries():
        pio.to_json(entry.obj.figure(sample), validate=False)
