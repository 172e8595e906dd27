"""FedAvg (McMahan et al. 2017): the sample-weighted mean of client updates.

x_{t+1} = x_t + server_lr * sum_k n_k (y_k - x_t) / sum_k n_k. With server_lr = 1 this is the
average of the client models. It is exactly the base `Strategy`; the other strategies override
the parts where they differ from it.
"""

from __future__ import annotations

from flcore.strategies.base import Strategy, register


@register(
    "fedavg",
    label="FedAvg",
    description="Average of client models weighted by their number of samples (McMahan et al. 2017).",
    params=("server_lr",),
)
class FedAvg(Strategy):
    """FedAvg: nothing to override."""
