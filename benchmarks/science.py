"""Science benchmark: does partial work with a proximal term converge more stably with stragglers?

Reproduces the straggler experiment of the FedProx paper (Li et al. 2020, "Federated optimization
in heterogeneous networks") with flcore's own engine through its public API (an `ExperimentConfig`
and `Simulation(config).run()`, what `python -m flcore run --no-store` runs): Synthetic(1,1)
split by its 30 devices (power-law sizes), multinomial logistic regression, 10
devices per round, E=20 local epochs, batch 10, SGD lr 0.01, and 90% of the sampled devices
stragglers in every round. Four methods:

  fedavg-drop      FedAvg; the server does not wait for stragglers (straggler_policy=drop)
  fedprox-mu0      FedProx mu=0: stragglers send their partial work (straggler_policy=partial)
  fedprox-mu1      FedProx mu=1, partial work
  fednova          FedNova (Wang et al. 2020), partial work

Each runs with `--seeds` seeds (client sampling, stragglers, their amount of work, model init);
the data set is the same in every run (data_seed 0), as in the paper. The paper's training loss
is the global model's loss on all devices' training samples, computed here after every round
from the state each round carries. Printed per method: the final training loss and test
accuracy, and two measures of stable convergence: the standard deviation of the training loss
over the last quarter of the rounds, and the number of rounds in which the training loss rose.

    python benchmarks/science.py            # 200 rounds (as in the paper), 3 seeds: a few minutes on 2 cores
    python benchmarks/science.py --quick    # 30 rounds, a smoke check in well under a minute

The last lines are `RESULT method=... key=mean±std ...`, one per method, for scripts to read.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flcore.config import ExperimentConfig
from flcore.federation.simulation import DivergedError, Simulation
from flcore.training import evaluate

SETTING = dict(
    dataset="synthetic", synthetic_alpha=1.0, synthetic_beta=1.0, partition="natural", model="logistic",
    clients_per_round=10, local_epochs=20, batch_size=10, lr=0.01, stragglers=0.9, data_seed=0, device="cpu",
)  # fmt: skip
METHODS = {  # name: the fields that differ
    "fedavg-drop": dict(strategy="fedavg", straggler_policy="drop", prox_mu=0.0),
    "fedprox-mu0": dict(strategy="fedavg", straggler_policy="partial", prox_mu=0.0),
    "fedprox-mu1": dict(strategy="fedavg", straggler_policy="partial", prox_mu=1.0),
    "fednova": dict(strategy="fednova", straggler_policy="partial", prox_mu=0.0),
}


@dataclass
class Trace:
    """One run: the training loss and test accuracy after each round, and the seconds it took."""

    train_loss: list[float]
    test_accuracy: list[float]
    seconds: float
    diverged_at: int | None = None

    def final_loss(self) -> float:
        return math.inf if self.diverged_at else self.train_loss[-1]

    def final_accuracy(self) -> float:
        return math.nan if self.diverged_at else self.test_accuracy[-1]

    def tail_std(self) -> float:
        """Standard deviation of the training loss over the last quarter of the rounds."""
        tail = self.train_loss[-max(2, len(self.train_loss) // 4) :]
        return math.inf if self.diverged_at else statistics.pstdev(tail)

    def rises(self) -> int:
        """Rounds in which the training loss went up."""
        return sum(b > a for a, b in zip(self.train_loss, self.train_loss[1:]))


def run(method: str, seed: int, rounds: int) -> Trace:
    config = ExperimentConfig.create(**SETTING, **METHODS[method], rounds=rounds, seed=seed, name=f"science {method} seed {seed}")
    started = time.perf_counter()
    sim = Simulation(config)
    x, y = sim.data.tensors()
    loss, accuracy = [], []
    try:
        for result in sim.run():
            loss.append(evaluate(sim.model, result.state.params, x, y)[0])
            accuracy.append(result.test_accuracy)
    except DivergedError:
        return Trace(loss, accuracy, time.perf_counter() - started, diverged_at=len(loss) + 1)
    return Trace(loss, accuracy, time.perf_counter() - started)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="30 rounds: a smoke check in well under a minute")
    ap.add_argument("--rounds", type=int, help="communication rounds (default 200, as in the paper; 30 with --quick)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per method (0, 1, ...)")
    args = ap.parse_args()
    rounds = args.rounds or (30 if args.quick else 200)
    print(
        f"{cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"Synthetic(1,1), natural split (30 devices), logistic regression, 10 devices/round, E=20, B=10, lr 0.01, "
        f"90% stragglers, {rounds} rounds, seeds 0..{args.seeds - 1}\n"
    )
    print(f"{'method':<13} {'seed':>4} {'train loss':>10} {'test acc':>9} {'tail std':>9} {'rises':>6} {'seconds':>8}")
    traces: dict[str, list[Trace]] = {}
    for method in METHODS:
        for seed in range(args.seeds):
            t = run(method, seed, rounds)
            traces.setdefault(method, []).append(t)
            note = f"  diverged in round {t.diverged_at}" if t.diverged_at else ""
            print(
                f"{method:<13} {seed:>4} {t.final_loss():>10.4f} {t.final_accuracy():>9.4f} {t.tail_std():>9.4f} "
                f"{t.rises():>6d} {t.seconds:>8.1f}{note}",
                flush=True,
            )

    print(f"\nTraining loss every {max(1, rounds // 10)} rounds (mean over seeds):")
    marks = list(range(max(1, rounds // 10), rounds + 1, max(1, rounds // 10)))
    print(f"{'method':<13} " + " ".join(f"{r:>6d}" for r in marks))
    for method, ts in traces.items():
        curve = [statistics.fmean(t.train_loss[r - 1] if len(t.train_loss) >= r else math.inf for t in ts) for r in marks]
        print(f"{method:<13} " + " ".join(f"{v:>6.3f}" for v in curve))

    print()
    for method, ts in traces.items():
        fields = {
            "train_loss": mean_std([t.final_loss() for t in ts]),
            "test_accuracy": mean_std([t.final_accuracy() for t in ts]),
            "tail_std": mean_std([t.tail_std() for t in ts]),
            "rises": mean_std([float(t.rises()) for t in ts]),
        }
        diverged = sum(t.diverged_at is not None for t in ts)
        print(
            f"RESULT method={method} rounds={rounds} seeds={len(ts)} "
            + " ".join(f"{k}={m:.4f}±{s:.4f}" for k, (m, s) in fields.items())
            + f" diverged={diverged}"
        )


if __name__ == "__main__":
    main()
