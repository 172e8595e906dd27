"""New run: the experiment form, a partition preview that follows the form, and the Run button.

The form is built from the engine (see `dashboard.form`). Before anything trains, the right
column splits the dataset's training labels exactly as the run will (same partitioner, same
data seed) and shows the split as a heatmap, stacked bars and heterogeneity statistics. The
config is validated on every change: the engine's sentences appear under the widget they name
and above the Run button, and Run queues nothing while any remains. Run hands the config to the
background runner and opens the new run's page; this page never trains.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from dashboard import access, charts, data_notes, state
from dashboard.access import plain
from dashboard.form import FORM_VALUES, KEY_PREFIX, Form
from dashboard.layout import chart
from dashboard.tables import describe_config
from flcore import settings as server_settings
from flcore.config import ConfigError, ExperimentConfig, Problem
from flcore.data.datasets import AVAILABILITY, DATASETS, DatasetUnavailable, availability, dataset_fields, dataset_info, load_dataset
from flcore.data.partition import PartitionError, counts_frame, heterogeneity, split_counts, split_fields
from flcore.service.quotas import QuotaError, admission_problems, run_cost
from flcore.store import StoreError

PREFILLED_FROM = "prefilled_from"
PREVIEW_CLIENTS = 1_000  # the most clients the preview's charts and table draw
# A run estimated to take longer than this on one core (about 18 TFLOP) gets a warning before Run
# is pressed: the defaults take under a minute, and a typo in rounds or clients can cost hours.
LONG_RUN_HOURS = 0.25


@st.cache_data(show_spinner="Loading the dataset's labels…", max_entries=8)
def train_labels(dataset_json: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The training labels of a dataset and their natural clients (None if it has none), read
    from the server's data folder (never downloaded for a preview); `dataset_json` holds only
    the fields the dataset reads, so other changes hit the cache."""
    config = ExperimentConfig.from_json(dataset_json)
    if availability(config.dataset) == "download":
        raise DatasetUnavailable(f"{config.dataset} is not in the server's data folder yet")
    data = load_dataset(config)
    return data.y_train.numpy(), data.train_clients


def dataset_part(config: ExperimentConfig) -> str:
    """The config reduced to what the dataset's samples depend on, as the labels' cache key."""
    return ExperimentConfig.create(**{f: getattr(config, f) for f in dataset_fields(config)}).to_json()


@st.cache_data(show_spinner="Splitting the data…", max_entries=32)
def preview_counts(preview_json: str) -> np.ndarray:
    """Clients x classes counts of the split the run will make (same partitioner and seed)."""
    config = ExperimentConfig.from_json(preview_json)
    labels, clients = train_labels(dataset_part(config))
    return split_counts(labels, config, dataset_info(config).num_classes, clients)


def _reset_form() -> None:
    for key in [k for k in st.session_state if str(k).startswith(KEY_PREFIX)]:
        del st.session_state[key]
    st.session_state.pop(FORM_VALUES, None)
    st.session_state.pop(PREFILLED_FROM, None)


def _start_values() -> dict:
    """The form's starting values: a pending prefill, else what the user last chose, else defaults."""
    if state.PREFILL in st.session_state:
        prefill = st.session_state.pop(state.PREFILL)
        _reset_form()
        st.session_state[FORM_VALUES] = prefill
        st.session_state[PREFILLED_FROM] = prefill.get("name") or "an earlier run"
    return st.session_state.get(FORM_VALUES, {})


def _runs_reading(data_file: str) -> int:
    """How many stored runs read `data_file` (said before the file is deleted)."""
    return sum(r.config.dataset == "file" and r.config.data_file == data_file for r in state.get_store().list_runs())


def _validate(values: dict) -> tuple[ExperimentConfig | None, list[Problem]]:
    """The config, or the problems with it: its own, and what this server admits from this
    person now (`admission_problems`, the check the runner makes when Run is pressed)."""
    try:
        config = ExperimentConfig.create(**values)
    except ConfigError as err:
        return None, list(err.problems)
    return config, admission_problems(state.get_store(), config, access.user(), server_settings.current())


