"""`flcore.ray_support.connect` with `ray.init` replaced: a Ray it starts for itself wants a token
from whoever connects (it listens on every interface), and an operator's own choice is kept.
(Runs on a real local Ray: tests/test_ray_runs.py.)"""

from __future__ import annotations

import os

import pytest

from flcore import ray_support

ray = pytest.importorskip("ray", reason="Ray is optional (requirements-ray.txt); requirements-dev.txt installs it")


@pytest.fixture
def init_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append((kwargs, os.environ.get("RAY_AUTH_MODE"))))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setitem(ray_support._private, "started", False)
    return calls


@pytest.mark.parametrize("where", [None, "local"])
def test_a_ray_of_our_own_wants_a_token_and_has_no_dashboard(init_calls, monkeypatch, where):
    if where is None:
        monkeypatch.delenv(ray_support.ADDRESS_ENV, raising=False)
    else:
        monkeypatch.setenv(ray_support.ADDRESS_ENV, where)
    ray_support.connect()
    ((kwargs, auth_mode),) = init_calls
    assert auth_mode == "token" and kwargs["include_dashboard"] is False and kwargs["address"] is None


def test_an_operators_own_ray_settings_are_kept(init_calls, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the operator's choice, on their own network
    monkeypatch.setenv(ray_support.ADDRESS_ENV, "local")
    ray_support.connect()
    monkeypatch.setenv(ray_support.ADDRESS_ENV, "ray-head:6379")  # a cluster: its own settings apply
    monkeypatch.delenv("RAY_AUTH_MODE")
    ray_support.connect()
    assert [mode for _, mode in init_calls] == ["disabled", None]
