"""Checkpoints: a ServerState as bytes and back, with the numerics (threads, CPU kernels, torch) of
the process that trained it, so a resumed run trains as the interrupted one did."""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import torch

    from flcore.strategies import ServerState


# Checkpoints -------------------------------------------------------------------------------
def numerics() -> dict:
    """What, besides the config and the seed, decides the last bits of a run's numbers in this
    process: torch's intra-op thread count (how reductions are split), the CPU kernels' instruction
    set ($ATEN_CPU_CAPABILITY) and torch's version."""
    import torch

    return {"threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": str(torch.__version__)}


def state_to_bytes(state: "ServerState") -> bytes:
    """A ServerState (params, round, strategy tensors, simulated clock) as `torch.save` bytes,
    with the `numerics` of the process that trained it, so a resume can train as it did."""
    import torch

    buffer = io.BytesIO()
    saved = {"params": state.params, "round": state.round, "extra": state.extra, "clock_s": state.clock_s, "numerics": numerics()}
    torch.save(saved, buffer)
    return buffer.getvalue()


def numerics_from_bytes(blob: bytes) -> dict | None:
    """The `numerics` a checkpoint was taken under (None for one from before they were kept)."""
    import torch

    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True).get("numerics")


def train_as_before(recorded: dict | None) -> None:
    """Make this process train as the one that wrote a checkpoint did: the same thread count
    (a worker's budget, the CLI's cores and a resumed run's machine may each differ), so a
    resumed run's numbers are identical to an uninterrupted run's. A different instruction set
    or torch cannot be changed in a running process; the run continues, equal to a tolerance,
    and the log says so."""
    import torch

    if not recorded:
        return
    if recorded.get("threads") and recorded["threads"] != torch.get_num_threads():
        torch.set_num_threads(int(recorded["threads"]))
    now = numerics()
    for key in ("cpu_capability", "torch"):
        if recorded.get(key) not in (None, now[key]):
            log.warning("resuming with %s %s where the run began with %s: the numbers match to rounding only", key, now[key], recorded[key])


def state_from_bytes(blob: bytes, device: "torch.device | str" = "cpu") -> "ServerState":
    """The ServerState saved by `state_to_bytes`, its tensors on `device`."""
    import torch

    from flcore.strategies import ServerState

    saved = torch.load(io.BytesIO(blob), map_location=device, weights_only=True)
    return ServerState(params=saved["params"], round=saved["round"], extra=saved["extra"], clock_s=saved.get("clock_s"))
