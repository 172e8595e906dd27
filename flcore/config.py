"""The one experiment configuration: typed, validated in one place, frozen, JSON round-trip.

`ExperimentConfig` holds every setting of a simulation. Names of datasets, partitioners,
models, strategies, attacks and executors are checked against their registries (the
`REGISTRY_FIELDS` below); numeric settings carry their allowed ranges as field constraints,
which the dashboard also reads to bound its widgets, and their on-screen words: each field's
`label` (and a number widget's `step`), read with `field_label` and `field_step`. Any invalid value raises `ConfigError`,
whose `problems` are (field, sentence) pairs; each sentence names the field, the value and what
is allowed, e.g. ``clients_per_round=50 exceeds num_clients=10``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from flcore.problems import ConfigError, Problem, shown

if TYPE_CHECKING:
    from flcore.registry import Registry

# Fields earlier releases had, which are now server settings (flcore.settings): a stored config
# that still names them is read without them.
RETIRED_FIELDS = ("data_dir", "download")
# Fields added later whose default is not what earlier configs meant: a stored config written
# before one existed (a full dump that lacks it) is read with the value it was run with.
EARLIER_MEANING = {"synthetic_sizes": "equal", "synthetic_generator": "flcore-v1", "client_test_fraction": 0.0}

# Characters that change the direction of the text around them (embeddings, overrides, isolates,
# marks): not allowed in a run name, which people read to tell runs apart.
BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c")

__all__ = ["ConfigError", "ExperimentConfig", "Problem", "field_label", "field_step", "natural_defaults", "registries"]


def Field(default: Any, *, label: str | None = None, step: float | None = None, **kwargs: Any) -> Any:
    """pydantic's `Field`, with what the dashboard shows of the field kept on it (in its
    `json_schema_extra`): `label`, the words that name it on screen, and `step`, the step of its
    number widget. Every field has a label (tests/test_config.py checks)."""
    extra = {key: value for key, value in (("label", label), ("step", step)) if value is not None}
    return pydantic.Field(default, json_schema_extra=extra or None, **kwargs)


class ExperimentConfig(BaseModel):
    """Every setting of one federated simulation (McMahan et al. 2017 round structure)."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    name: str = Field("", max_length=200, label="Run name", description="A label for the run (optional).")

    # Data
    dataset: str = Field("digits", label="Dataset", description="Dataset name (see `python -m flcore list`).")
    data_file: str = Field(
        "",
        max_length=4096,
        label="Data file (CSV, NPZ or ZIP)",
        description="dataset='file': the path of a CSV, NPZ or zipped image folder of your own.",
    )
    label_column: str = Field(
        "label", max_length=200, label="Label column", description="dataset='file', CSV: the column that holds the labels."
    )
    client_column: str = Field(
        "",
        max_length=200,
        label="Client column (natural split)",
        description="dataset='file', CSV: a column naming each row's client, for the natural split (empty: none).",
    )
    drop_columns: str = Field(
        "",
        max_length=4096,
        label="Drop columns",
        description="dataset='file', CSV: columns to leave out, comma-separated (e.g. 'id, name'; empty: none).",
    )
    missing_values: Literal["impute", "drop_rows", "refuse"] = Field(
        "impute",
        label="Missing values",
        description="dataset='file', CSV: an empty cell is 'impute'd (its column's mean, or most frequent word), its row "
        "left out ('drop_rows'), or the file refused naming the line ('refuse').",
    )
    allow_many_classes: bool = Field(
        False,
        label="Allow many classes",
        description="dataset='file': accept a label with more than 50 classes and under 20 samples per class on average "
        "(refused otherwise, as it looks like a number to predict).",
    )
    emnist_split: Literal["balanced", "byclass"] = Field(
        "balanced",
        label="EMNIST split",
        description="EMNIST: 'balanced' (47 classes, 131,600 images) or 'byclass' (62 classes, 814,255 images).",
    )
    synthetic_alpha: float = Field(
        1.0,
        ge=0,
        le=10,
        label="Synthetic alpha (model heterogeneity)",
        step=0.1,
        description="Synthetic(alpha, beta): model heterogeneity.",
    )
    synthetic_beta: float = Field(
        1.0,
        ge=0,
        le=10,
        label="Synthetic beta (feature heterogeneity)",
        step=0.1,
        description="Synthetic(alpha, beta): feature heterogeneity.",
    )
    synthetic_sizes: Literal["powerlaw", "equal"] = Field(
        "powerlaw",
        label="Synthetic device sizes",
        description="Synthetic: samples per device, 'powerlaw' (as in Li et al. 2020) or 'equal' (400 each, flcore's first release).",
    )
    synthetic_generator: Literal["fedprox", "flcore-v1"] = Field(
        "fedprox",
        label="Synthetic generator",
        description="Synthetic: 'fedprox' generates as the FedProx authors' code does; 'flcore-v1' as flcore's earlier releases "
        "did (variances for alpha and beta, standardised features, a pooled test set), to reproduce their runs.",
    )

    # Partition
    partition: str = Field("dirichlet", label="Split", description="How the training data is split over clients.")
    alpha: float = Field(
        0.5, gt=0, le=1000, label="Dirichlet alpha", step=0.1, description="Dirichlet concentration: small = skewed labels."
    )
    shards_per_client: int = Field(2, ge=1, le=100, label="Shards per client", description="Shards partition: labels per client.")
    quantity_distribution: Literal["lognormal", "powerlaw"] = Field(
        "lognormal", label="Client size distribution", description="Quantity skew: distribution of client sizes."
    )
    quantity_sigma: float = Field(
        1.0, gt=0, le=5, label="Size spread (sigma)", step=0.1, description="Quantity skew: log-normal sigma or power-law exponent."
    )
    min_samples_per_client: int = Field(
        2, ge=1, le=10_000, label="Minimum samples per client", description="Smallest number of training samples a client may get."
    )

    # Federation
    num_clients: int = Field(10, ge=1, le=100_000, label="Number of clients", description="Number of clients.")
    clients_per_round: int | None = Field(
        None, ge=1, le=100_000, label="Clients per round", description="Clients sampled per round (overrides client_fraction)."
    )
    client_fraction: float = Field(
        1.0, gt=0, le=1, label="Fraction of clients per round", step=0.05, description="Fraction of clients sampled per round."
    )
    rounds: int = Field(20, ge=1, le=10_000, label="Rounds", description="Communication rounds.")

    # Clients that come and go (flcore.federation.availability, flcore.federation.clock)
    availability: float = Field(
        1.0,
        gt=0,
        le=1,
        label="Chance a client is online",
        step=0.05,
        description="Probability that a client is online in a round (1 = always).",
    )
    availability_model: Literal["uniform", "heterogeneous"] = Field(
        "uniform",
        label="Online chance per client",
        description="'uniform': every client is online with that probability; 'heterogeneous': each client has its own, "
        "drawn once from a Beta distribution around it.",
    )
    dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        label="Chance a client drops out",
        step=0.05,
        description="Probability that a sampled client fails to report in a round (its update never arrives).",
    )
    stragglers: float = Field(
        0.0, ge=0, le=1, label="Fraction of stragglers", step=0.05, description="Fraction of the sampled clients that are slow in a round."
    )
    straggler_policy: Literal["drop", "partial"] = Field(
        "drop",
        label="Stragglers",
        description="What the server does with stragglers: 'drop' ignores them; with 'partial' they send what they finished "
        "(a random number of their local steps, as in FedProx).",
    )
    round_deadline_s: float | None = Field(
        None,
        gt=0,
        le=1e7,
        label="Round deadline (simulated s)",
        step=1.0,
        description="Simulated seconds the server waits for updates in a round; later ones are late (None = wait for all).",
    )

    # Local training
    model: str = Field("mlp", label="Model", description="Model architecture.")
    local_epochs: int = Field(2, ge=1, le=100, label="Local epochs", description="Local epochs per round.")
    batch_size: int = Field(16, ge=1, le=65_536, label="Batch size", description="Local mini-batch size.")
    lr: float = Field(0.1, gt=0, le=10, label="Client learning rate", step=0.01, description="Client learning rate.")
    momentum: float = Field(0.0, ge=0, lt=1, label="Client momentum", step=0.05, description="Client SGD momentum.")
    weight_decay: float = Field(0.0, ge=0, le=1, label="Weight decay", step=0.0001, description="Client SGD weight decay.")
    prox_mu: float = Field(
        0.0, ge=0, le=100, label="FedProx mu", step=0.01, description="FedProx proximal weight mu (0 = FedAvg's local loss)."
    )
    executor: str = Field("auto", label="Client training", description="How clients are trained: one after another, or batched together.")
    chunk_size: int | None = Field(
        None,
        ge=1,
        le=100_000,
        label="Clients per batched chunk",
        description="Vectorized executor: clients per batched chunk (None = automatic).",
    )
    ray_actors: int | None = Field(
        None,
        ge=1,
        le=4096,
        label="Ray actors",
        description="Ray executor: actors a round's clients are split over (None = one per free CPU, or per GPU).",
    )

    # Server
    strategy: str = Field("fedavg", label="Aggregation", description="Aggregation method.")
    server_lr: float | None = Field(
        None, gt=0, le=100, label="Server learning rate", step=0.1, description="Server learning rate (None = the strategy's default)."
    )
    server_momentum: float = Field(0.9, ge=0, lt=1, label="Server momentum", step=0.05, description="FedAvgM: server momentum.")
    beta1: float = Field(0.9, ge=0, lt=1, label="Server beta1", step=0.01, description="FedAdam/FedYogi: first-moment decay.")
    beta2: float = Field(0.99, ge=0, lt=1, label="Server beta2", step=0.001, description="FedAdam/FedYogi: second-moment decay.")
    tau: float = Field(
        1e-3, gt=0, le=10, label="Server tau (adaptivity)", step=0.001, description="FedAdam/FedYogi/FedAdagrad: adaptivity."
    )
    trim_beta: float = Field(
        0.1, ge=0, lt=0.5, label="Trimmed fraction (each end)", step=0.05, description="Trimmed mean: fraction trimmed from each end."
    )
    krum_byzantine: int | None = Field(
        None, ge=0, label="Assumed attackers per round", description="Krum: assumed attackers per round (None = from attack_fraction)."
    )
    multi_krum_m: int | None = Field(
        None, ge=1, label="Updates averaged (Multi-Krum)", description="Multi-Krum: updates averaged (None = n - f)."
    )

    # Every client's own model (flcore.federation.personalization): per-client evaluation and fairness
    personalization: str = Field(
        "none",
        label="Personalization",
        description="A personalized method: each client also keeps a model of its own, evaluated on its own data.",
    )
    client_test_fraction: float = Field(
        0.2,
        ge=0,
        le=0.9,
        label="Client test fraction",
        step=0.05,
        description="The part of each client's samples it keeps as its own test data, held out from training "
        "(0 = none: no per-client evaluation).",
    )
    eval_every: int = Field(
        1,
        ge=1,
        le=10_000,
        label="Evaluate clients every (rounds)",
        description="Evaluate every client on its own test data every this many rounds (and in the last).",
    )
    fairness_threshold: float = Field(
        0.5,
        gt=0,
        le=1,
        label="Poorly served below (accuracy)",
        step=0.05,
        description="Fairness: the accuracy below which a client counts as poorly served.",
    )
    finetune_steps: int = Field(
        5,
        ge=1,
        le=10_000,
        label="Fine-tuning steps",
        description="Fine-tuning: local steps from the global model before each client's evaluation.",
    )
    head_layers: int = Field(
        1,
        ge=1,
        le=100,
        label="Personal head (last layers)",
        description="FedPer/FedRep: the last layers with weights that stay on each client (its head).",
    )
    ditto_lambda: float = Field(
        0.1,
        ge=0,
        le=100,
        label="Ditto lambda",
        step=0.05,
        description="Ditto: how strongly each client's own model is pulled toward the global one.",
    )
    qffl_q: float = Field(
        1.0,
        ge=0,
        le=100,
        label="q-FFL q",
        step=0.1,
        description="q-FFL: fairness; 0 is FedAvg, larger weighs clients with a high loss more.",
    )

    # Attack
    attack: str = Field("none", label="Attack", description="What malicious clients do.")
    attack_fraction: float = Field(
        0.0, ge=0, lt=1, label="Fraction of malicious clients", step=0.05, description="Fraction of clients that are malicious."
    )
    attack_scale: float | None = Field(
        None, gt=0, le=1e4, label="Attack strength", step=0.5, description="Attack strength (None = the attack's default)."
    )

    # Privacy (see flcore/federation/privacy.py): read only when dp is not "none"
    dp: str = Field(
        "none",
        label="Differential privacy",
        description="Differential privacy: none, central (DP-FedAvg, server adds noise) or local (clients add it).",
    )
    dp_clip: float = Field(
        1.0, gt=0, le=1e6, label="Clipping norm (L2)", step=0.1, description="DP: the L2 norm each client's update is clipped to."
    )
    dp_noise_multiplier: float = Field(
        1.0, ge=0, le=100, label="Noise multiplier", step=0.1, description="DP: Gaussian noise standard deviation as a multiple of dp_clip."
    )
    dp_delta: float = Field(1e-5, gt=0, lt=1, label="Delta", step=1e-06, description="DP: the delta at which epsilon is reported.")
    dp_target_epsilon: float | None = Field(
        None,
        gt=0,
        le=1e6,
        label="Privacy budget (epsilon)",
        step=0.5,
        description="DP: the privacy budget; the run stops before a round that would spend more (None = no budget).",
    )

    # Communication (see flcore/federation/compression.py): what clients send back
    compression: str = Field("none", label="Update compression", description="How clients compress their updates: none, topk or quantize.")
    compression_ratio: float = Field(
        0.1,
        gt=0,
        le=1,
        label="Fraction of coordinates sent",
        step=0.01,
        description="Top-k: the fraction of coordinates each client sends.",
    )
    compression_bits: int = Field(
        8, ge=1, le=16, label="Bits per coordinate", description="Quantize: bits per coordinate (stochastic, unbiased)."
    )
    error_feedback: bool = Field(
        False, label="Error feedback", description="Top-k/quantize: each client adds what it could not send to its next update."
    )

    # Reproducibility and hardware
    seed: int = Field(0, ge=0, le=2**31 - 1, label="Seed", description="Root seed for model init, sampling and shuffling.")
    data_seed: int | None = Field(None, ge=0, le=2**31 - 1, label="Data split seed", description="Seed of the data split (None = seed).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", label="Device", description="Where to train.")

    @field_validator("drop_columns", mode="before")
    @classmethod
    def _columns_as_text(cls, value: Any) -> Any:
        """Column names as the text 'id, name', from that text spaced any way or a list (a JSON config's ["id", "name"])."""
        parts = value.split(",") if isinstance(value, str) else value if isinstance(value, list | tuple) else None
        return value if parts is None else ", ".join(p for p in (str(v).strip() for v in parts) if p)

    @field_validator("name")
    @classmethod
    def _name_shows_as_it_is(cls, name: str) -> str:
        """No character that reorders how the text around it is shown: with U+202E a name typed
        as "report\u202eexe.pdf" reads "reportfdp.exe" on every page and in every chart."""
        found = sorted({f"U+{ord(c):04X}" for c in name if c in BIDI_CONTROLS})
        if found:
            raise ValueError(
                f"it holds {', '.join(found)}, which change the direction text is shown in, so the name would not "
                "read as it is; type it without them"
            )
        return name

    @model_validator(mode="before")
    @classmethod
    def _dataset_defaults(cls, values: Any) -> Any:
        """A dataset split by its own clients by default (synthetic) brings partition='natural'
        and its client count where they are not given (see `natural_defaults`)."""
        if not isinstance(values, dict):
            return values
        return natural_defaults(values)

    @model_validator(mode="after")
    def _check(self) -> "ExperimentConfig":
        problems = _cross_field_problems(self)
        if problems:  # the pairs travel in the error's context to `format_validation_error`
            raise PydanticCustomError("cross_field", "{summary}", {"summary": "; ".join(map(str, problems)), "problems": problems})
        return self

    # Derived values -----------------------------------------------------------------
    @property
    def clients_per_round_resolved(self) -> int:
        if self.clients_per_round is not None:
            return self.clients_per_round
        return max(1, round(self.client_fraction * self.num_clients))

    @property
    def data_seed_resolved(self) -> int:
        return self.seed if self.data_seed is None else self.data_seed

    # Construction -------------------------------------------------------------------
    @classmethod
    def create(cls, **values: Any) -> "ExperimentConfig":
        """Validate `values`; raise ConfigError with one readable sentence per problem."""
        try:
            return cls(**values)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err)) from None

    def replace(self, **changes: Any) -> "ExperimentConfig":
        return type(self).create(**{**self.model_dump(), **changes})

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str, stored: bool = False) -> "ExperimentConfig":
        """A config from JSON; fields that are now server settings (RETIRED_FIELDS) are dropped.
        `stored`: a full config an earlier release may have written (a run store's), whose
        missing fields take the value they had then (EARLIER_MEANING)."""
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError([f"the config is not valid JSON: {err}"]) from None
        if not isinstance(values, dict):
            raise ConfigError(["the config must be a JSON object of field: value"])
        if stored:
            values = {**EARLIER_MEANING, **values}
            if isinstance(values.get("name"), str):  # a run stored before such names were refused still reads
                values["name"] = "".join(c for c in values["name"] if c not in BIDI_CONTROLS)
        return cls.create(**{k: v for k, v in values.items() if k not in RETIRED_FIELDS})

    @classmethod
    def load(cls, path: str | Path) -> "ExperimentConfig":
        return cls.from_json(Path(path).read_text())

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")


