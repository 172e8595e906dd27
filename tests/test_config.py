"""ExperimentConfig: defaults, JSON round-trip, and one field-naming error per bad value."""

import json

import pytest
from annotated_types import Ge, Gt, Le, Lt
from pydantic import ValidationError

from flcore.config import ConfigError, ExperimentConfig, field_label, field_step, registries


def test_defaults_are_valid_and_frozen():
    c = ExperimentConfig.create()
    assert (c.dataset, c.partition, c.num_clients, c.model, c.strategy) == ("digits", "dirichlet", 10, "mlp", "fedavg")
    with pytest.raises(ValidationError, match="frozen"):
        c.num_clients = 3  # type: ignore[misc]


def test_json_round_trip_keeps_every_field(tmp_path):
    c = ExperimentConfig.create(name="x", partition="shards", shards_per_client=3, clients_per_round=4, server_lr=0.5)
    assert ExperimentConfig.from_json(c.to_json()) == c
    c.save(tmp_path / "c.json")
    assert ExperimentConfig.load(tmp_path / "c.json") == c
    assert json.loads(c.to_json())["shards_per_client"] == 3


def _bad_values(info):
    """Values just outside each numeric bound the field declares."""
    for m in info.metadata:
        if isinstance(m, Ge):
            yield m.ge - 1
        elif isinstance(m, Gt):
            yield m.gt if isinstance(m.gt, int) else m.gt - 1e-9
        elif isinstance(m, Le):
            yield m.le + 1
        elif isinstance(m, Lt):
            yield m.lt


NUMERIC = [(name, value) for name, info in ExperimentConfig.model_fields.items() for value in _bad_values(info)]


def test_every_numeric_field_has_bounds():
    bounded = {name for name, _ in NUMERIC}
    numeric = {n for n, i in ExperimentConfig.model_fields.items() if "int" in str(i.annotation) or "float" in str(i.annotation)}
    assert numeric - bounded == set()


@pytest.mark.parametrize(("field", "value"), NUMERIC)
def test_out_of_range_values_are_refused_naming_the_field(field, value):
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.create(**{field: value})
    assert str(err.value).startswith(f"{field}=")
    assert repr(value) in str(err.value)


@pytest.mark.parametrize("field", list(registries()))
def test_unknown_registry_names_list_the_choices(field):
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.create(**{field: "nope"})
    message = str(err.value)
    assert message.startswith(f"{field}='nope' is not a known") and "choose one of:" in message
    assert err.value.problems[0].field == field and message.startswith(err.value.problems[0].message)  # (field, sentence)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"num_clients": 10, "clients_per_round": 50}, "clients_per_round=50 exceeds num_clients=10"),
        ({"attack": "sign_flip"}, "attack_fraction=0 must be above 0 when attack='sign_flip'"),
        ({"attack_fraction": 0.2}, "attack_fraction=0.2 needs an attack"),
        ({"model": "cifar_cnn"}, "model='cifar_cnn' cannot read dataset='digits'"),
        ({"model": "char_lstm"}, "model='char_lstm' cannot read dataset='digits': it reads sequences of character ids"),
        ({"dataset": "shakespeare"}, "model='mlp' cannot read dataset='shakespeare': it reads real-valued inputs"),
        (
            {"partition": "natural"},
            "partition='natural' needs data that says which client each sample comes from, and dataset='digits' does not",
        ),
        ({"dataset": "file"}, "dataset='file' needs data_file"),
        ({"emnist_split": "letters"}, "emnist_split='letters' is invalid"),
        ({"executor": "gpu"}, "executor='gpu' is not a known executor; choose one of:"),
        ({"device": "tpu"}, "device='tpu' is invalid"),
        ({"num_clients": "ten"}, "num_clients='ten' is invalid"),
        ({"colour": 1}, "colour is not a setting"),
        ({"availability": 1.5}, "availability=1.5 is invalid: input should be less than or equal to 1 (allowed: above 0, at most 1)"),
        ({"availability": 0}, "availability=0 is invalid: input should be greater than 0 (allowed: above 0, at most 1)"),
        ({"dropout": 1.0}, "dropout=1.0 is invalid: input should be less than 1 (allowed: at least 0, below 1)"),
        ({"stragglers": -0.1}, "stragglers=-0.1 is invalid: input should be greater than or equal to 0 (allowed: at least 0, at most 1)"),
        ({"round_deadline_s": 0}, "round_deadline_s=0 is invalid: input should be greater than 0"),
        ({"availability_model": "sometimes"}, "availability_model='sometimes' is invalid: input should be 'uniform' or 'heterogeneous'"),
        ({"straggler_policy": "wait"}, "straggler_policy='wait' is invalid: input should be 'drop' or 'partial'"),
    ],
)
def test_cross_field_and_type_problems(values, expected):
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.create(**values)
    assert expected in str(err.value)


def test_several_problems_are_all_reported():
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.create(lr=-1, rounds=0)
    assert {p.field for p in err.value.problems} == {"lr", "rounds"}
    assert all(p.message.startswith(f"{p.field}=") for p in err.value.problems)


def test_clients_per_round_count_or_fraction():
    assert ExperimentConfig.create(num_clients=20, client_fraction=0.25).clients_per_round_resolved == 5
    assert ExperimentConfig.create(num_clients=20, clients_per_round=7).clients_per_round_resolved == 7
    assert ExperimentConfig.create(num_clients=3, client_fraction=0.01).clients_per_round_resolved == 1


def test_from_json_refuses_non_objects():
    with pytest.raises(ConfigError, match="not valid JSON"):
        ExperimentConfig.from_json("{")
    with pytest.raises(ConfigError, match="JSON object"):
        ExperimentConfig.from_json("[1, 2]")


@pytest.mark.parametrize("control", ["\u202e", "\u202a", "\u202d", "\u2066", "\u2069", "\u200e", "\u200f"])
def test_a_run_name_may_not_reorder_how_it_reads(control):
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.create(name=f"report{control}exe.pdf")
    (problem,) = err.value.problems
    assert problem.field == "name" and f"U+{ord(control):04X}" in problem.message and control not in problem.message
    assert ExperimentConfig.create(name="résumé · 名前 ✓").name == "résumé · 名前 ✓"  # any other text is a name
    stored = ExperimentConfig.from_json(f'{{"name": "report{control}exe.pdf"}}', stored=True)  # a run stored before still reads
    assert stored.name == "reportexe.pdf"


def test_every_field_the_form_shows_has_a_label_on_the_field():
    """The New run form names each widget by the field's `label` (flcore.config.field_label): a
    field added to the form without one fails here instead of showing its bare name."""
    from dashboard import form

    shown = form.placed_fields() | set(form.leftover_fields())
    extras = {name: ExperimentConfig.model_fields[name].json_schema_extra for name in shown}
    assert sorted(name for name, extra in extras.items() if not (isinstance(extra, dict) and extra.get("label"))) == []


def test_labels_and_steps_are_read_from_the_field():
    assert field_label("lr") == "Client learning rate" and field_step("lr") == 0.01
    assert field_label("dp_delta") == "Delta" and field_step("dp_delta") == 1e-6
    assert field_step("rounds") is None  # an int steps by 1
    assert field_label("some_new_field") == "Some new field" and field_step("some_new_field") is None
    stepped = [name for name in ExperimentConfig.model_fields if field_step(name) is not None]
    assert all("float" in str(ExperimentConfig.model_fields[name].annotation) for name in stepped)  # the form steps floats only
