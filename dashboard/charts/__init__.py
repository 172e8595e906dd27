"""Chart builders: pure functions from the store's frames to Plotly figures, one module per tab.

Every chart takes the DataFrames that `flcore.store.RunStore` returns (`rounds_frame`,
`clients_frame`, `partition_frame`, `offline_frame`) or a partition preview in the same long
form, and returns a `plotly.graph_objects.Figure` with a title and labelled axes. Nothing here
imports Streamlit, so the charts are tested on their own.

    base.py                    colours (a client keeps its colour in every chart), layout, thinning and binning, `plain`
    registry.py                `@chart(name, caption=, example=)`: each chart declared once; `CHARTS`, `warm_up`
    global_model.py            the Run page's tabs, in their order: Global model,
    time_and_communication.py  Time and communication,
    clients.py                 Clients,
    drift.py                   Drift,
    data.py                    Data (and New run's preview of the split),
    fairness.py                Every client (each client on its own test data, global and own model)
    compare.py                 the Compare page: runs overlaid, sweeps

`CAPTIONS` (chart name -> the one line the page shows under it, saying what to look for) is read
from the registry. Everything a page or a test uses is importable from here: `charts.accuracy_chart`.
"""

from __future__ import annotations

from dashboard.charts.base import (
    MALICIOUS_COLOR,
    MANY_CLIENTS,
    MAX_BARS,
    MAX_COLUMNS,
    MAX_MARKS,
    MAX_POINTS,
    MAX_ROUND_BARS,
    MAX_ROWS,
    bin_width,
    client_color,
    label_color,
    plain,
    run_color,
    thin,
)
from dashboard.charts.clients import (
    MAX_TIMELINE_TEXT,
    TIMELINE,
    client_loss_chart,
    client_metric_chart,
    client_timeline_chart,
    participation_chart,
    registered_client_chart,
    update_norm_chart,
)
from dashboard.charts.compare import (
    compare_chart,
    compare_client_accuracy_chart,
    compare_tradeoff_chart,
    final_client_accuracies,
    sweep_bands,
    sweep_chart,
)
from dashboard.charts.data import partition_bars, partition_heatmap, sampled_labels_chart
from dashboard.charts.drift import drift_chart, drift_spread_chart
from dashboard.charts.fairness import client_accuracy_distribution_chart, fairness_lines_chart
from dashboard.charts.global_model import accuracy_chart, epsilon_chart, loss_chart
from dashboard.charts.registry import CHARTS, Chart, Sample, chart, made_up, warm_up
from dashboard.charts.time_and_communication import accuracy_bytes_chart, round_time_chart, time_accuracy_chart

# The one line under each chart, saying what to look for (registered with the chart).
CAPTIONS: dict[str, str] = {entry.name: entry.description for entry in CHARTS.entries()}

__all__ = [
    "CAPTIONS",
    "CHARTS",
    "MALICIOUS_COLOR",
    "MANY_CLIENTS",
    "MAX_BARS",
    "MAX_COLUMNS",
    "MAX_MARKS",
    "MAX_POINTS",
    "MAX_ROUND_BARS",
    "MAX_ROWS",
    "MAX_TIMELINE_TEXT",
    "TIMELINE",
    "Chart",
    "Sample",
    "accuracy_bytes_chart",
    "accuracy_chart",
    "bin_width",
    "chart",
    "client_accuracy_distribution_chart",
    "client_color",
    "client_loss_chart",
    "client_metric_chart",
    "client_timeline_chart",
    "compare_chart",
    "compare_client_accuracy_chart",
    "compare_tradeoff_chart",
    "drift_chart",
    "drift_spread_chart",
    "epsilon_chart",
    "fairness_lines_chart",
    "final_client_accuracies",
    "label_color",
    "loss_chart",
    "made_up",
    "participation_chart",
    "partition_bars",
    "partition_heatmap",
    "plain",
    "registered_client_chart",
    "round_time_chart",
    "run_color",
    "sampled_labels_chart",
    "sweep_bands",
    "sweep_chart",
    "thin",
    "time_accuracy_chart",
    "update_norm_chart",
    "warm_up",
]
