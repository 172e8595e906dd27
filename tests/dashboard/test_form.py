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


def test_every_name_the_form_places_is_a_config_field():
    # A section, ADVANCED or a registry entry's params naming a field the config does not have
    # (a typo, a setting renamed in the engine) would place a widget for nothing.
    assert form.placed_fields() <= set(FIELDS), form.placed_fields() - set(FIELDS)


def test_a_field_that_nothing_places_is_left_over_for_advanced(monkeypatch):
    """A field no section places and no registry entry claims still gets a widget, under
    Advanced: take `rounds` out of its section and it joins the fields left over."""
    before = form.leftover_fields()
    assert "rounds" not in before
    sections = tuple((title, choice, tuple(f for f in fields if f != "rounds")) for title, choice, fields in form.SECTIONS)
    monkeypatch.setattr(form, "SECTIONS", sections)
    assert form.leftover_fields() == [f for f in FIELDS if f in {*before, "rounds"}]  # in the config's order
