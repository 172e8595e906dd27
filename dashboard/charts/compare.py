"""The Compare page: several runs' curves overlaid, accuracy against what each run's clients
sent or the privacy it spent, the final accuracy of every client of each run, and a sweep's mean
curve over seeds with a band of one standard deviation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.base import (
    _RUN_DASHES,
    _cumulative_bytes,
    _fill,
    _layout,
    _round_axis,
    _waiting,
    plain,
    run_color,
    thin,
)
from dashboard.charts.fairness import MODELS, _threshold_line
from dashboard.charts.registry import chart


# Comparing runs ------------------------------------------------------------------------------
@chart(
    "compare_accuracy",
    caption="Test accuracy of each selected run by round: the higher and earlier a curve levels off, the better that setting.",
    example=lambda s: (s.curves, "test_accuracy"),
)
@chart(
    "compare_loss",
    caption="Test loss of each selected run by round: lower is better; a curve that rises or jumps is a run that diverged.",
    example=lambda s: (s.curves, "test_loss"),
)
def compare_chart(curves: pd.DataFrame, metric: str = "test_accuracy") -> go.Figure:
    """Overlay one metric of several runs: `curves` has columns run, round and `metric`."""
    accuracy = metric == "test_accuracy"
    title = "Test accuracy by round" if accuracy else "Test loss by round"
    fig = go.Figure()
    _layout(fig, title, "Round", "Test accuracy" if accuracy else "Test loss (cross-entropy)", legend_title="Run")
    if accuracy:
        fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    if curves.empty:
        return _waiting(fig, "Pick runs that have finished at least one round")
    for i, (run, rows) in enumerate(curves.groupby("run", sort=False)):
        rows = thin(rows.sort_values("round"))
        fig.add_trace(
            go.Scatter(
                x=rows["round"],
                y=rows[metric],
                mode="lines+markers",
                name=plain(run),
                line={"color": run_color(i), "width": 2, "dash": _RUN_DASHES[i % len(_RUN_DASHES)]},
                marker={"size": 4},
                hovertemplate=f"{plain(run)}<br>round %{{x}}<br>%{{y:{'.1%' if accuracy else '.3f'}}}<extra></extra>",
            )
        )
    _round_axis(fig, None, int(curves["round"].max()))
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0})
    return fig


def sweep_bands(curves: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per setting and round: the mean of `metric` over the seeds that reached that round, its
    standard deviation (sample; 0 with one seed), mean -/+ std, and how many seeds there are.

    `curves` has columns setting, seed, round and `metric`; settings keep their order."""
    columns = ["setting", "round", "mean", "std", "low", "high", "seeds"]
    if curves.empty:
        return pd.DataFrame(columns=columns)
    grouped = curves.groupby(["setting", "round"], sort=False)[metric]
    bands = grouped.agg(mean="mean", std=lambda v: v.std(ddof=1) if len(v) > 1 else 0.0, seeds="count").reset_index()
    order = {s: i for i, s in enumerate(curves["setting"].drop_duplicates())}
    bands = bands.sort_values(["setting", "round"], key=lambda c: c.map(order) if c.name == "setting" else c, kind="stable")
    bands["low"], bands["high"] = bands["mean"] - bands["std"], bands["mean"] + bands["std"]
    return bands[columns].reset_index(drop=True)


@chart(
    "sweep_accuracy",
    caption="Each line is one setting's test accuracy averaged over its seeds; the band spans one standard deviation either side. Settings whose bands overlap are not told apart by these seeds.",
    example=lambda s: (s.sweep, "test_accuracy"),
)
@chart(
    "sweep_loss",
    caption="Each line is one setting's test loss averaged over its seeds, with a band of one standard deviation either side: a wide band means the result depends on the seed as much as on the setting.",
    example=lambda s: (s.sweep, "test_loss"),
)
def sweep_chart(curves: pd.DataFrame, metric: str = "test_accuracy") -> go.Figure:
    """One mean line per setting of a sweep, with a band of one standard deviation over seeds.

    `curves` has columns setting, seed, round and `metric` (one row per run and round)."""
    accuracy = metric == "test_accuracy"
    fig = go.Figure()
    _layout(
        fig,
        "Test accuracy by round: mean over seeds, ± 1 std" if accuracy else "Test loss by round: mean over seeds, ± 1 std",
        "Round",
        "Test accuracy" if accuracy else "Test loss (cross-entropy)",
        legend_title="Setting",
    )
    if accuracy:
        fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    bands = sweep_bands(curves, metric)
    if bands.empty:
        return _waiting(fig, "Waiting for the sweep's first round…")
    shown = ".1%" if accuracy else ".3f"
    for i, (setting, rows) in enumerate(bands.groupby("setting", sort=False)):
        rows, color = thin(rows), run_color(i)
        fig.add_trace(
            go.Scatter(
                x=pd.concat([rows["round"], rows["round"][::-1]]),
                y=pd.concat([rows["high"], rows["low"][::-1]]),
                mode="lines",
                fill="toself",
                fillcolor=_fill(color),
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
                legendgroup=str(setting),
                name=f"{plain(setting)} ± 1 std",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=rows["round"],
                y=rows["mean"],
                mode="lines",
                name=plain(setting),
                legendgroup=str(setting),
                line={"color": color, "width": 2, "dash": _RUN_DASHES[i % len(_RUN_DASHES)]},
                customdata=np.stack([rows["std"], rows["seeds"]], axis=1),
                hovertemplate=f"{plain(setting)}<br>round %{{x}}<br>mean %{{y:{shown}}} ± %{{customdata[0]:{shown}}}"
                "<br>%{customdata[1]} seeds<extra></extra>",
            )
        )
    _round_axis(fig, None, int(bands["round"].max()))
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0})
    return fig


