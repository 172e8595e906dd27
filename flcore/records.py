"""What a round produces, defined once: the records, their columns and their dtypes.

`RoundResult` (one per round) and `ClientResult` (one per sampled client per round) are plain
frozen dataclasses. Their columns (`ROUND_COLUMNS`, `CLIENT_COLUMNS`) are derived here and
nowhere else: the store's tables and frames, `rounds.csv` and `clients.csv`, and the README's
tables all follow them. A number beyond those (a strategy's metrics, a registered client
metric, see `flcore.federation.metrics`) goes in the open `metrics` mapping of either record: it is stored
as JSON, read back as an extra float column and exported as an extra CSV column, with no
change to the store's schema. A client's `status` says whether its update arrived (`STATUSES`);
a round's `offline` says, in a bounded form, which clients were not online to be sampled.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from flcore.strategies.base import ServerState


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # a pandas dtype: "int64", "float64", "bool" or "object" (text)


# What became of a sampled client's round (flcore.federation.availability): its update arrived after all of
# its local steps, or after part of them (a straggler that sent what it finished); it came too
# late to be used (a straggler the server ignored, or past the round's deadline); or it never came.
STATUSES = ("trained", "partial", "late", "dropped")
REPORTED = ("trained", "partial")  # the statuses whose update the server aggregates


@dataclass(frozen=True)
class ClientResult:
    client_id: int
    num_samples: int
    num_steps: int  # local steps it ran (0 when it did not train: late or dropped)
    train_loss: float  # NaN when it did not train, as are the two below
    train_accuracy: float
    update_norm: float  # L2 norm of the update as sent (after any attack)
    malicious: bool
    status: str = "trained"  # one of STATUSES
    metrics: dict[str, float] = field(default_factory=dict)  # registered client metrics, by name


@dataclass(frozen=True)
class ClientEvaluation:
    """One client on its own test data after a round (flcore.federation.personalization): every
    client, sampled or not, every `eval_every` rounds."""

    client_id: int
    test_samples: int  # its held-out samples (0: none; its numbers are then NaN)
    test_loss: float  # the global model's
    test_accuracy: float
    personal_loss: float  # its own model's, under a personalized method (NaN without one)
    personal_accuracy: float


@dataclass(frozen=True)
class Offline:
    """The clients offline in a round, in a bounded form: how many of each `group` consecutive
    client ids were offline (group 1: exactly which), whatever the number of clients."""

    group: int
    counts: tuple[int, ...]

    def ids(self) -> list[int]:
        """The offline client ids, when the form is exact (group 1)."""
        if self.group != 1:
            raise ValueError("the offline clients were stored in groups; only their counts are known")
        return [i for i, n in enumerate(self.counts) if n]


@dataclass(frozen=True)
class RoundResult:
    round: int  # 1-based
    sampled_clients: tuple[int, ...]
    clients: tuple[ClientResult, ...]
    test_loss: float
    test_accuracy: float
    wall_time_s: float
    bytes_sent: int  # server -> clients
    bytes_received: int  # clients -> server
    metrics: dict[str, float] = field(default_factory=dict)  # the strategy's (and the engine's) extra numbers
    offline: Offline | None = None  # who was offline (None: everyone was online)
    evaluations: tuple[ClientEvaluation, ...] = ()  # every client on its own test data (a round that evaluates them)
    state: ServerState | None = field(default=None, repr=False, compare=False)  # the server state after the round

    def row(self) -> dict[str, Any]:
        """The global numbers as one flat row: ROUND_COLUMNS, then the metrics."""
        return {
            "round": self.round,
            "test_loss": self.test_loss,
            "test_accuracy": self.test_accuracy,
            "num_sampled": len(self.sampled_clients),
            "mean_train_loss": _mean([c.train_loss for c in self.clients if c.status in REPORTED]),
            "wall_time_s": self.wall_time_s,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            **self.metrics,
        }

    def client_rows(self) -> list[dict[str, Any]]:
        """One flat row per sampled client: CLIENT_COLUMNS, then its metrics."""
        return [{"round": self.round, **_typed_fields(c), **c.metrics} for c in self.clients]

    def evaluation_rows(self) -> list[dict[str, Any]]:
        """One flat row per evaluated client: EVALUATION_COLUMNS."""
        return [{"round": self.round, **dataclasses.asdict(e)} for e in self.evaluations]


_DTYPES = {int: "int64", float: "float64", bool: "bool", str: "object", "int": "int64", "float": "float64", "bool": "bool", "str": "object"}


def _mean(values: list[float]) -> float:
    """The mean, NaN for none (a round in which no update arrived)."""
    return float(np.mean(values)) if values else float("nan")


def _typed_fields(record: ClientResult) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.name != "metrics"}


ROUND_COLUMNS: tuple[Column, ...] = (
    Column("round", "int64"),
    Column("test_loss", "float64"),
    Column("test_accuracy", "float64"),
    Column("num_sampled", "int64"),
    Column("mean_train_loss", "float64"),
    Column("wall_time_s", "float64"),
    Column("bytes_sent", "int64"),
    Column("bytes_received", "int64"),
)  # the keys of RoundResult.row() before its metrics; tests/test_records.py checks they agree
CLIENT_COLUMNS: tuple[Column, ...] = (Column("round", "int64"),) + tuple(
    Column(f.name, _DTYPES[f.type]) for f in dataclasses.fields(ClientResult) if f.name != "metrics"
)
EVALUATION_COLUMNS: tuple[Column, ...] = (Column("round", "int64"),) + tuple(
    Column(f.name, _DTYPES[f.type]) for f in dataclasses.fields(ClientEvaluation)
)
TIMING_COLUMNS = ("wall_time_s",)  # machine-dependent: kept out of rounds.csv so one seed gives identical files


def names(columns: tuple[Column, ...]) -> list[str]:
    return [c.name for c in columns]


def typed_frame(rows: list[tuple], columns: tuple[Column, ...], metrics: list[dict[str, float]] | None = None) -> pd.DataFrame:
    """A frame with `columns` in their dtypes, then one float column per metric name."""
    frame = pd.DataFrame(rows, columns=names(columns)).astype({c.name: c.dtype for c in columns})
    if metrics is None or not any(metrics):
        return frame
    extra = pd.DataFrame(metrics, index=frame.index, dtype="float64")
    return pd.concat([frame, extra], axis=1)


def reported(clients: pd.DataFrame) -> pd.DataFrame:
    """The rows of a clients frame whose update reached the server (every row of a run stored
    before client statuses existed)."""
    if "status" not in clients:
        return clients
    return clients[clients["status"].isin(REPORTED)]


def best_round(rounds: pd.DataFrame) -> pd.Series | None:
    """The row of the round with the best test accuracy (the first, on a tie); None before any."""
    if rounds.empty:
        return None
    return rounds.loc[rounds["test_accuracy"].idxmax()]
