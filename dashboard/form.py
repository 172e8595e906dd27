"""The New run form, built from the engine rather than written by hand.

Each `ExperimentConfig` field becomes one widget whose kind, bounds, label, step and help text come
from the field itself (`model_fields`: its type, its ge/gt/le/lt constraints, its description;
`field_label` and `field_step` for its label and a number's step); the
choices of dataset, split, model, aggregation, attack and executor come from the engine's registries,
and under each choice only the fields that entry reads (`Entry.params`) are shown. Choosing a
dataset split by its own clients by default (synthetic) moves the split and the number of
clients with it, and the natural split takes its number of clients from the data. A field
that no section places and no registry entry claims still gets a widget under "Advanced", so
a new engine setting can never be missing from the form. Hidden fields keep the value the form
started from. Widget keys are ``cfg.<field>``; the form's values are kept in the session under
`FORM_VALUES` while the user visits other pages.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable
from typing import Any

import annotated_types as at
import streamlit as st
from pydantic.fields import FieldInfo

from flcore import settings as server_settings
from flcore.config import ExperimentConfig, Problem, field_label, field_step, natural_defaults, registries
from flcore.data import uploads
from flcore.data.datasets import AVAILABILITY, availability
from flcore.registry import Registry

KEY_PREFIX = "cfg."
FORM_VALUES = "form_values"  # session-state key: the form's values, kept while the user visits other pages

# Registry-backed choices: field -> registry.
CHOICES: dict[str, Registry[Any]] = registries()

# Fields each section always shows (registry choices add their entry's params after them).
SECTIONS: tuple[tuple[str, str | None, tuple[str, ...]], ...] = (
    ("Data", "dataset", ()),
    ("Split over clients", "partition", ("num_clients",)),
    ("Each round", None, ("clients_per_round", "client_fraction", "rounds")),
    (
        "Clients that come and go",
        None,
        ("availability", "availability_model", "dropout", "stragglers", "straggler_policy", "round_deadline_s"),
    ),
    ("Local training on each client", "model", ("local_epochs", "batch_size", "lr", "momentum", "weight_decay", "prox_mu")),
    ("Aggregation on the server", "strategy", ()),
    ("Personalization: every client's own model", "personalization", ("client_test_fraction", "eval_every", "fairness_threshold")),
    ("Attack", "attack", ()),
    ("Privacy", "dp", ()),
    ("Communication: what clients send back", "compression", ()),
)
ADVANCED = ("name", "seed", "data_seed", "executor", "chunk_size", "ray_actors", "device")

# What an empty optional field means, shown inside it.
PLACEHOLDERS = {
    "clients_per_round": "from the fraction",
    "server_lr": "the strategy's default",
    "krum_byzantine": "from the attack fraction",
    "multi_krum_m": "all but the assumed attackers",
    "attack_scale": "the attack's default",
    "data_seed": "same as the seed",
    "chunk_size": "automatic",
    "round_deadline_s": "none: wait for every client",
    "ray_actors": "one per free CPU or GPU",
    "dp_target_epsilon": "no budget: every round",
}
# A value the widget starts at when it appears and the form still holds the config default,
# because the config default alone is refused (an attack needs some malicious clients).
APPEAR_WITH = {"attack_fraction": 0.2}


def _kind(annotation: Any) -> tuple[type, bool, tuple[Any, ...]]:
    """(base type, optional, literal choices) of a field annotation."""
    optional = False
    args = typing.get_args(annotation)
    if type(None) in args:  # X | None
        optional = True
        annotation = next(a for a in args if a is not type(None))
    if typing.get_origin(annotation) is typing.Literal:
        choices = typing.get_args(annotation)
        return type(choices[0]), optional, choices
    return annotation, optional, ()


def bounds(info: FieldInfo) -> tuple[float | None, float | None]:
    """The (low, high) limits of a numeric field; strict limits are included here and refused
    by the engine with its own message if the user types them."""
    low = high = None
    for m in info.metadata:
        if isinstance(m, at.Ge):
            low = m.ge
        elif isinstance(m, at.Gt):
            low = m.gt
        elif isinstance(m, at.Le):
            high = m.le
        elif isinstance(m, at.Lt):
            high = m.lt
    return low, high


def _number(name: str, info: FieldInfo, kind: type, optional: bool, value: Any, key: str, label: str) -> Any:
    low, high = bounds(info)
    if kind is int:
        return st.number_input(
            label,
            min_value=None if low is None else int(low),
            max_value=None if high is None else int(high),
            value=None if value is None else int(value),
            step=1,
            key=key,
            help=info.description,
            placeholder=PLACEHOLDERS.get(name, "automatic") if optional else None,
        )
    return st.number_input(
        label,
        min_value=None if low is None else float(low),
        max_value=None if high is None else float(high),
        value=None if value is None else float(value),
        step=field_step(name) or 0.01,
        format="%g",
        key=key,
        help=info.description,
        placeholder=PLACEHOLDERS.get(name, "automatic") if optional else None,
    )


def data_file_widget(value: Any, runs_reading: Callable[[str], int] | None = None) -> str:
    """The data file of dataset 'file': one of the user's files uploaded to this server (an
    admin's: everyone's), or a new upload (stored in the server's data folder under its content
    hash; never a path typed in), with a button that deletes the chosen one and says how many
    stored runs read it (`runs_reading(path)`, given by the page that has the store)."""
    from dashboard import access

    settings = server_settings.current()
    fresh = st.file_uploader(  # the dropzone shows the limit itself ("Limit N MB per file"): FLCORE_MAX_UPLOAD_MB
        "Upload a CSV or TSV, NPZ or zipped image folder",
        type=[s.lstrip(".") for s in uploads.SUFFIXES], key="upload_data_file", max_upload_size=settings.max_upload_mb,
        help="A CSV or TSV (any separator): feature columns of numbers, words or dates, a label column, optionally a client "
        "column. An NPZ: arrays x, y (and client). A ZIP: one folder of images per class. A file that cannot be read is not kept.",
    )  # fmt: skip
    if fresh is not None and st.session_state.get("uploaded_id") != fresh.file_id:
        try:
            stored = uploads.save(fresh.getvalue(), fresh.name, settings, access.user().name)
        except uploads.UploadError as err:
            st.error(access.plain(err))
        else:
            st.session_state["uploaded_id"] = fresh.file_id
            st.session_state[KEY_PREFIX + "data_file"] = str(stored.path)
    if problem := st.session_state.pop(DELETE_PROBLEM, None):
        st.error(problem)
    listed = {str(u.path): u for u in uploads.listing(settings, access.user())}
    files = {path: u.label for path, u in listed.items()}
    key = KEY_PREFIX + "data_file"
    if not files:
        st.selectbox(
            field_label("data_file"),
            [],
            index=None,
            placeholder="No data file on this server yet: upload one above",
            disabled=True,
            key=key,
        )
        return ""
    if st.session_state.get(key) not in files:
        st.session_state.pop(key, None)
    paths = list(files)
    chosen = st.selectbox(
        field_label("data_file"), paths, index=paths.index(value) if value in files else 0, key=key, format_func=files.get,
        help="Your files uploaded to this server, newest first.",
    )  # fmt: skip
    if chosen in listed:
        _delete_upload_control(listed[chosen], runs_reading(chosen) if runs_reading else 0)
    return chosen


DELETE_PROBLEM = "upload_delete_problem"  # session-state key: why the last Delete did nothing


def _delete_upload_control(upload: uploads.Upload, n: int) -> None:
    """A small 'Delete this file' button for the chosen upload: it asks first, by the file's
    original name, and says how many stored runs (`n`) read it (they keep their results)."""
    from dashboard import access

    with st.popover("Delete this file", icon=":material/delete:"):
        st.markdown(f"Delete **{access.plain(upload.name)}** from this server?")
        if n:
            st.caption(
                f"{n} stored run{'s' if n != 1 else ''} read{'s' if n == 1 else ''} it: "
                f"{'it keeps its' if n == 1 else 'they keep their'} results, but cannot be resumed without it."
            )
        st.button("Delete", key="delete_upload", type="primary", on_click=_delete_upload, args=(str(upload.path),))


def _delete_upload(path: str) -> None:
    from dashboard import access

    try:
        uploads.delete(path, server_settings.current(), access.user())
    except uploads.UploadError as err:
        st.session_state[DELETE_PROBLEM] = access.plain(err)
    else:
        st.session_state.pop(KEY_PREFIX + "data_file", None)


def field_widget(name: str, value: Any) -> Any:
    """One widget for config field `name`, starting at `value`; returns what the user chose."""
    if name == "data_file":
        return data_file_widget(value)
    info = ExperimentConfig.model_fields[name]
    key, label = KEY_PREFIX + name, field_label(name)
    if name in CHOICES:
        registry = CHOICES[name]
        names = registry.names()
        shown = _dataset_label if name == "dataset" else (lambda n: registry.entry(n).label)
        chosen = st.selectbox(
            label, names, index=names.index(value) if value in names else 0, key=key, format_func=shown, help=info.description,
            on_change=FOLLOW.get(name),
        )  # fmt: skip
        caption = registry.entry(chosen).description
        if name == "dataset" and availability(chosen) != "present":
            caption += f" It is {AVAILABILITY[availability(chosen)]}."
        st.caption(caption)
        return chosen
    kind, optional, choices = _kind(info.annotation)
    if choices:
        return st.selectbox(label, choices, index=choices.index(value) if value in choices else 0, key=key, help=info.description)
    if kind is bool:
        return st.toggle(label, value=bool(value), key=key, help=info.description)
    if kind in (int, float):
        return _number(name, info, kind, optional, value, key, label)
    max_chars = next((m.max_length for m in info.metadata if hasattr(m, "max_length")), None)
    return st.text_input(label, value="" if value is None else str(value), key=key, help=info.description, max_chars=max_chars)


def _current_values() -> dict[str, Any]:
    """The form's values as the widgets hold them now (in a callback, before the rerun)."""
    shown = {f: st.session_state[KEY_PREFIX + f] for f in ExperimentConfig.model_fields if KEY_PREFIX + f in st.session_state}
    return {**ExperimentConfig().model_dump(), **st.session_state.get(FORM_VALUES, {}), **shown}


