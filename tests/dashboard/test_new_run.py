"""The New run page under AppTest, against a real store in a temporary directory."""

from __future__ import annotations

import time

import numpy as np
import pytest
from dashboard_helpers import app, errors, figure_titled, no_exceptions, shown, texts

from flcore.config import ExperimentConfig
from flcore.data.datasets import DATASETS
from flcore.data.partition import PARTITIONERS
from flcore.federation.attacks import ATTACKS
from flcore.federation.compression import COMPRESSORS
from flcore.federation.personalization import PERSONALIZATION
from flcore.federation.privacy import PRIVACY
from flcore.strategies import STRATEGIES

FIELDS = set(ExperimentConfig.model_fields)


def widget_keys(at) -> set[str]:
    keys = set()
    for kind in ("number_input", "selectbox", "toggle", "text_input", "checkbox", "slider"):
        keys |= {w.key for w in getattr(at, kind) if w.key}
    return {k.removeprefix("cfg.") for k in keys if k.startswith("cfg.")}


def preview_heatmap(at):
    return figure_titled(at, "Labels per client")


def test_defaults_render_a_ready_form_and_a_partition_preview(store):
    at = app().run()
    no_exceptions(at)
    assert shown(at.title[0].value) == "New run"
    assert "Ready:" in texts(at) and "Digits" in texts(at)
    assert at.selectbox(key="cfg.dataset").value == "digits"
    assert at.selectbox(key="cfg.partition").value == "dirichlet"
    assert at.number_input(key="cfg.num_clients").value == 10
    assert at.number_input(key="cfg.alpha").value == 0.5
    assert len(at.get("plotly_chart")) == 2  # heatmap and stacked bars
    assert [m.label for m in at.metric] == ["Labels per client", "Label entropy", "Distance from the global mix", "Client size spread"]
    assert not at.error


def test_every_engine_setting_has_a_widget_for_some_choice(store):
    """Each registry entry shows exactly the fields it reads, and every config field appears."""
    at = app().run()
    seen = widget_keys(at)
    choices = (("dataset", DATASETS), ("partition", PARTITIONERS), ("strategy", STRATEGIES), ("attack", ATTACKS), ("dp", PRIVACY))
    for field, registry in (*choices, ("compression", COMPRESSORS), ("personalization", PERSONALIZATION)):
        for entry in registry.entries():
            if field == "dataset" and not entry.obj.info.offline:
                at.selectbox(key="cfg.dataset").set_value(entry.name).run()
            else:
                at.selectbox(key=f"cfg.{field}").set_value(entry.name).run()
            no_exceptions(at)
            shown = widget_keys(at)
            assert set(entry.params) <= shown, f"{field}={entry.name} hides {set(entry.params) - shown}"
            seen |= shown
        at.selectbox(key=f"cfg.{field}").set_value(ExperimentConfig.model_fields[field].default).run()
    assert seen >= FIELDS, f"no widget for {FIELDS - seen}"
    # and the params of other choices are hidden: FedAvg shows no Krum settings
    at.selectbox(key="cfg.strategy").set_value("fedavg").run()
    assert "krum_byzantine" not in widget_keys(at)


def test_widget_bounds_and_help_come_from_the_config_fields(store):
    at = app().run()
    rounds = at.number_input(key="cfg.rounds")
    info = ExperimentConfig.model_fields["rounds"]
    assert (rounds.min, rounds.max) == (1, 10_000)
    assert rounds.help == info.description
    assert at.number_input(key="cfg.lr").help == ExperimentConfig.model_fields["lr"].description


def test_the_preview_follows_alpha_clients_and_shards(store):
    at = app().run()
    before = preview_heatmap(at)
    at.number_input(key="cfg.alpha").set_value(100.0).run()
    after = preview_heatmap(at)
    assert before["data"][0]["z"] != after["data"][0]["z"]
    # a large alpha is close to IID: every client holds (almost) every label
    assert at.metric[0].value.startswith(("9.", "10.0"))

    at.number_input(key="cfg.num_clients").set_value(25).run()
    z = np.array(preview_heatmap(at)["data"][0]["z"])
    assert z.shape == (25, 10)

    at.selectbox(key="cfg.partition").set_value("shards").run()
    at.number_input(key="cfg.shards_per_client").set_value(1).run()
    no_exceptions(at)
    z = np.array(preview_heatmap(at)["data"][0]["z"])
    assert ((z > 0).sum(1) <= 2).all()  # one shard of sorted labels touches at most two labels
    assert at.metric[0].value.startswith("1.")


