"""Compressed updates: what a client really sends back, and how many bytes that takes.

`compression="topk"` keeps the k = ceil(compression_ratio * P) largest-magnitude coordinates of
each update (Aji and Heafield 2017; Lin et al. 2018): the message is their values (4 bytes each)
and their positions, packed with ceil(log2 P) bits each. `compression="quantize"` is stochastic
uniform quantization, QSGD-style (Alistarh et al. 2017), on the grid of Suresh et al. 2017
("Distributed mean estimation with limited communication"): 2^b evenly spaced levels between
the update's minimum and maximum, each coordinate rounded to one of its two neighbouring levels
at random with the probabilities that keep it unbiased (E[Q(u)] = u). The message is b packed
bits per coordinate plus the minimum and the step (4 bytes each). The draws come from
(seed, round, client), so runs stay deterministic and resumable.

`error_feedback` (Seide et al. 2014; Karimireddy et al. 2019, "Error feedback fixes SignSGD"):
a client adds what it could not send last time (its residual, u - C(u)) to its next update
before compressing. Those residuals are the documented memory exception: the server state
keeps one vector of the model's size per client that has taken part
(`ServerState.extra["error_feedback"]`), so a checkpoint holds them and a resumed run sends the
same messages. Without compression an update travels as P float32 values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from flcore import seeding
from flcore.registry import Registry

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig
    from flcore.strategies.base import ServerState

RESIDUALS = "error_feedback"  # the ServerState.extra key of the clients' residuals
VALUE_BYTES = 4  # a float32 value


# The compressors (pure tensor functions) ---------------------------------------------------
def topk_count(num_params: int, ratio: float) -> int:
    """k: the coordinates top-k keeps, ceil(ratio * P), at least one."""
    return max(1, min(num_params, math.ceil(ratio * num_params - 1e-9)))


def top_k(updates: torch.Tensor, k: int) -> torch.Tensor:
    """Each row with all but its k largest-magnitude coordinates set to zero."""
    keep = updates.abs().topk(k, dim=1).indices
    return torch.zeros_like(updates).scatter_(1, keep, updates.gather(1, keep))


def quantize(updates: torch.Tensor, bits: int, generators: list[torch.Generator]) -> torch.Tensor:
    """Each row rounded at random to one of 2^bits evenly spaced levels between its minimum and
    maximum, unbiased (row i draws from generators[i])."""
    levels = 2**bits - 1
    low = updates.min(1, keepdim=True).values
    step = (updates.max(1, keepdim=True).values - low) / levels
    step = torch.where(step > 0, step, torch.ones_like(step))  # a constant row is sent exactly as `low`
    position = (updates - low) / step  # in [0, levels]
    below = position.floor()
    draws = torch.stack([torch.rand(updates.shape[1], generator=g) for g in generators]).to(updates)
    level = (below + (draws < position - below).to(updates.dtype)).clamp_(0, levels)
    return low + level * step


def index_bits(num_params: int) -> int:
    """Bits that hold a position in 0..P-1."""
    return max(1, (num_params - 1).bit_length())


def dense_bytes(num_params: int, config: "ExperimentConfig") -> int:
    return num_params * VALUE_BYTES


def topk_bytes(num_params: int, config: "ExperimentConfig") -> int:
    """k values and k packed positions."""
    k = topk_count(num_params, config.compression_ratio)
    return k * VALUE_BYTES + math.ceil(k * index_bits(num_params) / 8)


def quantize_bytes(num_params: int, config: "ExperimentConfig") -> int:
    """P packed levels of b bits, the minimum and the step."""
    return math.ceil(num_params * config.compression_bits / 8) + 2 * VALUE_BYTES


@dataclass(frozen=True)
class Compressor:
    # (updates [n, P], config, round, client ids) -> what arrives [n, P]; None: sent as is
    compress: Callable[[torch.Tensor, "ExperimentConfig", int, list[int]], torch.Tensor] | None
    message_bytes: Callable[[int, "ExperimentConfig"], int]  # (P, config) -> bytes of one client's message


COMPRESSORS: Registry[Compressor] = Registry("compression")
COMPRESSORS.register("none", label="Full updates", description="Every client sends its whole update as 32-bit floats.")(
    Compressor(None, dense_bytes)
)
COMPRESSORS.register(
    "topk",
    label="Top-k sparsification",
    description="Each client sends only its largest coordinates (a fraction of them) and their positions.",
    params=("compression_ratio", "error_feedback"),
)(Compressor(lambda u, c, round_, ids: top_k(u, topk_count(u.shape[1], c.compression_ratio)), topk_bytes))
COMPRESSORS.register(
    "quantize",
    label="Stochastic quantization",
    description="Each client sends every coordinate in a few bits, rounded at random so the average stays right (QSGD-style).",
    params=("compression_bits", "error_feedback"),
)(
    Compressor(
        lambda u, c, round_, ids: quantize(u, c.compression_bits, [seeding.torch_generator(c.seed, "quantize", round_, i) for i in ids]),
        quantize_bytes,
    )
)


# In the round loop ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Sent:
    """One round's messages: the updates as they arrive, the bytes they took, the residuals."""

    deltas: torch.Tensor  # [n, P]
    bytes: int
    residuals: dict[int, torch.Tensor] | None  # every client's residual after this round; None without error feedback


class Channel:
    """The clients' uplink: compression, with error feedback when asked."""

    def __init__(self, config: "ExperimentConfig", num_params: int) -> None:
        self.config, self.num_params = config, num_params
        self.compressor = COMPRESSORS.get(config.compression)
        self.feedback = config.error_feedback and self.compressor.compress is not None

    def send(self, deltas: torch.Tensor, client_ids: list[int], round_: int, state: "ServerState") -> Sent:
        """What arrives from each client in `round_`, given the residuals held in `state`."""
        size = len(client_ids) * self.compressor.message_bytes(self.num_params, self.config)
        if self.compressor.compress is None:
            return Sent(deltas, size, None)
        held = state.extra.get(RESIDUALS, {}) if self.feedback else {}
        if held:
            deltas = deltas + torch.stack([held[c] if c in held else torch.zeros_like(deltas[0]) for c in client_ids])
        arrived = self.compressor.compress(deltas, self.config, round_, client_ids)
        if not self.feedback:
            return Sent(arrived, size, None)
        left = deltas - arrived
        return Sent(arrived, size, {**held, **{c: left[i].clone() for i, c in enumerate(client_ids)}})

    def keep(self, state: "ServerState", sent: Sent) -> "ServerState":
        """`state` with the clients' residuals after this round (unchanged without error feedback)."""
        if sent.residuals is None:
            return state
        return state.evolve(extra={**state.extra, RESIDUALS: sent.residuals})
