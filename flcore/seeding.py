"""Named random streams split from one root seed.

Every random choice of a run draws from a stream named by its purpose and indexed by round and
client, e.g. ``generator(seed, "shuffle", round, client_id)``. A round's randomness is then a
function of (seed, round) alone, so a resumed run reproduces the uninterrupted one exactly, and
no code touches the global numpy or torch RNG state (FedJAX `client_samplers.py` style).
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def _entropy(seed: int, stream: str, indices: tuple[int, ...]) -> list[int]:
    return [seed, zlib.crc32(stream.encode()), *indices]


def rng(seed: int, stream: str, *indices: int) -> np.random.Generator:
    """A numpy Generator for `stream` at `indices` (e.g. round, client)."""
    return np.random.default_rng(np.random.SeedSequence(_entropy(seed, stream, indices)))


def derive_seed(seed: int, stream: str, *indices: int) -> int:
    """A 63-bit integer seed for `stream` at `indices`, for torch generators."""
    state = np.random.SeedSequence(_entropy(seed, stream, indices)).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def torch_generator(seed: int, stream: str, *indices: int) -> torch.Generator:
    """A CPU torch.Generator for `stream` at `indices`."""
    return torch.Generator().manual_seed(derive_seed(seed, stream, *indices))
