"""A simulated clock: how long each client's work and upload take, and so how long a round is.

Each client is a device with a compute speed (training samples per second) and a link bandwidth
(bytes per second), drawn once from the seed. Both are log-normal: most devices sit near the
median and a heavy tail is several times slower, the skew that device and network traces of
real federations show (Lai et al. 2022, FedScale; Bonawitz et al. 2019). A client's compute
time in a round is the samples its local steps hold divided by its speed, its upload time the
bytes of its update divided by its bandwidth. A round lasts until the slowest client whose
update the server uses has uploaded; with a `round_deadline_s` the server stops waiting there,
so a round lasts the deadline whenever some sampled client has not reported by then. The scale
is fixed (`MEDIAN_SPEED`, `MEDIAN_BANDWIDTH`) so that a deadline means the same in every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from flcore import seeding

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig

MEDIAN_SPEED = 100.0  # training samples per second of the median device
SPEED_SIGMA = 1.0  # of log(speed): a twentieth of the devices are over 5x slower than the median
MEDIAN_BANDWIDTH = 1e6  # upload bytes per second of the median link (8 Mbit/s)
BANDWIDTH_SIGMA = 1.0


@dataclass(frozen=True)
class Devices:
    """Every client's compute speed and upload bandwidth; row c is client c."""

    speed: np.ndarray  # [num_clients] samples per second
    bandwidth: np.ndarray  # [num_clients] bytes per second


def devices(config: ExperimentConfig) -> Devices:
    """The clients' devices, a function of the seed alone (client c's values do not depend on
    how many clients there are)."""
    n = config.num_clients
    speed = seeding.rng(config.seed, "clock_speed").lognormal(np.log(MEDIAN_SPEED), SPEED_SIGMA, n)
    bandwidth = seeding.rng(config.seed, "clock_bandwidth").lognormal(np.log(MEDIAN_BANDWIDTH), BANDWIDTH_SIGMA, n)
    return Devices(speed, bandwidth)


def round_duration(finish_s: list[float], deadline_s: float | None, all_reported: bool) -> float:
    """Seconds a round lasts: until the last update the server uses arrived (`finish_s`, each
    client's compute plus upload time), or the deadline when some sampled client did not
    report by then (the server waited for it). 0 for a round in which nothing was awaited."""
    if deadline_s is not None and not all_reported:
        return float(deadline_s)
    return float(max(finish_s, default=0.0))


def describe(seconds: float) -> str:
    """Simulated seconds in words: '42.0 s', '12.5 min', '3.2 h', '2.1 days'."""
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"
