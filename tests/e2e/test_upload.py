"""A table as it comes, uploaded in a real browser: read without hand cleaning, trained, and a bad
file refused by its own name and not kept.

The table is written here in the shape of the Palmer penguins file (semicolon-separated, text
columns for island and sex, a decimal comma nowhere, a few empty cells, the label in `species`);
the bad one is a CSV with a label column only. Screenshot: 11-upload.png.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from harness import DashboardServer, shoot, wait_for_text

pytestmark = pytest.mark.e2e


def penguins_like(path, rows: int = 150) -> None:
    rng = np.random.default_rng(0)
    species = rng.choice(["Adelie", "Chinstrap", "Gentoo"], rows)
    base = {"Adelie": (38.8, 18.3, 190.0), "Chinstrap": (48.8, 18.4, 196.0), "Gentoo": (47.5, 15.0, 217.0)}
    islands = {"Adelie": "Torgersen", "Chinstrap": "Dream", "Gentoo": "Biscoe"}
    lines = ["species;island;bill_length_mm;bill_depth_mm;flipper_length_mm;sex"]
    for i, s in enumerate(species):
        bill, depth, flipper = (v + rng.normal(0, 1.0) for v in base[s])
        sex = "" if i % 37 == 5 else rng.choice(["male", "female"])  # an empty cell now and then
        lines.append(f"{s};{islands[s]};{bill:.1f};{depth:.1f};{flipper:.0f};{sex}")
    path.write_text("\n".join(lines) + "\n")


def choose(page, label: str, option: str) -> None:
    page.locator('[data-testid="stSelectbox"]').filter(has=page.get_by_text(label, exact=True)).click()
    page.get_by_role("option", name=option).click()


def type_text(page, label: str, value: str) -> None:
    field = page.locator('[data-testid="stTextInput"]').filter(has=page.get_by_text(label, exact=True)).locator("input")
    field.fill(value)
    field.press("Enter")


def test_a_real_table_uploaded_in_the_browser_trains_and_a_bad_one_is_refused_by_its_name(tmp_path, browser, screenshots):
    table, bad = tmp_path / "penguins.csv", tmp_path / "labels only.csv"
    penguins_like(table)
    bad.write_text("label\n" + "\n".join("ab"[i % 2] for i in range(40)) + "\n")
    data = tmp_path / "data"
    env = {"FLCORE_MAX_WORKERS": "1", "FLCORE_DATA_DIR": str(data)}
    with DashboardServer(tmp_path / "runs.db", tmp_path / "server.log", env) as server:
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        try:
            page.goto(server.url + "/")
            wait_for_text(page, "Ready:")
            choose(page, "Dataset", "A file of your own")
            page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(table))
            type_text(page, "Label column", "species")
            wait_for_text(page, "How the file was read")  # the separator found, the words one-hot, the empty cells filled
            notes = page.locator('[data-testid="stAlert"]').filter(has_text="How the file was read").inner_text()
            assert "';'" in notes or "semicolon" in notes.lower(), notes
            wait_for_text(page, "Ready:")
            shoot(page, screenshots / "11-upload.png")
            page.locator(".st-key-run_button button").first.click()
            page.wait_for_url(re.compile(r"/run\?run=[0-9a-f]+"), timeout=30_000)
            wait_for_text(page, "Finished.", timeout_ms=150_000)
            assert "penguins.csv" in page.locator("body").inner_text()  # the upload is named as it was sent

            page.goto(server.url + "/")
            wait_for_text(page, "Ready:")
            choose(page, "Dataset", "A file of your own")
            page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(bad))
            wait_for_text(page, "labels only.csv")
            error = page.locator('[data-testid="stAlert"]').filter(has_text="labels only.csv").first.inner_text()
            assert "labels only.csv" in error and "Traceback" not in error, error
        finally:
            page.context.close()
    index = json.loads((data / "uploads" / "index.json").read_text())
    assert [entry["name"] for entry in index.values()] == ["penguins.csv"]  # the bad file was not kept
    assert len(list((data / "uploads").iterdir())) == 2  # the good file and the index