def _shown_as(name: str) -> dict[str, Any]:
    info = ExperimentConfig.model_fields.get(name)
    extra = None if info is None else info.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def field_label(name: str) -> str:
    """How config field `name` is named on screen: its `label`, or else its name in words."""
    return _shown_as(name).get("label") or name.replace("_", " ").capitalize()


def field_step(name: str) -> float | None:
    """The step of field `name`'s number widget, or None where the field gives none."""
    return _shown_as(name).get("step")


def format_validation_error(err: ValidationError) -> list[Problem]:
    problems = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"])
        if e["type"] == "cross_field":  # pairs from `_cross_field_problems`, fields already named
            problems.extend(e["ctx"]["problems"])
            continue
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            problems.append(Problem(field, f"{field} is not a setting; see `python -m flcore run --help` for the settings"))
            continue
        value = e.get("input")
        allowed = _allowed_range(field) if e["type"] in _BOUND_ERRORS else ""
        problems.append(Problem(field, f"{field}={shown(value)} is invalid: {msg[0].lower() + msg[1:]}{allowed}"))
    return problems


_BOUND_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _allowed_range(field: str) -> str:
    """' (allowed: above 0, at most 1)': both ends of a numeric field's range, for its message."""
    info = ExperimentConfig.model_fields.get(field)
    if info is None:
        return ""
    words = {"gt": "above", "ge": "at least", "lt": "below", "le": "at most"}
    ends = [f"{words[k]} {getattr(m, k):g}" for m in info.metadata for k in words if hasattr(m, k)]
    return f" (allowed: {', '.join(ends)})" if len(ends) > 1 else ""


