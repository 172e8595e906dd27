"""Every test runs with server settings of its own: a data folder in a temporary directory and
downloads off (nothing is fetched, nothing is written under the home directory)."""

from __future__ import annotations

import pytest

from flcore import settings
from flcore.settings import Settings


@pytest.fixture(autouse=True)
def server_settings(tmp_path_factory, monkeypatch):
    isolated = Settings(data_dir=tmp_path_factory.mktemp("data"), download=False)
    monkeypatch.setattr(settings, "_current", isolated)
    yield isolated
