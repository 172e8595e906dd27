"""The Run page's "Time and communication" tab: accuracy against the simulated clock, how long
each round took on it, and accuracy against what the clients have sent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.base import (
    MAX_ROUND_BARS,
    _bin_centers,
    _binned_sums,
    _cumulative_bytes,
    _layout,
    _round_axis,
    _waiting,
    bin_width,
    run_color,
    thin,
)
from dashboard.charts.registry import chart


# The simulated clock ---------------------------------------------------------------------------
def _time_unit(seconds: float) -> tuple[str, float]:
    for unit, size in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= 3 * size:
            return unit, size
    return "s", 1.0


@chart(
    "time_accuracy",
    caption="Accuracy of the global model against the simulated time at the end of each round: what a deployment would see on the wall clock; slow or missing clients stretch it to the right.",
    example=lambda s: (s.rounds,),
)
def time_accuracy_chart(rounds: pd.DataFrame) -> go.Figure:
    """Global test accuracy against the simulated time at the end of each round."""
    fig = go.Figure()
    _layout(fig, "Test accuracy against simulated time", "Simulated time", "Test accuracy")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    if rounds.empty:
        return _waiting(fig, "Waiting for the first round…")
    if "sim_clock_s" not in rounds or rounds["sim_clock_s"].isna().all():
        return _waiting(fig, "This run was made before flcore had a simulated clock")
    shown = thin(rounds.dropna(subset=["sim_clock_s"]))
    unit, size = _time_unit(float(shown["sim_clock_s"].max()))
    fig.add_trace(
        go.Scatter(
            x=shown["sim_clock_s"] / size,
            y=shown["test_accuracy"],
            mode="lines+markers" if len(shown) <= 100 else "lines",
            name="test accuracy",
            line={"color": run_color(0), "width": 3},
            customdata=shown["round"],
            hovertemplate=f"round %{{customdata}}<br>%{{x:.3g}} {unit}<br>accuracy %{{y:.1%}}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text=f"Simulated time ({unit})", rangemode="tozero")
    return fig


@chart(
    "round_time",
    caption="How long each round took on the simulated clock: until the slowest client whose update was used had uploaded, or the deadline (dashed) when some did not report by then.",
    example=lambda s: (s.rounds, s.total_rounds, 5.5),
)
def round_time_chart(rounds: pd.DataFrame, total_rounds: int | None = None, deadline_s: float | None = None) -> go.Figure:
    """The simulated duration of each round (bars, the mean over bins of rounds past
    MAX_ROUND_BARS), with the deadline as a dashed line when there is one."""
    title = "Simulated duration of each round"
    fig = go.Figure()
    _layout(fig, title, "Round", "Simulated duration (s)")
    if rounds.empty or "sim_round_s" not in rounds or rounds["sim_round_s"].isna().all():
        _round_axis(fig, total_rounds)
        return _waiting(fig, "Waiting for the first round…" if rounds.empty else "This run was made before flcore had a simulated clock")
    timed = rounds.dropna(subset=["sim_round_s"])
    last = int(timed["round"].max())
    width = bin_width(last, MAX_ROUND_BARS)
    x, y = timed["round"].to_numpy(), timed["sim_round_s"].to_numpy()
    if width > 1:
        sums, counts = _binned_sums(np.zeros(len(x), dtype=np.int64), x - 1, y, (1, last), (1, width))
        keep = counts[0] > 0
        x, y = _bin_centers(width, sums.shape[1], 1)[keep], (sums[0] / np.maximum(counts[0], 1))[keep]
        fig.update_layout(title_text=f"{title} (mean over {width} rounds)")
    fig.add_trace(go.Bar(x=x, y=y, name="round", marker_color=run_color(0), hovertemplate="round %{x:.0f}<br>%{y:.3g} s<extra></extra>"))
    if deadline_s is not None:
        fig.add_hline(y=deadline_s, line={"dash": "dash", "color": "#555"}, annotation_text="deadline", annotation_position="top left")
    fig.update_yaxes(rangemode="tozero")
    _round_axis(fig, total_rounds, last)
    return fig


# Communication ---------------------------------------------------------------------------------
@chart(
    "accuracy_bytes",
    caption="Test accuracy against everything the clients have sent so far: compression moves the curve left; a curve that climbs early is cheap accuracy.",
    example=lambda s: (s.rounds,),
)
def accuracy_bytes_chart(rounds: pd.DataFrame) -> go.Figure:
    """Global test accuracy against the bytes the clients have sent so far."""
    fig = go.Figure()
    _layout(fig, "Accuracy against data sent by clients", "Sent by clients so far (bytes)", "Test accuracy")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    fig.update_xaxes(tickformat="~s", ticksuffix="B", rangemode="tozero")
    if rounds.empty:
        return _waiting(fig, "Waiting for the first round…")
    ordered = rounds.sort_values("round").assign(sent=_cumulative_bytes(rounds))
    shown = thin(ordered)
    fig.add_trace(
        go.Scatter(
            x=shown["sent"],
            y=shown["test_accuracy"],
            mode="lines+markers" if len(shown) <= 100 else "lines",
            name="test accuracy",
            line={"color": run_color(0), "width": 3},
            customdata=shown["round"],
            hovertemplate="round %{customdata}<br>%{x:.3s}B sent<br>accuracy %{y:.1%}<extra></extra>",
        )
    )
    return fig