def natural_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """`values` (config fields by name) with the split settings the dataset implies where they
    are left out: a dataset split by its own clients by default (Synthetic's devices) takes
    partition='natural', and the natural split takes num_clients from the data when its number
    of clients can be known (without a download). What cannot be known is left for the config's
    validation to explain."""
    from flcore import settings as server_settings
    from flcore.data.datasets import DATASETS, DataFileError, DatasetUnavailable

    name = values.get("dataset", ExperimentConfig.model_fields["dataset"].default)
    if not isinstance(name, str) or name not in DATASETS:
        return values
    spec = DATASETS.get(name)
    out = dict(values)
    if "partition" not in out and spec.natural_by_default:
        out["partition"] = "natural"
    if out.get("partition") == "natural" and "num_clients" not in out:
        count = spec.info.natural_clients
        if count is None and spec.read_info is not None:
            draft = ExperimentConfig.model_construct(**{**ExperimentConfig().model_dump(), **out})
            try:
                count = spec.read_info(draft, server_settings.current()).natural_clients
            except (DataFileError, DatasetUnavailable, ValueError, TypeError, OSError):
                count = None  # the loader explains what is wrong when the config is checked
        if count is not None:
            out["num_clients"] = count
    return out


def registries() -> dict[str, "Registry"]:
    """The config fields whose value names a registry entry, with that registry (in form order)."""
    from flcore.data.datasets import DATASETS
    from flcore.data.partition import PARTITIONERS
    from flcore.federation.attacks import ATTACKS
    from flcore.federation.compression import COMPRESSORS
    from flcore.federation.personalization import PERSONALIZATION
    from flcore.federation.privacy import PRIVACY
    from flcore.models import MODELS
    from flcore.strategies import STRATEGIES
    from flcore.training import EXECUTORS

    return {
        "dataset": DATASETS, "partition": PARTITIONERS, "model": MODELS, "strategy": STRATEGIES,
        "attack": ATTACKS, "dp": PRIVACY, "compression": COMPRESSORS, "executor": EXECUTORS, "personalization": PERSONALIZATION,
    }  # fmt: skip


