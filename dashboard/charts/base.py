"""What every chart shares: the colours, the layout, the bounds on what a browser is sent.

A client has one colour everywhere (`client_color`), a label one colour everywhere
(`label_color`), a compared run one colour (`run_color`), so a reader can follow client 3 from the
partition to its loss curve. Every chart gets its title and labelled axes from `_layout`, says
why it is empty with `_waiting`, and shows text people typed through `plain`. Big runs are
thinned (`thin`) and binned (`bin_width`, `_binned_mean`) so that a chart sends the browser a
bounded amount whatever the run's size. Per-client charts switch from one line per client to a
client x round heatmap above `MANY_CLIENTS` clients, where lines would be unreadable.
"""

from __future__ import annotations

import colorsys
import html
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

MANY_CLIENTS = 20  # above this many clients, per-client lines become a heatmap
MAX_BARS = 100  # the stacked bar chart of a partition shows at most this many clients
MAX_MARKS = 4000  # the participation chart switches from marks to a heatmap above this many
# What a browser is sent, whatever the size of the run: a line has at most MAX_POINTS points
# (longer runs are thinned evenly, the last round always kept), a heatmap at most MAX_COLUMNS
# rounds by MAX_ROWS clients (more are averaged in equal bins, and the title says so), a bar
# chart over rounds at most MAX_ROUND_BARS bars. More than that is more than a chart has pixels.
MAX_POINTS = 600
MAX_COLUMNS = 240
MAX_ROWS = 200
MAX_ROUND_BARS = 120

_CLIENT_PALETTE = (
    "#2E91E5",
    "#E15F99",
    "#1CA71C",
    "#B68100",
    "#750D86",
    "#EB663B",
    "#00A08B",
    "#222A2A",
    "#DA16FF",
    "#6C7C32",
    "#511CFB",
    "#862A16",
    "#778AAE",
    "#FB00D1",
    "#A777F1",
    "#620042",
    "#1616A7",
    "#DA60CA",
    "#6C4516",
    "#0D2A63",
    "#AF0038",
    "#B2828D",
    "#FC0080",
    "#FB0D0D",
)  # Plotly's Dark24, reordered so the first ten differ most; red comes last: it marks malicious clients
_LABEL_PALETTE = ("#4C78A8", "#F58518", "#E45756", "#72B7B2", "#54A24B", "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC")
_RUN_DASHES = ("solid", "dash", "dot", "dashdot")  # runs with identical curves stay visible
_RUN_PALETTE = ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880", "#FF97FF", "#FECB52")
MALICIOUS_COLOR = "#D62728"


def _golden(index: int, saturation: float, lightness: float) -> str:
    """A colour for indices past a palette's end: hues spaced by the golden angle never repeat."""
    r, g, b = colorsys.hls_to_rgb((index * 0.618033988749895) % 1.0, lightness, saturation)
    return f"#{round(r * 255):02X}{round(g * 255):02X}{round(b * 255):02X}"


def client_color(client_id: int) -> str:
    """The colour of client `client_id` in every chart."""
    client_id = int(client_id)
    if 0 <= client_id < len(_CLIENT_PALETTE):
        return _CLIENT_PALETTE[client_id]
    return _golden(client_id, 0.65, 0.42)


def label_color(label: int) -> str:
    """The colour of class `label` in every chart."""
    label = int(label)
    if 0 <= label < len(_LABEL_PALETTE):
        return _LABEL_PALETTE[label]
    return _golden(label + 7, 0.55, 0.55)


def run_color(index: int) -> str:
    """The colour of the index-th run in a comparison."""
    return _RUN_PALETTE[index % len(_RUN_PALETTE)]


def _fill(color: str, alpha: float = 0.18) -> str:
    """`color` (#RRGGBB) as a translucent fill."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


# Shared layout -------------------------------------------------------------------------------
def _layout(fig: go.Figure, title: str, x_title: str, y_title: str, *, legend_title: str | None = None, height: int = 380) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left"},
        xaxis_title=x_title,
        yaxis_title=y_title,
        legend_title_text=legend_title,
        height=height,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        hovermode="closest",
        uirevision="keep",  # a user's zoom survives the redraw after each new round
    )
    return fig


def _round_axis(fig: go.Figure, total_rounds: int | None, last_round: int | None = None) -> None:
    """Rounds are whole numbers; with the run's length known, the axis spans the whole run."""
    end = total_rounds or last_round
    if end:
        fig.update_xaxes(range=[0.5, end + 0.5])
    fig.update_xaxes(tickformat="d", rangemode="tozero")
    if end and end <= 20:
        fig.update_xaxes(tickmode="array", tickvals=list(range(1, end + 1)))