def test_invalid_settings_show_the_engine_message_and_queue_nothing(store):
    at = app().run()
    at.number_input(key="cfg.clients_per_round").set_value(50).run()
    message = "clients_per_round=50 exceeds num_clients=10"
    assert any(message in e for e in errors(at)), texts(at)
    assert sum(message in e for e in errors(at)) == 2  # under its widget and above the Run button
    at.button(key="run_button").click().run()
    no_exceptions(at)
    assert store.list_runs() == []
    assert "Nothing was queued" in texts(at)


def test_a_split_the_data_cannot_make_is_refused_with_its_reason(store):
    at = app().run()
    at.number_input(key="cfg.num_clients").set_value(1000).run()  # 1,000 x 2 samples > digits' 1,438
    no_exceptions(at)
    assert any("min_samples_per_client" in e and "lower num_clients" in e for e in errors(at))
    at.button(key="run_button").click().run()
    assert store.list_runs() == []


def test_a_dataset_not_on_the_server_is_said_so_and_never_fetched_for_the_preview(store, server_settings):
    at = app().run()
    assert not any("data_dir" in str(k) or "download" in str(k) for k in at.session_state)  # the folder is not a form field
    at.selectbox(key="cfg.dataset").set_value("mnist").run()
    no_exceptions(at)
    assert "not on this server" in texts(at)
    assert any("MNIST is not on this server" in e for e in errors(at))  # and Run is refused, saying why
    at.button(key="run_button").click().run()
    assert store.list_runs() == []
    assert list(server_settings.data_dir.iterdir()) == []  # nothing was written to the data folder


def test_an_uploaded_file_is_stored_in_the_data_folder_and_previews_its_natural_split(store, server_settings):
    rows = ["user,x1,x2,label"] + [f"u{i % 3},{i},{i * i % 7},{'ab'[i % 2]}" for i in range(40)]
    at = app().run()
    at.selectbox(key="cfg.dataset").set_value("file").run()
    no_exceptions(at)
    assert all(t.key != "cfg.data_file" for t in at.text_input)  # no path to type in
    assert at.selectbox(key="cfg.data_file").disabled and at.selectbox(key="cfg.data_file").options == []
    at.get("file_uploader")[0].upload("mine.csv", ("\n".join(rows) + "\n").encode(), "text/csv").run()
    no_exceptions(at)
    (stored,) = (server_settings.data_dir / "uploads").glob("*.csv")  # under its content hash, in the data folder
    assert at.selectbox(key="cfg.data_file").value == str(stored)
    at.text_input(key="cfg.client_column").set_value("user").run()
    at.selectbox(key="cfg.partition").set_value("natural").run()
    no_exceptions(at)
    assert at.number_input(key="cfg.num_clients").value == 3  # the natural split takes its clients from the data
    at.number_input(key="cfg.num_clients").set_value(10).run()
    assert any("num_clients=10 does not match the data: dataset='file' has 3 natural clients" in e for e in errors(at))
    at.number_input(key="cfg.num_clients").set_value(3).run()
    no_exceptions(at)
    z = np.array(preview_heatmap(at)["data"][0]["z"])
    assert z.shape == (3, 2) and z.sum() == 32  # 3 users x labels a, b; 8 of the 40 rows are held out for testing
    assert "Ready:" in texts(at)