def _choice(field: str, value: str, registry: "Registry") -> Problem | None:
    if value in registry:
        return None
    return Problem(field, f"{field}={shown(value)} is not a known {registry.kind}; choose one of: {', '.join(registry.names())}")


def _cross_field_problems(c: ExperimentConfig) -> list[Problem]:
    choices = registries()
    strategies, attacks = choices["strategy"], choices["attack"]
    problems = [p for field, registry in choices.items() if (p := _choice(field, getattr(c, field), registry))]
    if c.clients_per_round is not None and c.clients_per_round > c.num_clients:
        problems.append(Problem("clients_per_round", f"clients_per_round={c.clients_per_round} exceeds num_clients={c.num_clients}"))
    if c.attack != "none" and c.attack_fraction == 0:
        problems.append(Problem("attack_fraction", f"attack_fraction=0 must be above 0 when attack={c.attack!r} (or set attack='none')"))
    if c.attack == "none" and c.attack_fraction > 0:
        others = ", ".join(n for n in attacks.names() if n != "none")
        problems.append(Problem("attack_fraction", f"attack_fraction={c.attack_fraction} needs an attack; choose one of: {others}"))
    if not problems:
        problems.extend(_data_problems(c))
    if c.strategy in strategies:
        problems.extend(strategies.get(c.strategy).config_problems(c))
    if c.personalization in choices["personalization"]:
        problems.extend(choices["personalization"].get(c.personalization).config_problems(c))
    if c.executor in choices["executor"]:  # e.g. the ray executor without Ray, a batched executor and an LSTM
        problems.extend(choices["executor"].get(c.executor).problems(c))
    if not problems:
        from flcore.federation.privacy import config_problems as privacy_problems

        problems.extend(privacy_problems(c))
    return problems


