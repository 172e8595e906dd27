"""Partitioner registry: how the training samples are split over clients.

Each partitioner is a pure, seeded function ``(labels, num_clients, config, rng) -> list of
index arrays`` returning a disjoint cover of the training indices (every sample goes to exactly
one client). A partitioner that needs to know which natural client (writer, speaker, a client
column) each sample comes from also takes the keyword argument ``clients``: int ids 0..K-1, one
per training sample (`Dataset.train_clients`), or None when the dataset has no natural split;
the others never see it. `iid` shuffles and deals evenly; `dirichlet` draws each class's spread
over clients from Dir(alpha) (Hsu et al. 2019), so a small alpha concentrates labels; `shards`
sorts by label and gives each client k shards (McMahan et al. 2017); `quantity_skew` keeps labels
IID but draws client sizes from a log-normal or power law; `natural` keeps the data's own clients
(LEAF's writers and speakers, Caldas et al. 2018; Synthetic's devices, Li et al. 2020).
`label_counts` and `heterogeneity` describe a split.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from flcore import seeding
from flcore.registry import Registry

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig
    from flcore.data.datasets import Dataset

# (labels, num_clients, config, rng) -> one index array per client; `clients=` for those that take it
Partitioner = Callable[..., list[np.ndarray]]
PARTITIONERS: Registry[Partitioner] = Registry("partitioner")
DIRICHLET_TRIES = 200


class PartitionError(ValueError):
    """The data cannot be split as asked; the message names the settings to change, `field` the
    one a form should show it under."""

    def __init__(self, message: str, field: str = "num_clients") -> None:
        super().__init__(message)
        self.field = field


def partition(
    labels: np.ndarray, config: "ExperimentConfig", rng: np.random.Generator, clients: np.ndarray | None = None
) -> list[np.ndarray]:
    """Split the training samples as `config` says; `clients` are their natural client ids, if any."""
    n, k = len(labels), config.num_clients
    split = PARTITIONERS.get(config.partition)
    if reads_clients(split):
        parts = split(labels, k, config, rng, clients=clients)
    else:
        need = k * config.min_samples_per_client
        if need > n:
            raise PartitionError(
                f"num_clients={k} x min_samples_per_client={config.min_samples_per_client} needs {need} "
                f"training samples but dataset={config.dataset!r} has {n}; lower num_clients or min_samples_per_client"
            )
        parts = split(labels, k, config, rng)
    return [np.sort(p).astype(np.int64) for p in parts]


def reads_clients(split: Partitioner) -> bool:
    """Whether a partitioner takes the samples' natural client ids (a keyword argument `clients`)."""
    return "clients" in inspect.signature(split).parameters


def split_fields(config: "ExperimentConfig") -> tuple[str, ...]:
    """The config fields the split of `run_split` depends on: the dataset and what it reads,
    the partitioner and what it reads, the number of clients, the size floor and the seeds.
    A preview of the split is exact as long as these are unchanged."""
    from flcore.data.datasets import dataset_fields

    fields = (
        *dataset_fields(config), "partition", *PARTITIONERS.entry(config.partition).params,
        "num_clients", "min_samples_per_client", "seed", "data_seed",
    )  # fmt: skip
    return tuple(dict.fromkeys(fields))


def describe_split(config: "ExperimentConfig") -> str:
    """The split in a few words for people, e.g. 'Dirichlet α=0.5' or 'Shards (2 per client)'."""
    return PARTITIONERS.entry(config.partition).summary(config)


def short_split(config: "ExperimentConfig") -> str:
    """The split in a short token for run names: the partitioner and its first setting, e.g.
    'dirichlet(0.5)', 'shards(2)', 'iid'."""
    entry = PARTITIONERS.entry(config.partition)
    if not entry.params:
        return entry.name
    value = getattr(config, entry.params[0])
    return f"{entry.name}({value:g})" if isinstance(value, float) else f"{entry.name}({value})"


def run_split(labels: np.ndarray, config: "ExperimentConfig", clients: np.ndarray | None = None) -> list[np.ndarray]:
    """The split a run with `config` trains on: its partitioner, drawn from the data seed;
    `clients` are the samples' natural client ids (`Dataset.train_clients`), if any.

    The simulation, the CLI's `partition` command and the dashboard's preview all call this,
    so a preview always shows exactly the split the run will make."""
    return partition(labels, config, seeding.rng(config.data_seed_resolved, "partition"), clients)


