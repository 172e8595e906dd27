"""The Run page's "Global model" tab: the global model's test accuracy and loss by round, and
the privacy spent (epsilon) by a run with differential privacy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.base import (
    MALICIOUS_COLOR,
    _layout,
    _round_axis,
    _waiting,
    run_color,
    thin,
)
from dashboard.charts.registry import chart


# Global metrics ------------------------------------------------------------------------------
@chart(
    "accuracy",
    caption="Accuracy of the global model on the held-out test set after each round: look for how fast it climbs and where it levels off.",
    example=lambda s: (s.rounds, s.total_rounds),
)
def accuracy_chart(rounds: pd.DataFrame, total_rounds: int | None = None) -> go.Figure:
    """Global test accuracy by round, as a percentage, over the whole run's length."""
    fig = _global_metric_chart(rounds, total_rounds, "test_accuracy", "Global test accuracy", "Test accuracy", 0, "%{y:.1%}")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    return fig


@chart(
    "loss",
    caption="Loss of the global model on the test set after each round: it should fall; a rise means the clients are pulling the model apart.",
    example=lambda s: (s.rounds, s.total_rounds),
)
def loss_chart(rounds: pd.DataFrame, total_rounds: int | None = None) -> go.Figure:
    """Global test loss by round."""
    fig = _global_metric_chart(rounds, total_rounds, "test_loss", "Global test loss", "Test loss (cross-entropy)", 1, "%{y:.3f}")
    fig.update_yaxes(rangemode="tozero")
    return fig


def _global_metric_chart(rounds, total_rounds, column, title, y_title, color, y_format) -> go.Figure:
    """One global metric by round: a line over the rounds stored, on the run's round axis."""
    fig = go.Figure()
    _layout(fig, title, "Round", y_title)
    if rounds.empty:
        _round_axis(fig, total_rounds)
        return _waiting(fig, "Waiting for the first round…")
    name = column.replace("_", " ")
    shown = thin(rounds)
    fig.add_trace(
        go.Scatter(
            x=shown["round"],
            y=shown[column],
            mode="lines+markers" if len(shown) <= 100 else "lines",
            name=name,
            line={"color": run_color(color), "width": 3},
            hovertemplate=f"round %{{x}}<br>{name.split()[-1]} {y_format}<extra></extra>",
        )
    )
    _round_axis(fig, total_rounds, int(rounds["round"].max()))
    return fig


# Privacy -------------------------------------------------------------------------------------
@chart(
    "epsilon",
    caption="Privacy spent so far (epsilon at the run's delta, from Opacus's accountant): it only grows; lower is more private, and a dashed line marks the budget.",
    example=lambda s: (s.rounds, s.total_rounds, 1e-5, 3.0),
)
def epsilon_chart(
    rounds: pd.DataFrame,
    total_rounds: int | None = None,
    delta: float | None = None,
    target: float | None = None,
    kind: str | None = None,
) -> go.Figure:
    """Epsilon spent after each round (the `epsilon` round metric), with the budget, if any,
    dashed; the title says its `kind` (central or local, `flcore.federation.privacy.EPSILON_KINDS`) and delta."""
    fig = go.Figure()
    what = f"{kind} epsilon" if kind else "epsilon"
    _layout(fig, f"Privacy spent: {what}" + (f" at delta = {delta:g}" if delta else ""), "Round", "Epsilon (lower is more private)")
    _round_axis(fig, total_rounds, int(rounds["round"].max()) if len(rounds) else None)
    if rounds.empty or "epsilon" not in rounds:
        return _waiting(fig, "Waiting for the first round…")
    finite = rounds[np.isfinite(rounds["epsilon"].to_numpy(dtype=np.float64))]
    if finite.empty:
        return _waiting(fig, "No noise (dp_noise_multiplier = 0): epsilon is infinite…")
    shown = thin(finite)
    fig.add_trace(
        go.Scatter(
            x=shown["round"],
            y=shown["epsilon"],
            mode="lines+markers" if len(shown) <= 100 else "lines",
            name="epsilon",
            line={"color": run_color(3), "width": 3},
            hovertemplate="round %{x}<br>epsilon %{y:.3g}<extra></extra>",
        )
    )
    if target is not None:
        fig.add_hline(y=target, line={"dash": "dash", "color": MALICIOUS_COLOR}, annotation_text=f"budget {target:g}")
    fig.update_yaxes(rangemode="tozero")
    return fig
