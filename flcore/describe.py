"""A run in words, said once for the command line and the dashboard alike: the one-line
description of a config (`describe_config`: the Run page's header, New run's "Ready" line, the
CLI's summary) and the lines a finished run ends with (`summary_lines`: privacy, communication,
client drift, from its stored rounds)."""

from __future__ import annotations

import pandas as pd

from flcore.config import ExperimentConfig, registries
from flcore.data.partition import describe_split


def describe_config(config: ExperimentConfig) -> str:
    """One line: dataset, split, clients, model, strategy, rounds (and the attack, if any)."""
    choices = registries()

    def label(field: str, name: str) -> str:
        return choices[field].entry(name).label if name in choices[field] else name

    sampled = config.clients_per_round_resolved
    parts = [
        label("dataset", config.dataset),
        describe_split(config),
        f"{config.num_clients} clients ({sampled} per round)",
        label("model", config.model),
        label("strategy", config.strategy) + (f" + FedProx μ={config.prox_mu:g}" if config.prox_mu > 0 else ""),
        f"{config.rounds} rounds",
    ]
    if config.attack != "none":
        parts.append(f"attack: {config.attack} on {config.attack_fraction:.0%} of clients")
    if config.dp != "none":
        budget = f", budget ε={config.dp_target_epsilon:g}" if config.dp_target_epsilon is not None else ""
        parts.append(f"{config.dp} DP (noise ×{config.dp_noise_multiplier:g}, clip {config.dp_clip:g}{budget})")
    feedback = " with error feedback" if config.error_feedback else ""
    if config.compression == "topk":
        parts.append(f"updates: top {config.compression_ratio:.0%} of coordinates{feedback}")
    elif config.compression == "quantize":
        parts.append(f"updates: {config.compression_bits}-bit quantized{feedback}")
    if config.personalization != "none":
        parts.append("personalized: " + choices["personalization"].entry(config.personalization).summary(config))
    parts.extend(uneven_parts(config))
    return " · ".join(parts)


def uneven_parts(config: ExperimentConfig) -> list[str]:
    """The clients that come and go, in a few words each (nothing when every client always reports)."""
    parts = []
    if config.availability < 1:
        spread = ", each its own chance" if config.availability_model == "heterogeneous" else ""
        parts.append(f"clients online {config.availability:.0%} of rounds{spread}")
    if config.dropout:
        parts.append(f"{config.dropout:.0%} drop out")
    if config.stragglers:
        what = "send partial work" if config.straggler_policy == "partial" else "are dropped"
        parts.append(f"{config.stragglers:.0%} stragglers {what}")
    if config.round_deadline_s is not None:
        parts.append(f"deadline {config.round_deadline_s:g} s")
    return parts


def _size(num_bytes: float) -> str:
    """3.52 MB, 870 kB, 12 B."""
    for unit in ("B", "kB", "MB"):
        if num_bytes < 1000:
            return f"{num_bytes:.3g} {unit}"
        num_bytes /= 1000
    return f"{num_bytes:.3g} GB"


def summary_lines(config: ExperimentConfig, rounds: pd.DataFrame) -> list[str]:
    """Privacy, communication and client drift of a run, one line each, from its rounds."""
    if rounds.empty:
        return []
    last = rounds.iloc[-1]
    lines = []
    if "epsilon" in rounds:
        from flcore.federation.privacy import EPSILON_KINDS

        lines.append(
            f"privacy: {EPSILON_KINDS.get(config.dp, config.dp)} epsilon {last['epsilon']:.4g} at dp_delta={config.dp_delta:g} "
            f"after round {int(last['round'])} "
            f"(dp={config.dp!r}, dp_noise_multiplier={config.dp_noise_multiplier:g}, dp_clip={config.dp_clip:g})"
        )
    received, sent = rounds["bytes_received"].sum(), rounds["bytes_sent"].sum()
    line = f"communication: clients sent {_size(received)}, the server sent {_size(sent)}"
    if config.compression != "none" and "bytes_uncompressed" in rounds:  # the uploads that happened, uncompressed
        whole = rounds["bytes_uncompressed"].sum()
        line += f" (compression={config.compression!r}: {received / whole:.1%} of the same uploads uncompressed)" if whole else ""
    lines.append(line)
    if "drift_cosine_mean" in rounds:
        lines.append(
            f"client drift in the last round: cosine with the global update {last['drift_cosine_mean']:.3f} "
            f"± {last['drift_cosine_std']:.3f}, distance from the global model {last['drift_distance_mean']:.3g} "
            f"± {last['drift_distance_std']:.3g}"
        )
    lines.extend(fairness_lines(config, rounds))
    return lines


def fairness_lines(config: ExperimentConfig, rounds: pd.DataFrame) -> list[str]:
    """Every client on its own test data at the last round that evaluated them: the global model's
    and (under a personalized method) its own model's mean, worst and best 10% accuracy, and the
    share of clients below `fairness_threshold`."""
    from flcore.federation.personalization import FAIRNESS_PREFIXES

    lines = []
    for kind, prefix in FAIRNESS_PREFIXES.items():
        column = f"{prefix}_mean"
        if column not in rounds or rounds[column].isna().all():
            continue
        row = rounds.loc[rounds[column].last_valid_index()]
        model = "the global model" if kind == "global" else "each client's own model"
        lines.append(
            f"clients' accuracy with {model} (round {int(row['round'])}, own test data): mean {row[column]:.4f}, "
            f"worst 10% {row[f'{prefix}_worst10']:.4f}, best 10% {row[f'{prefix}_best10']:.4f}, "
            f"{row[f'{prefix}_below']:.0%} of clients below {config.fairness_threshold:g}"
        )
    return lines