def test_synthetic_brings_its_natural_split_of_30_devices_and_the_preview_shows_it(store):
    at = app().run()
    at.selectbox(key="cfg.dataset").set_value("synthetic").run()
    no_exceptions(at)
    assert at.selectbox(key="cfg.partition").value == "natural"
    assert at.number_input(key="cfg.num_clients").value == 30
    assert at.selectbox(key="cfg.synthetic_sizes").value == "powerlaw"
    z = np.array(preview_heatmap(at)["data"][0]["z"])
    assert z.shape == (30, 10) and z.sum(1).max() > 5 * np.median(z.sum(1))  # one row per device, power-law sizes
    assert "Ready:" in texts(at) and not at.error
    at.selectbox(key="cfg.partition").set_value("iid").run()  # another split can still be chosen
    z = np.array(preview_heatmap(at)["data"][0]["z"])
    assert z.shape == (30, 10) and z.sum(1).max() - z.sum(1).min() <= 1
    at.selectbox(key="cfg.partition").set_value("natural").run()
    at.selectbox(key="cfg.dataset").set_value("digits").run()  # digits has no devices: the default split again
    no_exceptions(at)
    assert at.selectbox(key="cfg.partition").value == "dirichlet" and "Ready:" in texts(at)


def test_clients_that_come_and_go_have_their_own_section_and_bad_values_are_explained(store):
    at = app().run()
    assert any(m.value == "**Clients that come and go**" for m in at.markdown)
    fields = ("availability", "availability_model", "dropout", "stragglers", "straggler_policy", "round_deadline_s")
    assert set(fields) <= widget_keys(at)
    assert at.selectbox(key="cfg.straggler_policy").options == ["drop", "partial"]
    at.number_input(key="cfg.availability").set_value(0.0).run()
    message = "availability=0.0 is invalid: input should be greater than 0 (allowed: above 0, at most 1)"
    assert sum(message in e for e in errors(at)) == 2  # under its widget and above the Run button
    at.button(key="run_button").click().run()
    assert store.list_runs() == [] and "Nothing was queued" in texts(at)
    at.number_input(key="cfg.availability").set_value(0.5).run()
    at.number_input(key="cfg.stragglers").set_value(0.9).run()
    at.selectbox(key="cfg.straggler_policy").set_value("partial").run()
    at.number_input(key="cfg.round_deadline_s").set_value(30.0).run()
    no_exceptions(at)
    assert not at.error and "clients online 50% of rounds · 90% stragglers send partial work · deadline 30 s" in texts(at)


def test_leaf_data_not_on_the_server_says_so(store):
    at = app().run()
    at.selectbox(key="cfg.dataset").set_value("femnist").run()
    no_exceptions(at)
    assert "FEMNIST (LEAF) is not on this server" in texts(at)
    assert any("choose another dataset" in e for e in errors(at))  # Run is refused, saying why


def test_run_queues_the_run_and_opens_its_page(store):
    at = app().run()
    at.number_input(key="cfg.num_clients").set_value(4).run()
    at.number_input(key="cfg.rounds").set_value(2).run()
    at.selectbox(key="cfg.model").set_value("logistic").run()
    at.selectbox(key="cfg.executor").set_value("vectorized").run()
    at.button(key="run_button").click().run()
    no_exceptions(at)
    (run,) = store.list_runs()
    assert run.config.num_clients == 4 and run.config.rounds == 2 and run.source == "dashboard"
    assert at.query_params.get("run") == run.run_id
    assert shown(at.title[0].value) == run.name  # the Run page is open
    # the background runner trains it; the page only reads the store
    deadline = time.time() + 90
    while store.get_run(run.run_id).status not in ("done", "failed") and time.time() < deadline:
        time.sleep(0.5)
    assert store.get_run(run.run_id).status == "done", store.get_run(run.run_id).error
    at.run()
    assert "Round 2 of 2" in at.get("progress")[0].proto.text