def _follow_dataset() -> None:
    """A dataset split by its own clients by default (synthetic) brings the natural split and its
    client count; a dataset without natural clients gives the natural split up for the default."""
    values = _current_values()
    implied = natural_defaults({k: v for k, v in values.items() if k not in ("partition", "num_clients")})
    if "partition" in implied:
        for field in ("partition", "num_clients"):
            if field in implied:
                st.session_state[KEY_PREFIX + field] = implied[field]
    elif values.get("partition") == "natural":
        spec = CHOICES["dataset"].get(values["dataset"])
        if spec.info.natural_clients is None and spec.read_info is None:
            st.session_state[KEY_PREFIX + "partition"] = ExperimentConfig.model_fields["partition"].default


def _follow_partition() -> None:
    """The natural split takes the number of clients from the data, when it can be known."""
    values = _current_values()
    if values.get("partition") == "natural":
        implied = natural_defaults({k: v for k, v in values.items() if k != "num_clients"})
        if "num_clients" in implied:
            st.session_state[KEY_PREFIX + "num_clients"] = implied["num_clients"]


FOLLOW = {"dataset": _follow_dataset, "partition": _follow_partition}  # choices that move other widgets


def _dataset_label(name: str) -> str:
    """A dataset's label, and whether this server has it (the operator's data folder decides)."""
    where = availability(name)
    suffix = {"present": "", "download": " · downloaded when a run starts", "missing": " · not on this server"}[where]
    return CHOICES["dataset"].entry(name).label + suffix