def split_counts(labels: np.ndarray, config: "ExperimentConfig", num_classes: int, clients: np.ndarray | None = None) -> np.ndarray:
    """Clients x classes sample counts of the split a run with `config` makes (`run_split`): what
    the CLI's `partition` command prints and New run's preview draws, before anything trains."""
    return label_counts(labels, run_split(labels, config, clients), num_classes)


def split_table(counts: np.ndarray) -> tuple[pd.DataFrame, "Heterogeneity"]:
    """One row per client (its count of each label, its samples, how many classes it holds and
    its label distribution's distance from the whole), and the split's heterogeneity."""
    stats = heterogeneity(counts)
    table = pd.DataFrame(counts, columns=[f"label_{c}" for c in range(counts.shape[1])])
    table.insert(0, "client", range(len(counts)))
    table["samples"] = counts.sum(1)
    table["classes"] = stats.per_client["classes"].to_numpy()
    table["tv_distance"] = stats.per_client["distance_from_global"].round(3).to_numpy()
    return table, stats


def split_dataset(data: "Dataset", config: "ExperimentConfig") -> list[np.ndarray]:
    """`run_split` of a loaded dataset's training samples."""
    return run_split(data.y_train.numpy(), config, data.train_clients)


@PARTITIONERS.register("iid", label="IID", description="Shuffle and deal out evenly: every client sees every label.")
def iid(labels: np.ndarray, num_clients: int, config: "ExperimentConfig", rng: np.random.Generator) -> list[np.ndarray]:
    return np.array_split(rng.permutation(len(labels)), num_clients)