def test_the_page_answers_while_a_run_trains_because_it_never_trains(store, monkeypatch):
    """With a run going, widget changes rerun the page while the run advances in its worker.

    The web process must never train: here any call of the round loop in this process fails,
    while the spawned worker (a fresh interpreter) trains normally. How fast the page answers
    is measured by benchmarks/dashboard.py, not asserted here."""
    from flcore.federation.simulation import Simulation

    def trained_in_the_web_process(*args, **kwargs):
        raise AssertionError("the web server process ran a training round")

    monkeypatch.setattr(Simulation, "step", trained_in_the_web_process)
    at = app().run()
    at.number_input(key="cfg.rounds").set_value(200).run()
    at.selectbox(key="cfg.model").set_value("logistic").run()
    at.selectbox(key="cfg.executor").set_value("vectorized").run()
    at.button(key="run_button").click().run()
    (run,) = store.list_runs()
    deadline = time.time() + 60
    while store.get_run(run.run_id).rounds_done < 1 and time.time() < deadline:
        time.sleep(0.2)
    assert store.get_run(run.run_id).status == "running"

    at.switch_page("app_pages/new_run.py").run()
    before = store.get_run(run.run_id).rounds_done
    for alpha in (0.3, 0.7, 1.5):
        at.number_input(key="cfg.alpha").set_value(alpha).run()
        no_exceptions(at)
        assert at.number_input(key="cfg.alpha").value == alpha
    deadline = time.time() + 60
    while store.get_run(run.run_id).rounds_done <= before and time.time() < deadline:
        time.sleep(0.2)
    info = store.get_run(run.run_id)
    assert info.status == "running" and info.rounds_done > before  # the worker kept training meanwhile
    store.request_cancel(run.run_id)


def test_reset_returns_to_the_defaults(store):
    at = app().run()
    at.number_input(key="cfg.num_clients").set_value(33).run()
    at.button[0].click().run()  # "Reset to defaults"
    assert at.number_input(key="cfg.num_clients").value == 10


@pytest.mark.parametrize("attack", ["sign_flip"])
def test_choosing_an_attack_starts_with_some_malicious_clients(store, attack):
    at = app().run()
    at.selectbox(key="cfg.attack").set_value(attack).run()
    assert at.number_input(key="cfg.attack_fraction").value == pytest.approx(0.2)
    assert "Ready:" in texts(at)


SEMICOLONS = "size;colour;label\n" + "".join(f"{i};{'red' if i % 3 else 'blue'};{'ab'[i % 2]}\n" for i in range(40))


def test_a_chosen_file_shows_how_it_was_read_under_the_preview(store, server_settings):
    at = app().run()
    at.selectbox(key="cfg.dataset").set_value("file").run()
    at.get("file_uploader")[0].upload("shop.csv", SEMICOLONS.encode(), "text/csv").run()
    no_exceptions(at)
    (notes,) = [shown(i.value) for i in at.info if "How the file was read" in shown(i.value)]
    assert "'shop.csv' is read as separated by semicolons" in notes
    assert "- Column 'colour' of 'shop.csv' holds words: one-hot encoded as 2 columns" in notes


def test_the_chosen_upload_can_be_deleted_and_the_question_names_it_and_its_runs(store, server_settings):
    from flcore.data import uploads

    stored = uploads.save(SEMICOLONS.encode(), "shop.csv", server_settings, "someone")
    store.create_run(ExperimentConfig.create(dataset="file", data_file=str(stored.path), model="logistic", num_clients=3))
    at = app().run()
    at.selectbox(key="cfg.dataset").set_value("file").run()
    assert at.selectbox(key="cfg.data_file").value == str(stored.path)  # the local user is an admin: everyone's files
    assert "Delete **shop.csv** from this server?" in texts(at)
    assert "1 stored run reads it: it keeps its results, but cannot be resumed without it." in texts(at)
    at.button(key="delete_upload").click().run()
    no_exceptions(at)
    assert not stored.path.exists() and uploads.listing(server_settings) == []
    assert at.selectbox(key="cfg.data_file").options == []


def test_a_long_run_is_warned_about_before_run_is_pressed(store):
    at = app().run()
    assert not at.warning
    at.number_input(key="cfg.rounds").set_value(2000).run()
    at.number_input(key="cfg.local_epochs").set_value(50).run()
    no_exceptions(at)
    (warning,) = [shown(w.value) for w in at.warning]
    assert warning.startswith("This run is long: about 39 minutes of one core by this server's estimate")
    assert store.list_runs() == []


def test_the_dropzone_shows_the_servers_upload_limit_once(store, server_settings):
    from flcore import settings

    settings.use(server_settings.with_changes(max_upload_mb=7))
    at = app().run()
    at.selectbox(key="cfg.dataset").set_value("file").run()
    (dropzone,) = at.get("file_uploader")
    assert dropzone.proto.max_upload_size_mb == 7  # Streamlit draws "Limit 7MB per file" under it
    assert "MB" not in dropzone.proto.label  # and the label does not say it again