def placed_fields() -> set[str]:
    """Fields the sections place, or that some registry entry claims as a parameter."""
    placed = set(ADVANCED) | set(CHOICES)
    for _, _, fields in SECTIONS:
        placed.update(fields)
    for registry in CHOICES.values():
        for entry in registry.entries():
            placed.update(entry.params)
    return placed


def leftover_fields() -> list[str]:
    placed = placed_fields()
    return [f for f in ExperimentConfig.model_fields if f not in placed]


class Form:
    """Renders the form; `values` is the chosen config (as a dict), `slots` a place under each
    shown widget for that field's problem."""

    def __init__(self, start: dict[str, Any], runs_reading: Callable[[str], int] | None = None) -> None:
        self.runs_reading = runs_reading  # how many stored runs read a data file, for its Delete button
        defaults = ExperimentConfig().model_dump()
        self.start = {**defaults, **start}
        self.values = dict(self.start)
        self.slots: dict[str, Any] = {}
        self._defaults = defaults

    def field(self, name: str) -> None:
        if name in self.slots:  # already shown in an earlier section
            return
        value = self.values[name]
        if name in APPEAR_WITH and value == self._defaults[name] and KEY_PREFIX + name not in st.session_state:
            value = APPEAR_WITH[name]
        self.values[name] = data_file_widget(value, self.runs_reading) if name == "data_file" else field_widget(name, value)
        self.slots[name] = st.empty()

    def grid(self, names: Iterable[str], columns: int = 2) -> None:
        names = [n for n in names if n not in self.slots]
        if not names:
            return
        cols = st.columns(columns)
        for i, name in enumerate(names):
            with cols[i % columns]:
                self.field(name)

    def render(self) -> dict[str, Any]:
        for title, choice, fields in SECTIONS:
            with st.container(border=True):
                st.markdown(f"**{title}**")
                if choice:
                    self.field(choice)
                    params = CHOICES[choice].entry(self.values[choice]).params
                else:
                    params = ()
                self.grid([*fields, *params])
        with st.expander("Advanced: name, seeds, hardware"):
            self.grid([*ADVANCED, *leftover_fields()])
        return self.values

    def show_problems(self, problems: list[Problem]) -> list[Problem]:
        """Put each problem under the widget of its field; return those not placed. A sentence
        quotes what was typed or uploaded (a run name, a column name), so it is shown as plain
        text: `[Sign in again](http://...)` in a column name is never made a link."""
        from dashboard import access

        unplaced = []
        for problem in problems:
            if problem.field in self.slots:
                self.slots[problem.field].error(access.plain(problem.message))
            else:
                unplaced.append(problem)
        return unplaced
