"""Shared fixtures.

Every test runs with server settings of its own: a data folder in a temporary directory and
downloads off (nothing is fetched, nothing is written under the home directory).

A local Ray for the tests that need one: started once per test module, shut down after it.
Ray takes a few seconds to start, so a module's Ray tests share one (`ray.init(num_cpus=2)`, the
CPUs of the CI machine); it is shut down when the module ends, so no Ray process outlives its
tests and the rest of the suite runs without one. Ray is part of the test install
(requirements-ray.txt), so these tests never skip: a missing Ray fails them.
"""

from __future__ import annotations

import pytest

from flcore import settings
from flcore.settings import Settings

RAY_CPUS = 2


@pytest.fixture(autouse=True)
def server_settings(tmp_path_factory, monkeypatch):
    isolated = Settings(data_dir=tmp_path_factory.mktemp("data"), download=False)
    monkeypatch.setattr(settings, "_current", isolated)
    yield isolated


@pytest.fixture(scope="module")
def local_ray():
    import ray

    from flcore.ray_support import NAMESPACE

    if ray.is_initialized():  # a test before this one left it up
        ray.shutdown()
    ray.init(num_cpus=RAY_CPUS, include_dashboard=False, log_to_driver=False, namespace=NAMESPACE)
    yield ray
    ray.shutdown()
