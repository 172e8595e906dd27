"""Tables and text the pages show: pure functions over stored runs, no Streamlit.

`runs_table` is the Runs page's table, `final_metrics` and `config_differences` the Compare
page's, `sweep_curves` and `sweep_summary` its view of a sweep, `time_left` the Run page's
estimate, `client_evaluations_table` its table of every client, `results_json` its full
download. A config field's name for the audience (who does not read code) is the engine's
`field_label`, kept on the field itself and re-exported here. What the engine knows (registries,
how a split is described, the best round, what a run's status allows) is asked of the engine,
never written again here.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from flcore.config import ExperimentConfig, field_label, registries
from flcore.data.partition import describe_split
from flcore.describe import describe_config
from flcore.federation.personalization import FAIRNESS_PREFIXES
from flcore.federation.privacy import EPSILON_KINDS, epsilon_label
from flcore.records import best_round

if TYPE_CHECKING:
    from flcore.store import RunInfo

__all__ = ["describe_config", "describe_split", "field_label", "registries"]  # re-exported for the pages


def format_duration(seconds: float | None) -> str:
    """'45 s', '3 min 05 s', '2 h 04 min'; an empty string for None."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def planned_rounds(info: "RunInfo") -> int:
    """The rounds the run will train: all of them, or as many as its privacy budget allows."""
    from flcore.federation.privacy import affordable_rounds

    try:
        return min(info.total_rounds, affordable_rounds(info.config))
    except Exception:  # a stored config that no longer validates: its rounds as stored
        return info.total_rounds


def time_left(info: "RunInfo", now: float | None = None) -> float | None:
    """Seconds until the run ends at its pace so far, or None before the first round."""
    if info.status != "running" or info.rounds_done <= 0 or info.started_at is None:
        return None
    now = time.time() if now is None else now
    per_round = max(now - info.started_at, 0.0) / info.rounds_done
    return per_round * max(planned_rounds(info) - info.rounds_done, 0)


def run_labels(runs: Sequence["RunInfo"]) -> dict[str, str]:
    """run_id -> a label unique among `runs`: the name, plus the id for names used twice."""
    counts = pd.Series([r.name for r in runs]).value_counts()
    return {r.run_id: (f"{r.name} [{r.run_id}]" if counts.get(r.name, 0) > 1 else r.name) for r in runs}


