"""Hostile values for every config field, through the CLI's `main`: never a traceback, and every
refusal exit status 2 with one sentence naming the field, without echoing a long value whole.

Each field gets huge and tiny numbers, negatives, NaN and infinities, a 10 KB string, wrong types
(a list, an object) and empty text, on the command line; and the same values of the wrong JSON
type in a --config file. The dp_* fields are tried with privacy on (they are read only then).
"""

from __future__ import annotations

import json

import pytest

from flcore.cli import main
from flcore.config import ExperimentConfig

BASE = ["run", "--num-clients", "2", "--rounds", "1", "--partition", "iid", "--model", "logistic", "--quiet", "--no-store"]
HOSTILE = ["1e308", "-1", "nan", "inf", "-inf", "x" * 10_000, "[]", "{}", "1e-300", "9" * 30, "", "0", "-0.0", "1_000"]
JSON_HOSTILE = [[1], {"a": 1}, None, True, 10**400, -(10**30), 1e-300, "x" * 10_000]
FIELDS = [name for name, info in ExperimentConfig.model_fields.items() if info.annotation is not bool]
LONGEST_ERROR = 1_000  # characters: a sentence, not an echo of the value


def _extra(name: str) -> list[str]:
    return ["--dp", "central"] if name.startswith("dp_") else []


def _check(code, err: str, name: str, value) -> None:
    assert "Traceback" not in err, err
    assert code in (0, 2), (name, str(value)[:40], code, err[-400:])
    if code == 2:
        message = err.strip().splitlines()[-1]
        assert message.startswith("error: ") and len(message) < LONGEST_ERROR, (name, message[:300])
        named = name in message or "--" + name.replace("_", "-") in message
        assert named or any(f in message for f in FIELDS), (name, message[:300])


@pytest.mark.parametrize("name", FIELDS)
def test_hostile_flag_values_are_refused_with_a_sentence(name, tmp_path, capsys):
    for value in HOSTILE:
        code = main([*BASE, *_extra(name), "--out", str(tmp_path / "out"), f"--{name.replace('_', '-')}={value}"])
        _check(code, capsys.readouterr().err, name, value)


@pytest.mark.parametrize("name", [*FIELDS, "error_feedback"])
def test_hostile_json_values_are_refused_with_a_sentence(name, tmp_path, capsys):
    for value in JSON_HOSTILE:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({name: value}))
        code = main([*BASE, *_extra(name), "--out", str(tmp_path / "out"), "--config", str(config)])
        _check(code, capsys.readouterr().err, name, value)


def test_a_tiny_noise_multiplier_is_refused_not_divided_by(capsys, tmp_path):
    assert main([*BASE, "--dp", "local", "--dp-noise-multiplier", "1e-300", "--out", str(tmp_path / "o")]) == 2
    assert "dp_noise_multiplier=1e-300 is too small to account for: give 0 (no noise) or at least 1e-06" in capsys.readouterr().err


def test_a_5_mb_argument_is_not_echoed(capsys):
    huge = "y" * 5_000_000
    assert main(["run", "--strategy", huge, "--no-store"]) == 2
    err = capsys.readouterr().err
    assert len(err) < LONGEST_ERROR and "… (5000002 characters)" in err
    assert main(["run", huge]) == 2
    err = capsys.readouterr().err
    assert len(err) < 5_000 and "… (5000000 characters)" in err