@chart(
    "compare_bytes",
    caption="Test accuracy of each run against what its clients had sent so far: further left for the same accuracy means cheaper communication.",
    example=lambda s: (s.curves, "bytes"),
)
@chart(
    "compare_epsilon",
    caption="Test accuracy of each private run against the privacy it had spent: higher and further left is a better trade of accuracy for privacy.",
    example=lambda s: (s.curves, "epsilon"),
)
def compare_tradeoff_chart(curves: pd.DataFrame, x: str, epsilon_kinds: dict[str, tuple[str, float]] | None = None) -> go.Figure:
    """Test accuracy of several runs against the bytes their clients sent so far (x="bytes") or
    the epsilon they had spent (x="epsilon"; runs without differential privacy are left out).
    `epsilon_kinds` (run -> (kind, delta)) marks each run's epsilon in its name and its marker:
    a central and a local epsilon are different guarantees and are never drawn unmarked."""
    epsilon = x == "epsilon"
    kinds = epsilon_kinds or {}
    mixed = len({kind for kind, _ in kinds.values()}) > 1
    title = "Test accuracy against privacy spent" if epsilon else "Test accuracy against data sent by clients"
    x_title = "Sent by clients so far (bytes)"
    if epsilon:
        x_title = "Epsilon spent (lower is more private)" + ("; central and local epsilons are different guarantees" if mixed else "")
    fig = go.Figure()
    _layout(fig, title, x_title, "Test accuracy", legend_title="Run")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    if not epsilon:
        fig.update_xaxes(tickformat="~s", ticksuffix="B")
    fig.update_xaxes(rangemode="tozero")
    if curves.empty:
        return _waiting(fig, "Pick runs that have finished at least one round")
    drawn = 0
    for i, (run, rows) in enumerate(curves.groupby("run", sort=False)):
        rows = rows.sort_values("round")
        if epsilon:
            if "epsilon" not in rows or not np.isfinite(rows["epsilon"].to_numpy(dtype=np.float64)).any():
                continue
            rows = rows[np.isfinite(rows["epsilon"].to_numpy(dtype=np.float64))]
            xs = rows["epsilon"]
        else:
            xs = _cumulative_bytes(rows)
        rows = thin(rows.assign(_x=xs.to_numpy()))
        kind, delta = kinds.get(run, (None, None))
        name = f"{plain(run)} ({kind} epsilon, delta {delta:g})" if epsilon and kind else plain(run)
        symbol = "diamond" if kind and kind.startswith("local") else "circle"
        fig.add_trace(
            go.Scatter(
                x=rows["_x"], y=rows["test_accuracy"], mode="lines+markers", name=name, customdata=rows["round"],
                line={"color": run_color(i), "width": 2, "dash": _RUN_DASHES[i % len(_RUN_DASHES)]},
                marker={"size": 4 if symbol == "circle" else 7, "symbol": symbol},
                hovertemplate=f"{plain(run)}<br>round %{{customdata}}<br>" + ("epsilon %{x:.3g}" if epsilon else "%{x:.3s}B sent")
                + "<br>%{y:.1%}<extra></extra>",
            )
        )  # fmt: skip
        drawn += 1
    if not drawn:
        return _waiting(fig, "Pick runs with differential privacy on: these have no epsilon…")
    fig.update_layout(showlegend=True, legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0})  # named even when alone
    return fig


# Every client of each run ----------------------------------------------------------------------
def final_client_accuracies(evaluations: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each run's clients at its last evaluated round: columns run, client_id, test_accuracy,
    personal_accuracy (`evaluations`: run label -> its evaluations frame; runs without any left out)."""
    columns = ["run", "client_id", "test_accuracy", "personal_accuracy"]
    parts = [
        frame.loc[frame["round"] == frame["round"].max(), columns[1:]].assign(run=run) for run, frame in evaluations.items() if len(frame)
    ]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


@chart(
    "compare_client_accuracy",
    caption="Each run's clients at its last evaluated round, each on its own test data, with the global model and with its own "
    "model: higher and tighter boxes serve every client better; a low whisker is a client left behind.",
    example=lambda s: (final_client_accuracies({"a": s.evaluations, "b": s.evaluations.assign(personal_accuracy=np.nan)}),),
)
def compare_client_accuracy_chart(finals: pd.DataFrame, threshold: float | None = None) -> go.Figure:
    """One box of final client accuracies per run (and one for the clients' own models where the
    run has them), every client a point: `finals` as `final_client_accuracies` returns it."""
    fig = go.Figure()
    _layout(fig, "Final accuracy of every client, by run", "Run", "Client test accuracy", legend_title="Model")
    fig.update_yaxes(range=[-0.02, 1.02], tickformat=".0%")
    if finals.empty:
        return _waiting(fig, "Pick runs that evaluated every client on its own test data (client test fraction above 0)")
    order = list(dict.fromkeys(finals["run"]))
    for column, _, name, color in MODELS:
        rows = finals[np.isfinite(finals[column].to_numpy(dtype=np.float64))]
        if rows.empty:
            continue
        fig.add_trace(
            go.Box(
                x=[plain(r) for r in rows["run"]], y=rows[column], name=name, offsetgroup=name, boxpoints="all", jitter=0.4,
                pointpos=0, line={"color": color}, fillcolor=_fill(color, 0.25), marker={"size": 4, "opacity": 0.7},
                customdata=rows["client_id"], hovertemplate=f"%{{x}}<br>client %{{customdata}}, {name}<br>%{{y:.1%}}<extra></extra>",
            )
        )  # fmt: skip
    _threshold_line(fig, threshold)
    fig.update_layout(boxmode="group", showlegend=True, legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0})
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=[plain(r) for r in order])
    return fig
