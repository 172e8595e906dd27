"""How a file of one's own was read, on its run's page (New run's list: test_new_run.py), and a
run whose file was deleted saying so."""

from __future__ import annotations

from dashboard_helpers import no_exceptions, page, shown, texts

from flcore.data import uploads

RUN = "app_pages/run.py"
SEMICOLONS = "size;colour;label\n" + "".join(f"{i};{'red' if i % 3 else 'blue'};{'ab'[i % 2]}\n" for i in range(60))


def test_a_file_runs_page_shows_how_its_file_was_read_and_says_when_the_file_is_gone(store, server_settings):
    from flcore.config import ExperimentConfig

    stored = uploads.save(SEMICOLONS.encode(), "shop.csv", server_settings, "alice")
    config = ExperimentConfig.create(dataset="file", data_file=str(stored.path), model="logistic", num_clients=3, partition="iid")
    run_id = store.create_run(config)
    at = page(RUN, run=run_id)
    no_exceptions(at)
    (notes,) = [shown(i.value) for i in at.info if "How the file was read" in shown(i.value)]
    assert "'shop.csv' is read as separated by semicolons" in notes and "one-hot encoded as 2 columns" in notes

    uploads.delete(str(stored.path), server_settings)
    at = page(RUN, run=run_id)
    no_exceptions(at)
    assert "This run's data file is no longer on this server: the run keeps its results, but cannot be resumed." in texts(at)