def _preview(values: dict) -> tuple[list[Problem], bool]:
    """Draw the partition preview; return (problems found splitting, whether it was drawn)."""
    st.subheader("Partition preview")
    try:
        candidate = ExperimentConfig.model_construct(**{**ExperimentConfig().model_dump(), **values})
        preview_config = ExperimentConfig.create(**{f: values[f] for f in split_fields(candidate)})
    except (ConfigError, KeyError):
        st.info("The preview appears once the data and split settings are valid (see the messages on the left).")
        return [], False
    entry = DATASETS.entry(preview_config.dataset)
    try:
        counts = preview_counts(preview_config.to_json())
    except DatasetUnavailable as err:
        where = availability(preview_config.dataset)
        if where == "present":  # files to make or bring (LEAF, a file of one's own): the loader says how
            st.info(f"{entry.label} cannot be previewed: {plain(err)}")
        else:
            st.info(f"{entry.label} is {AVAILABILITY[where]}, so its split cannot be previewed yet.")
        return [], False
    except PartitionError as err:
        return [Problem(err.field, str(err))], False

    info = dataset_info(preview_config)
    het = heterogeneity(counts)
    num_classes = counts.shape[1]
    cols = st.columns(2) + st.columns(2)
    cols[0].metric(
        "Labels per client",
        f"{het.classes_per_client:.1f} of {num_classes}",
        help="How many different labels a client holds, on average. Fewer labels per client means a more skewed split.",
    )
    cols[1].metric(
        "Label entropy",
        f"{het.label_entropy_bits:.2f} bits",
        help=f"Mean entropy of a client's label mix: {np.log2(num_classes):.2f} bits is perfectly even, 0 means a single label.",
    )
    cols[2].metric(
        "Distance from the global mix",
        f"{het.distance_from_global:.2f}",
        help="Mean total-variation distance between a client's label mix and the whole dataset's: 0 is IID, 1 is disjoint.",
    )
    cols[3].metric(
        "Client size spread",
        f"{het.size_cv:.2f}",
        help="Coefficient of variation of client sizes: 0 means every client holds the same number of samples.",
    )
    st.caption(
        f"{preview_config.num_clients} clients share {int(counts.sum()):,} training samples "
        f"({int(counts.sum(1).min()):,} to {int(counts.sum(1).max()):,} each). This is the split the run will use."
    )
    drawn = counts[:PREVIEW_CLIENTS]  # a chart of 80,000 clients took 87 s of the server to draw, and shows no more
    if len(drawn) < len(counts):
        st.caption(
            f"The charts and the table show the first {PREVIEW_CLIENTS:,} of the {len(counts):,} clients (a preview draws at "
            f"most {PREVIEW_CLIENTS:,}); the statistics above cover them all."
        )
    frame = counts_frame(drawn)
    chart(charts.partition_heatmap(frame, info.class_names), "partition_heatmap", "preview_heatmap")
    chart(charts.partition_bars(frame, info.class_names), "partition_bars", "preview_bars")
    with st.expander("Per-client statistics"):
        st.dataframe(
            het.per_client.head(PREVIEW_CLIENTS).rename(
                columns={
                    "client_id": "client",
                    "label_entropy_bits": "label entropy (bits)",
                    "distance_from_global": "distance from global mix",
                }
            ),
            hide_index=True,
            width="stretch",
        )
    return [], True


st.title("New run")
st.caption(
    "Pick a dataset, how it is split over clients and how they train together, then press Run. "
    "The defaults give a meaningful demo in under a minute."
)
start = _start_values()
if PREFILLED_FROM in st.session_state:
    st.info(f"Settings copied from **{plain(st.session_state[PREFILLED_FROM])}**: change what you like and press Run.")

left, right = st.columns([5, 6], gap="large")
with right:
    action = st.container(border=True)
    preview_box = st.container()
with left:
    form = Form(start, runs_reading=_runs_reading)
    values = form.render()
    st.button("Reset to defaults", on_click=_reset_form, help="Forget the changes and start from the default settings.")
st.session_state[FORM_VALUES] = values

config, problems = _validate(values)
with preview_box:
    split_problems, _ = _preview(values)
    if config is not None:  # how a file of one's own was read (a separator found, columns encoded...)
        data_notes.show(config)
problems += [p for p in split_problems if p not in problems]
form.show_problems(problems)


def long_run_warning(config: ExperimentConfig) -> None:
    """One sentence when the server's estimate of the run (`run_cost`) is over LONG_RUN_HOURS of one core."""
    cost = run_cost(config, server_settings.current())
    if cost is None or cost.hours <= LONG_RUN_HOURS:
        return
    took = f"{cost.hours * 60:.0f} minutes" if cost.hours < 1 else f"{cost.hours:,.1f} hours"
    st.warning(
        f"This run is long: about {took} of one core by this server's estimate ({cost.tflop:,.1f} TFLOP); fewer rounds, "
        "clients per round or local epochs make it shorter.",
        icon=":material/hourglass_top:",
    )


@st.fragment
def run_button(config: ExperimentConfig | None, problems: list[Problem]) -> None:
    """The Run button. A click reruns only this fragment (the form above is not drawn again):
    it queues the run, waits a moment for its first round when a worker took it at once (so the
    Run page opens with the first point drawn), and opens the Run page."""
    clicked = st.button("Run", type="primary", icon=":material/play_arrow:", width="stretch", key="run_button")
    if clicked and config is not None and not problems:
        with st.spinner("Starting the run…"):
            runner = state.get_runner()
            try:
                run_id = runner.submit(config, user=access.user())
            except QuotaError as err:
                st.error("Nothing was queued: " + "; ".join(plain(p.message) for p in err.problems) + ".")
                return
            except StoreError as err:  # a store that became read-only or full: its file and what to do
                st.error("Nothing was queued: " + plain(err) + ".")
                return
            state.wait_for_first_round(runner.store, run_id)
        st.session_state.pop(PREFILLED_FROM, None)
        state.open_run(run_id)
    elif clicked:
        st.warning("Nothing was queued: fix the settings listed above first.")


with action:
    if problems:
        st.markdown("**Not ready to run yet.** Fix these settings:")
        st.error("\n".join(f"- {plain(p.message)}" for p in problems))
    else:
        st.markdown(f"**Ready:** {plain(describe_config(config))}")
        long_run_warning(config)
    run_button(config, problems)