@PARTITIONERS.register(
    "dirichlet",
    label="Dirichlet (label skew)",
    description="Each label is spread over clients in Dir(alpha) proportions: small alpha = few labels per client.",
    params=("alpha", "min_samples_per_client"),
    describe=lambda c: f"Dirichlet α={c.alpha:g}",
)
def dirichlet(labels: np.ndarray, num_clients: int, config: "ExperimentConfig", rng: np.random.Generator) -> list[np.ndarray]:
    classes = np.unique(labels)
    for _ in range(DIRICHLET_TRIES):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for c in classes:
            members = rng.permutation(np.flatnonzero(labels == c))
            shares = rng.dirichlet(np.full(num_clients, config.alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for client, chunk in enumerate(np.split(members, cuts)):
                parts[client].append(chunk)
        merged = [np.concatenate(p) for p in parts]
        if min(len(p) for p in merged) >= config.min_samples_per_client:
            return merged
    raise PartitionError(
        f"dirichlet with alpha={config.alpha} could not give each of num_clients={num_clients} clients "
        f"min_samples_per_client={config.min_samples_per_client} samples in {DIRICHLET_TRIES} tries "
        f"({len(labels)} training samples); raise alpha, lower num_clients or lower min_samples_per_client",
        field="alpha",
    )


@PARTITIONERS.register(
    "shards",
    label="Shards (k labels per client)",
    description="Sort by label, cut into shards, give each client k shards (McMahan et al. 2017).",
    params=("shards_per_client",),
    describe=lambda c: f"Shards ({c.shards_per_client} per client)",
)
def shards(labels: np.ndarray, num_clients: int, config: "ExperimentConfig", rng: np.random.Generator) -> list[np.ndarray]:
    k = config.shards_per_client
    total = num_clients * k
    if total > len(labels):
        raise PartitionError(
            f"shards_per_client={k} x num_clients={num_clients} = {total} shards exceeds the {len(labels)} "
            "training samples; lower shards_per_client or num_clients",
            field="shards_per_client",
        )
    by_label = np.argsort(labels, kind="stable")
    pieces = np.array_split(by_label, total)
    order = rng.permutation(total)
    return [np.concatenate([pieces[s] for s in order[i * k : (i + 1) * k]]) for i in range(num_clients)]


@PARTITIONERS.register(
    "quantity_skew",
    label="Quantity skew",
    description="IID labels, but client sizes drawn from a log-normal or power law: a few big clients, many small.",
    params=("quantity_distribution", "quantity_sigma", "min_samples_per_client"),
    describe=lambda c: f"Quantity skew ({c.quantity_distribution}, σ={c.quantity_sigma:g})",
)
def quantity_skew(labels: np.ndarray, num_clients: int, config: "ExperimentConfig", rng: np.random.Generator) -> list[np.ndarray]:
    n, floor = len(labels), config.min_samples_per_client
    if config.quantity_distribution == "lognormal":
        weights = rng.lognormal(0.0, config.quantity_sigma, num_clients)
    else:  # powerlaw: Pareto-distributed sizes with shape quantity_sigma
        weights = rng.pareto(config.quantity_sigma, num_clients) + 1.0
    spare = n - floor * num_clients
    sizes = floor + np.floor(weights / weights.sum() * spare).astype(int)
    sizes[np.argsort(-weights)[: n - sizes.sum()]] += 1  # hand out the rounding remainder
    return np.split(rng.permutation(n), np.cumsum(sizes)[:-1])


@PARTITIONERS.register(
    "natural",
    label="Natural (the data's own clients)",
    description="One client per writer, speaker or client-column value, as the data comes (LEAF, Caldas et al. 2018); "
    "num_clients must equal their number, and each keeps all its samples (min_samples_per_client does not apply).",
)
def natural(
    labels: np.ndarray, num_clients: int, config: "ExperimentConfig", rng: np.random.Generator, *, clients: np.ndarray | None
) -> list[np.ndarray]:
    if clients is None:
        raise PartitionError(natural_missing_message(config), field="partition")
    found = int(clients.max()) + 1 if len(clients) else 0
    if num_clients != found:
        raise PartitionError(natural_count_message(config, found), field="num_clients")
    return group_by_client(clients, found)


def group_by_client(clients: np.ndarray, num_clients: int) -> list[np.ndarray]:
    """The positions of each client's samples, in order, from the client id of each sample
    (0..num_clients-1; a negative id belongs to no client and is left out)."""
    order = np.argsort(clients, kind="stable")
    order = order[int((clients < 0).sum()) :]  # negative ids sort first
    return np.split(order, np.cumsum(np.bincount(clients[clients >= 0], minlength=num_clients))[:-1])


def natural_missing_message(config: "ExperimentConfig") -> str:
    return (
        f"partition='natural' needs data that says which client each sample comes from, and dataset={config.dataset!r} "
        "does not; choose synthetic, femnist, shakespeare or a file with a client column (dataset='file', client_column), or another partition"
    )


def natural_count_message(config: "ExperimentConfig", found: int) -> str:
    from flcore.data.datasets import DATASETS

    by_default = config.dataset in DATASETS and DATASETS.get(config.dataset).natural_by_default
    why = " (it is split by its own clients unless another partition is chosen)" if by_default else ""
    return (
        f"num_clients={config.num_clients} does not match the data: dataset={config.dataset!r} has {found} natural clients{why}; "
        f"set num_clients={found} or choose another partition"
    )


# Describing a split ---------------------------------------------------------------------
def label_counts(labels: np.ndarray, parts: list[np.ndarray], num_classes: int) -> np.ndarray:
    """Clients x classes matrix of sample counts."""
    return np.stack([np.bincount(labels[p], minlength=num_classes) for p in parts]).astype(np.int64)


@dataclass(frozen=True)
class Heterogeneity:
    per_client: pd.DataFrame  # client_id, samples, classes, label_entropy_bits, distance_from_global
    classes_per_client: float
    label_entropy_bits: float
    distance_from_global: float  # mean total-variation distance, 0 = IID, 1 = disjoint
    size_cv: float  # coefficient of variation of client sizes

    def summary(self) -> dict[str, float]:
        return {
            "classes_per_client": self.classes_per_client,
            "label_entropy_bits": self.label_entropy_bits,
            "distance_from_global": self.distance_from_global,
            "size_cv": self.size_cv,
        }


def heterogeneity(counts: np.ndarray) -> Heterogeneity:
    """Classes per client, label entropy and total-variation distance to the global label mix."""
    sizes = counts.sum(1)
    dist = counts / np.maximum(sizes, 1)[:, None]
    global_dist = counts.sum(0) / counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nansum(np.where(dist > 0, dist * np.log2(dist), 0.0), axis=1)
    tv = 0.5 * np.abs(dist - global_dist).sum(1)
    per_client = pd.DataFrame(
        {
            "client_id": np.arange(len(counts)),
            "samples": sizes,
            "classes": (counts > 0).sum(1),
            "label_entropy_bits": entropy,
            "distance_from_global": tv,
        }
    )
    return Heterogeneity(
        per_client=per_client,
        classes_per_client=float(per_client["classes"].mean()),
        label_entropy_bits=float(entropy.mean()),
        distance_from_global=float(tv.mean()),
        size_cv=float(sizes.std() / sizes.mean()) if sizes.mean() else 0.0,
    )


def counts_frame(counts: np.ndarray) -> pd.DataFrame:
    """Long form of a label-count matrix: client_id, label, count."""
    clients, classes = np.meshgrid(np.arange(counts.shape[0]), np.arange(counts.shape[1]), indexing="ij")
    return pd.DataFrame({"client_id": clients.ravel(), "label": classes.ravel(), "count": counts.ravel()})
