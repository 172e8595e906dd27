"""Numbers do not drift: today's engine reproduces the CSVs an earlier release wrote.

`tests/fixtures/golden/` holds `rounds.csv` and `clients.csv` of several configs (every kind of
strategy, both executors, attacks, FedProx with momentum), written by the CLI at commit 35c72e9.
A refactoring of the engine must give the same numbers; the tolerance only absorbs the last bits
that another CPU's kernels may round differently.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from flcore.__main__ import main

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
CONFIGS = json.loads((GOLDEN / "configs.json").read_text())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_engine_reproduces_the_golden_csvs(name, tmp_path):
    args = ["run", "--no-store", "--quiet", "--out", str(tmp_path)]
    for field, value in CONFIGS[name].items():
        args += ["--" + field.replace("_", "-"), str(value)]
    assert main(args) == 0
    for table in ("rounds.csv", "clients.csv"):
        expected = pd.read_csv(GOLDEN / name / table)
        actual = pd.read_csv(tmp_path / table)
        assert list(actual.columns)[: len(expected.columns)] == list(expected.columns), table
        pd.testing.assert_frame_equal(actual[expected.columns], expected, check_exact=False, rtol=1e-4, atol=1e-6)
