"""Helpers for the dashboard tests: runs written into a store by a real (small) simulation,
the app under `streamlit.testing.v1.AppTest`, and readers of what a page drew.

`record_run` runs a `Simulation` in this process and writes its rounds through the store's own
worker API, so the pages read exactly what a worker would have written, without waiting for one.
`stored_frames` does the same for rounds written by hand as `flcore.records` (small numbers a
chart test can check), and reads them back as the pages do.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from dashboard import frames
from flcore.config import ExperimentConfig
from flcore.federation.simulation import Simulation
from flcore.records import RoundResult
from flcore.store import RunStore

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
APP_TIMEOUT = 60  # seconds; the first run of a process imports torch and the engine

# A run that takes well under a second per round on one CPU core.
SMALL = {"num_clients": 6, "rounds": 3, "model": "logistic", "batch_size": 32, "executor": "vectorized"}


def record_run(store: RunStore, stop_after: int | None = None, status: str | None = "done", error: str | None = None, **changes) -> str:
    """Store a run of a small config (plus `changes`) as a worker would, round by round.

    `stop_after` rounds are stored (all by default); `status` ends the run (None leaves it running).
    """
    config = ExperimentConfig.create(**{**SMALL, **changes})
    run_id = store.create_run(config)
    assert store.claim(run_id)
    sim = Simulation(config)
    store.save_partition(run_id, sim.label_counts)
    for result in sim.run():
        if stop_after is not None and result.round > stop_after:
            break
        store.append_round(run_id, result)
    if status is not None:
        store.finish(run_id, status, error)
    return run_id


def record_sweep(
    store: RunStore, grid: dict, name: str = "demo sweep", stop_after: dict[int, int] | None = None, **changes
) -> tuple[str, list[str]]:
    """Store a sweep of `grid` over a small config (plus `changes`) and record its runs as a
    worker would; run i stops after `stop_after[i]` rounds, left running (default: all, done)."""
    from flcore.service.sweep import expand

    base = ExperimentConfig.create(**{**SMALL, **changes})
    combos = expand(grid, base, name)
    sweep_id, run_ids = store.create_sweep(name, grid, [c.config for c in combos])
    for i, (combo, run_id) in enumerate(zip(combos, run_ids)):
        assert store.claim(run_id)
        sim = Simulation(combo.config)
        store.save_partition(run_id, sim.label_counts)
        limit = (stop_after or {}).get(i)
        for result in sim.run():
            if limit is not None and result.round > limit:
                break
            store.append_round(run_id, result)
        if limit is None:
            store.finish(run_id, "done")
    return sweep_id, run_ids


def stored_frames(results: Sequence[RoundResult], label_counts: np.ndarray) -> frames.RunFrames:
    """The frames the Run page draws for a run whose split was `label_counts` (clients x labels)
    and whose rounds were `results`: written through the store's worker API into a throwaway
    store, read back with `dashboard.frames.run_frames`."""
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(Path(folder) / "runs.db")
        run_id = store.create_run(ExperimentConfig.create(num_clients=len(label_counts), rounds=max(len(results), 1)))
        assert store.claim(run_id)
        store.save_partition(run_id, label_counts)
        for result in results:
            store.append_round(run_id, result)
        read = frames.run_frames(store, run_id)
        frames.forget(store, run_id)
        return read


def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=APP_TIMEOUT)


def page(path: str, **query) -> AppTest:
    """The app opened on page `path` (e.g. "app_pages/run.py") with `query` in its URL."""
    at = app()
    at.run()
    at.switch_page(path)
    at.query_params.update(query)
    return at.run()


def shown(markdown: str) -> str:
    """Markdown source as a reader sees it: character references decoded (`access.plain` writes
    the punctuation of everything people typed as `&#NN;`, so `a&#95;b` reads `a_b`)."""
    return html.unescape(str(markdown)).replace("\u2060", "")  # and the invisible word joiners


def texts(at: AppTest) -> str:
    """Everything the page wrote as text (markdown, captions, alerts, titles) as shown, joined."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "success", "warning", "error", "text"):
        parts += [shown(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def errors(at: AppTest) -> list[str]:
    """The error boxes of the page, as shown."""
    return [shown(e.value) for e in at.error]


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def charts_on(at: AppTest) -> list:
    return list(at.get("plotly_chart"))


def figure(chart) -> dict:
    """A drawn plotly_chart's figure as a dict, typed arrays decoded to nested lists."""

    def decode(value):
        if isinstance(value, dict) and "bdata" in value and "dtype" in value:
            flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
            shape = [int(n) for n in str(value.get("shape", len(flat))).split(",")]
            return flat.reshape(shape).tolist()
        if isinstance(value, dict):
            return {k: decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    return decode(json.loads(chart.proto.spec))


def figure_titled(at: AppTest, title: str) -> dict:
    """The figure on the page whose title starts with `title`."""
    for chart in charts_on(at):
        fig = figure(chart)
        if fig["layout"].get("title", {}).get("text", "").startswith(title):
            return fig
    raise AssertionError(f"no chart titled {title!r}")
