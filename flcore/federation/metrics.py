"""Per-client metrics: each one registered once, with how to compute it and how to show it.

A registered `ClientMetric` is computed for every sampled client at the end of each round
(from a `ClientRound`: the updates as sent, the round's training results, the global model
before and after), lands in `ClientResult.metrics`, is stored (as JSON, no schema change),
exported as a column of `clients.csv`, and drawn by the dashboard as a per-client chart with
its title, axis and caption. `compute=None` marks a number the engine itself fills in: a
typed column of `ClientResult`, or a number an executor reports in `TrainedClients.metrics`.
Adding a metric is one registration here (and, for a number that only the training loop can
see, a line in each executor).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from flcore.registry import Registry
from flcore.training.base import TrainedClients


@dataclass(frozen=True)
class ClientRound:
    """What a client metric can read about one round; row i of each tensor is client_ids[i]."""

    round: int
    client_ids: list[int]
    deltas: torch.Tensor  # [n, P] the updates as sent (after any attack)
    trained: TrainedClients  # what local training returned
    global_before: torch.Tensor  # [P] the global model the clients started from
    global_after: torch.Tensor  # [P] the global model after aggregation


@dataclass(frozen=True)
class ClientMetric:
    axis: str  # the y-axis title of its chart, with the unit
    caption: str  # the line under its chart: what to look for
    compute: Callable[[ClientRound], torch.Tensor] | None = None  # [n]; None: filled in by the engine
    summarize: bool = False  # also store its mean and spread over the round's clients as round metrics
    tab: str = "Clients"  # the Run page tab that draws its chart


CLIENT_METRICS: Registry[ClientMetric] = Registry("client metric")

CLIENT_METRICS.register(
    "train_loss",
    label="Training loss per client",
    description="Each sampled client's mean loss over its local training.",
)(
    ClientMetric(
        "Training loss",
        "Each sampled client's training loss in each round: clients whose loss stays high hold data unlike the rest; "
        "dotted lines and a red x mark malicious clients.",
    )
)
CLIENT_METRICS.register(
    "update_norm",
    label="Update size per client",
    description="L2 norm of the update each client sent (after any attack).",
)(
    ClientMetric(
        "Update norm (L2)",
        "Size (L2 norm) of the update each client sent: outliers are clients whose data or behaviour differs, "
        "and attackers often stand out here.",
    )
)


# Client drift: how far each client pulls from where the federation went this round. The
# aggregated update is the global model's step, global_after - global_before (FedAvg's mean
# update times server_lr; a server optimizer's step; with central DP, the noised mean).
def _global_step(view: ClientRound) -> torch.Tensor:
    return (view.global_after - view.global_before).to(view.deltas)[None, :]


def drift_cosine(view: ClientRound) -> torch.Tensor:
    """cos(u_i, global step): 1 pulls where the model went, 0 elsewhere, -1 against it (0 for a zero vector).
    One matrix-vector product and the norms (torch's cosine_similarity broadcasts the step to
    every row first: 160 ms a round for 131 clients of a 43k-parameter MLP, against about 5)."""
    step = _global_step(view)[0]
    norms = torch.linalg.vector_norm(view.deltas, dim=1).clamp_min(1e-12) * torch.linalg.vector_norm(step).clamp_min(1e-12)
    return (view.deltas @ step) / norms


def drift_distance(view: ClientRound) -> torch.Tensor:
    """||(w_before + u_i) - w_after||: how far the model the client sent lies from the new global model."""
    return torch.linalg.vector_norm(view.deltas - _global_step(view), dim=1)


CLIENT_METRICS.register(
    "drift_cosine",
    label="Drift: agreement with the global update",
    description="Cosine similarity between each client's update and the step the global model took in that round.",
)(
    ClientMetric(
        "Cosine similarity",
        "Cosine similarity between each client's update and the step the global model took: near 1 the client pulls "
        "where the federation went, near 0 or below it pulls elsewhere; attackers and clients with unusual data sit low.",
        drift_cosine,
        summarize=True,
        tab="Drift",
    )
)
CLIENT_METRICS.register(
    "drift_distance",
    label="Drift: distance from the new global model",
    description="L2 distance between the model a client sent (global model + its update) and the global model after aggregation.",
)(
    ClientMetric(
        "L2 distance",
        "How far the model each client sent (the global model plus its update) lies from the new global model: "
        "clients that pull away sit high, attackers highest.",
        drift_distance,
        summarize=True,
        tab="Drift",
    )
)


def round_summaries(values: dict[str, list[float]]) -> dict[str, float]:
    """For each metric registered with `summarize`: its mean and standard deviation over the
    round's clients, as round metrics `<name>_mean` and `<name>_std`."""
    out = {}
    for entry in CLIENT_METRICS.entries():
        if entry.obj.summarize and values.get(entry.name):
            column = np.asarray(values[entry.name], dtype=np.float64)
            with np.errstate(invalid="ignore", over="ignore"):  # a diverging client's inf gives inf or nan, stored as such
                out[f"{entry.name}_mean"], out[f"{entry.name}_std"] = float(column.mean()), float(column.std())
    return out


def compute_client_metrics(view: ClientRound) -> dict[str, list[float]]:
    """The registered metrics that have a `compute`, and those the executor reported, as
    per-client lists (row i is view.client_ids[i])."""
    out = {name: values.tolist() for name, values in view.trained.metrics.items()}
    for entry in CLIENT_METRICS.entries():
        if entry.obj.compute is not None:
            out[entry.name] = entry.obj.compute(view).detach().float().cpu().tolist()
    return out