def _data_problems(c: ExperimentConfig) -> list[Problem]:
    """What the dataset's files say about the config: a `file` that cannot be used, a model that
    cannot read the inputs, a natural split the data does not have or with another client count.
    A dataset whose files are not there yet (to be downloaded, or made with LEAF's scripts) is
    checked against what is known without them; its loader explains what is missing."""
    from flcore import settings as server_settings
    from flcore.data.datasets import DATASETS, DataFileError, DatasetUnavailable
    from flcore.data.partition import natural_count_message, natural_missing_message
    from flcore.models import MODELS

    spec = DATASETS.get(c.dataset)
    try:
        info, read = spec.info_for(c, server_settings.current()), True  # at the edge: this process's server settings
    except DataFileError as err:
        return [Problem(err.field, str(err))]
    except DatasetUnavailable:
        info, read = spec.info, False
    problems = []
    reason = MODELS.get(c.model).unsupported(info.input_shape, info.vocab_size)
    if reason:
        problems.append(Problem("model", f"model={c.model!r} cannot read dataset={c.dataset!r}: {reason}"))
    if c.partition == "natural" and read:
        if info.natural_clients is None:
            problems.append(Problem("partition", natural_missing_message(c)))
        elif info.natural_clients != c.num_clients:
            problems.append(Problem("num_clients", natural_count_message(c, info.natural_clients)))
    return problems