def _symbols(malicious: np.ndarray, usual: str) -> np.ndarray | str:
    """Per-point marker symbols: an x for each malicious point, `usual` for the others; one
    symbol for all when none is malicious (Plotly validates each element of a list: 15 ms for
    1,000 points, on every redraw)."""
    return np.where(malicious, "x", usual) if malicious.any() else usual


def _rows_height(rows: int) -> int:
    """Height of a chart with one row per client: readable rows, but never a wall."""
    return max(380, min(700, 12 * rows + 140))


def _waiting(fig: go.Figure, message: str) -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font={"size": 14, "color": "#888"})
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig


def plain(text: object) -> str:
    """`text` people typed (a run name, a label of an uploaded file) as Plotly shows it, exactly as
    typed: Plotly renders tags such as `<a href>`, `<b>` and `<br>` in trace names, tick labels and
    hover text, and `%{...}` in a hover template, so `<`, `>`, `&` and `%` become character
    references (which Plotly shows as the characters, never as a link or a template field)."""
    return html.escape(str(text), quote=False).replace("%", "&#37;")


def _label_names(num_classes: int, class_names: Sequence[str] | None) -> list[str]:
    if class_names is not None and len(class_names) >= num_classes:
        return [plain(n) for n in class_names[:num_classes]]
    return [str(i) for i in range(num_classes)]


def _client_name(client_id: int, malicious: bool = False) -> str:
    return f"client {client_id}" + (" (malicious)" if malicious else "")


def _malicious_ids(clients: pd.DataFrame) -> set[int]:
    if clients.empty or "malicious" not in clients:
        return set()
    return set(clients.loc[clients["malicious"].astype(bool), "client_id"].astype(int))


def thin(frame: pd.DataFrame, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """At most `max_points` rows, evenly spaced, always with the first and the last."""
    if len(frame) <= max_points:
        return frame
    keep = np.unique(np.linspace(0, len(frame) - 1, max_points).round().astype(np.int64))
    return frame.iloc[keep]


def bin_width(count: int, limit: int) -> int:
    """How many consecutive items share a bin so that `count` items fill at most `limit` bins."""
    return max(1, -(-count // limit))


def _binned_sums(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray | None, shape: tuple[int, int], widths: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Grids of the sum of `values` (or of ones) and of the number of entries at
    (rows // row width, cols // column width), for a `shape` grid binned by `widths`."""
    binned = (-(-shape[0] // widths[0]), -(-shape[1] // widths[1]))
    cell = (rows // widths[0]) * binned[1] + cols // widths[1]
    counts = np.bincount(cell, minlength=binned[0] * binned[1]).reshape(binned)
    sums = counts if values is None else np.bincount(cell, weights=values, minlength=binned[0] * binned[1]).reshape(binned)
    return sums, counts


def _binned_mean(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int], widths: tuple[int, int]) -> np.ndarray:
    """A grid of the mean of `values` in each bin; NaN where a bin is empty."""
    sums, counts = _binned_sums(rows, cols, values, shape, widths)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts).astype(np.float32)


def _bin_centers(width: int, bins: int, first: int) -> np.ndarray:
    """The middle of each bin of `width` consecutive integers starting at `first`."""
    return first + width * np.arange(bins) + (width - 1) / 2


def _binned_note(row_width: int, col_width: int, rows: str) -> str:
    parts = [f"{row_width} {rows}" if row_width > 1 else "", f"{col_width} rounds" if col_width > 1 else ""]
    parts = [p for p in parts if p]
    return f" (each cell: mean over {' x '.join(parts)})" if parts else ""


def _client_ticks(ids: Sequence[int], colored: bool) -> list[str]:
    if not colored:
        return [str(i) for i in ids]
    return [f'<span style="color:{client_color(i)}"><b>{i}</b></span>' for i in ids]


def _cumulative_bytes(rows: pd.DataFrame) -> pd.Series:
    return rows.sort_values("round")["bytes_received"].astype(np.float64).cumsum()
