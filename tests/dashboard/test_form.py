"""The form builder reads widget kinds, bounds and placement from the config fields."""

from __future__ import annotations

from typing import Literal

from dashboard import form
from flcore.config import ExperimentConfig

FIELDS = ExperimentConfig.model_fields


def test_bounds_come_from_the_field_constraints():
    assert form.bounds(FIELDS["rounds"]) == (1, 10_000)
    assert form.bounds(FIELDS["alpha"]) == (0, 1000)  # gt=0: the engine refuses 0 with its own sentence
    assert form.bounds(FIELDS["momentum"]) == (0, 1)  # lt=1, likewise
    assert form.bounds(FIELDS["krum_byzantine"]) == (0, None)
    assert form.bounds(FIELDS["name"]) == (None, None)


def test_field_kinds():
    assert form._kind(FIELDS["clients_per_round"].annotation) == (int, True, ())
    assert form._kind(FIELDS["server_lr"].annotation) == (float, True, ())
    assert form._kind(FIELDS["device"].annotation) == (str, False, ("auto", "cpu", "cuda"))
    assert form._kind(Literal["a", "b"] | None) == (str, True, ("a", "b"))
    assert form._kind(bool) == (bool, False, ())


def test_every_field_has_a_place_in_the_form():
    placed = form.placed_fields() | set(form.leftover_fields())
    assert placed == set(FIELDS)
    # leftovers are exactly the fields no section or registry entry claims
    assert not set(form.leftover_fields()) & form.placed_fields()