def runs_table(runs: Sequence["RunInfo"], sweep_names: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per run, newest first: what the Runs page lists (`sweep_names`: sweep id -> name)."""
    from flcore.strategies import STRATEGIES

    rows = []
    for r in runs:
        c = r.config
        rows.append(
            {
                "id": r.run_id,
                "name": r.name,
                "sweep": (sweep_names or {}).get(r.sweep_id, r.sweep_id) if r.sweep_id else "",
                "dataset": c.dataset,
                "split": describe_split(c),
                "strategy": STRATEGIES.entry(c.strategy).label if c.strategy in STRATEGIES else c.strategy,
                "clients": c.num_clients,
                "status": r.status + (" (cancelling)" if r.cancel_requested and r.active else ""),
                "owner": r.owner or "",
                "progress": r.progress,
                "rounds": f"{r.rounds_done} / {r.total_rounds}",
                "final accuracy": r.final_accuracy,
                "created": datetime.fromtimestamp(r.created_at),
            }
        )
    columns = [
        "id",
        "name",
        "owner",
        "sweep",
        "dataset",
        "split",
        "strategy",
        "clients",
        "status",
        "progress",
        "rounds",
        "final accuracy",
        "created",
    ]
    return pd.DataFrame(rows, columns=columns)


def final_metrics(runs: Sequence["RunInfo"], rounds: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per run: status, rounds, final and best accuracy, final loss, time per round, the epsilon
    it spent (with differential privacy), what its clients sent, and where some run evaluated
    every client on its own test data, its final fairness summaries (`final_fairness`)."""
    labels = run_labels(runs)
    rows = []
    for r in runs:
        frame = rounds.get(r.run_id, pd.DataFrame())
        has = not frame.empty
        best = best_round(frame)
        rows.append(
            {
                "run": labels[r.run_id],
                "status": r.status,
                "rounds": f"{r.rounds_done} / {r.total_rounds}",
                "final accuracy": float(frame["test_accuracy"].iloc[-1]) if has else None,
                "best accuracy": float(best["test_accuracy"]) if has else None,
                "best round": int(best["round"]) if has else None,
                "final loss": float(frame["test_loss"].iloc[-1]) if has else None,
                "seconds per round": float(frame["wall_time_s"].mean()) if has and "wall_time_s" in frame else None,
                "final epsilon": float(frame["epsilon"].iloc[-1]) if has and "epsilon" in frame else None,
                "epsilon kind": epsilon_label(r.config) if r.config.dp in EPSILON_KINDS else None,
                "MB sent by clients": float(frame["bytes_received"].sum()) / 1e6 if has and "bytes_received" in frame else None,
                **final_fairness(frame),
            }
        )
    table = pd.DataFrame(rows)
    fairness = [c for c in FAIRNESS_COLUMNS.values() if c in table]
    return table.drop(columns=[c for c in fairness if table[c].isna().all()])  # only what some run measured


# The Compare table's fairness columns: (round metric, its column), for the global model, then own models.
FAIRNESS_COLUMNS: dict[str, str] = {
    f"{prefix}_{stat}": f"{who} {label}"
    for prefix, who in ((FAIRNESS_PREFIXES["global"], "client"), (FAIRNESS_PREFIXES["personal"], "own model"))
    for stat, label in (("mean", "mean accuracy"), ("worst10", "worst 10%"), ("below", "share below threshold"))
}


def final_fairness(rounds: pd.DataFrame) -> dict[str, float | None]:
    """The fairness summaries of a run's last round that evaluated every client (each None
    where the run has none): the clients' mean accuracy, that of the worst 10% of clients and
    the share of clients below the threshold, with the global model and with their own models."""
    out: dict[str, float | None] = dict.fromkeys(FAIRNESS_COLUMNS.values())
    for metric, column in FAIRNESS_COLUMNS.items():
        if metric in rounds:
            values = rounds[metric].dropna()
            out[column] = float(values.iloc[-1]) if len(values) else None
    return out


def client_evaluations_table(evaluations: pd.DataFrame) -> pd.DataFrame:
    """Every client at the last evaluated round of `evaluations` (`RunStore.evaluations_frame`):
    its test samples, its accuracy on them with the global model and with its own model (NaN
    without one), and the gain of its own model over the global one."""
    columns = ["client", "test samples", "global model accuracy", "own model accuracy", "gain"]
    if evaluations.empty:
        return pd.DataFrame(columns=columns)
    last = evaluations[evaluations["round"] == evaluations["round"].max()].sort_values("client_id")
    return pd.DataFrame(
        {
            "client": last["client_id"].astype(int).to_numpy(),
            "test samples": last["test_samples"].astype(int).to_numpy(),
            "global model accuracy": last["test_accuracy"].to_numpy(dtype=float),
            "own model accuracy": last["personal_accuracy"].to_numpy(dtype=float),
            "gain": (last["personal_accuracy"] - last["test_accuracy"]).to_numpy(dtype=float),
        },
        columns=columns,
    )


def sweeps_table(sweeps: Sequence[Any]) -> pd.DataFrame:
    """One row per sweep (`flcore.store.SweepInfo`), newest first: what the Runs page lists."""
    from flcore.service.sweep import describe_size

    rows = [
        {
            "sweep": s.name,
            "id": s.sweep_id,
            "grid": describe_size(s.grid),
            "done": f"{s.done} / {s.total}",
            "status": ", ".join(f"{n} {status}" for status, n in sorted(s.statuses.items())),
            "created": datetime.fromtimestamp(s.created_at),
        }
        for s in sweeps
    ]
    return pd.DataFrame(rows, columns=["sweep", "id", "grid", "done", "status", "created"])


def sweep_curves(runs: Sequence["RunInfo"], rounds: dict[str, pd.DataFrame], grid: dict) -> pd.DataFrame:
    """The rounds of a sweep's runs in long form: setting, seed, round, test_accuracy, test_loss."""
    from flcore.service.sweep import setting_label, setting_of

    frames = [
        rounds[r.run_id][["round", "test_accuracy", "test_loss"]].assign(
            setting=setting_label(setting_of(r.config, grid)), seed=r.config.seed
        )
        for r in runs
        if r.run_id in rounds and not rounds[r.run_id].empty
    ]
    columns = ["setting", "seed", "round", "test_accuracy", "test_loss"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def sweep_summary(runs: Sequence["RunInfo"], grid: dict) -> pd.DataFrame:
    """Per setting of a sweep: its values, the runs with a result, final accuracy mean ± std
    over seeds (flcore.service.sweep.final_accuracy_table), and the runs still going."""
    from flcore.service.sweep import SEEDS, final_accuracy_table, setting_label, setting_of

    finals = pd.DataFrame(
        {"setting": [setting_label(setting_of(r.config, grid)) for r in runs], "seed": [r.config.seed for r in runs],
         "final_accuracy": [r.final_accuracy if r.final_accuracy is not None else math.nan for r in runs]}
    )  # fmt: skip
    table = final_accuracy_table(finals).rename(columns={"mean": "mean final accuracy", "std": "std over seeds"})
    going = finals.assign(active=[r.active for r in runs]).groupby("setting", sort=False)["active"].sum()
    table["still training"] = table["setting"].map(going).fillna(0).astype(int)
    fields = [k for k in grid if k != SEEDS]
    values = {setting_label(setting_of(r.config, grid)): setting_of(r.config, grid) for r in runs}
    for i, f in enumerate(fields):
        table.insert(1 + i, field_label(f), [_shown(f, values[s][i][1]) for s in table["setting"]])
    return table


def _shown(field: str, value: Any) -> str:
    registry = registries().get(field)
    if registry is not None and value in registry:
        return registry.entry(value).label
    if value is None:
        return "automatic"
    if field == "data_file" and value:  # an upload by the name it was sent with, not its storage name
        from flcore import settings
        from flcore.data import uploads

        return uploads.original_name(value, settings.current()) or str(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def config_differences(configs: dict[str, ExperimentConfig], ignore: Sequence[str] = ("name",)) -> pd.DataFrame:
    """The settings that differ between the configs: one row per field, one column per run."""
    if len(configs) < 2:
        return pd.DataFrame()
    dumps = {label: c.model_dump() for label, c in configs.items()}
    fields = [f for f in ExperimentConfig.model_fields if f not in ignore]
    differing = [f for f in fields if len({json.dumps(d[f], sort_keys=True) for d in dumps.values()}) > 1]
    table = pd.DataFrame(
        {label: [_shown(f, d[f]) for f in differing] for label, d in dumps.items()},
        index=pd.Index([field_label(f) for f in differing], name="setting"),
    )
    return table


def results_json(
    info: "RunInfo", rounds: pd.DataFrame, clients: pd.DataFrame, partition: pd.DataFrame, evaluations: pd.DataFrame | None = None
) -> str:
    """Everything stored about a run, as one JSON document (`evaluations`: every client on its
    own test data, `RunStore.evaluations_frame`)."""
    return json.dumps(
        {
            "run_id": info.run_id,
            "name": info.name,
            "status": info.status,
            "error": info.error,
            "rounds_done": info.rounds_done,
            "total_rounds": info.total_rounds,
            "created_at": info.created_at,
            "started_at": info.started_at,
            "finished_at": info.finished_at,
            "final_accuracy": info.final_accuracy,
            "source": info.source,
            "config": info.config.model_dump(mode="json"),
            "rounds": json.loads(rounds.to_json(orient="records")),
            "clients": json.loads(clients.to_json(orient="records")),
            "partition": json.loads(partition.to_json(orient="records")),
            "evaluations": [] if evaluations is None else json.loads(evaluations.to_json(orient="records")),
        },
        indent=2,
    )
