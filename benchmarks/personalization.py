"""Science benchmark: does every client get a better model of its own, and does q-FFL help the worst?

Compares, on non-IID splits, what each client gets from FedAvg's global model with what it gets
from a personalized method (its own model) and from q-FFL's global model, through flcore's public
API (an `ExperimentConfig` and `Simulation(config).run()`, what `python -m flcore run --no-store`
runs). Setting: the bundled `digits` data set (offline), the `mlp` model, 20 clients, 10 sampled
per round, 2 local epochs, batch 16, SGD lr 0.1 (the config's defaults), each client keeping 20%
of its samples as its own test data (`client_test_fraction` 0.2). Two splits:

  shards       pathological: every client holds 2 shards of sorted labels (shards_per_client=2)
  dirichlet    labels drawn per client from Dirichlet(0.1)

Methods (defaults of the config unless named):

  fedavg             FedAvg, the global model
  finetune           FedAvg+FT: the global model after finetune_steps=5 local steps
  fedper             FedPer, head_layers=1 (the last linear layer stays on the client)
  fedrep             FedRep, head_layers=1
  ditto-l0.1         Ditto, ditto_lambda=0.1 (the default)
  ditto-l1           Ditto, ditto_lambda=1
  qffl-q0            q-FFL q=0: the same step with every client weighted equally (the paper's baseline)
  qffl-q0.1 .. q5    q-FFL q in {0.1, 0.5, 1, 2, 5}, the global model
  qffl-q1-lr0.03/0.3 q-FFL q=1 with client lr 0.03 and 0.3 (q-FFL's step scales with 1/lr)

Each runs with `--seeds` seeds (the seed also draws the split and each client's test samples:
data_seed follows seed). Read from the final round's `RoundResult.metrics`: the mean of every
client's accuracy on its own test data and the mean of the worst 10% of clients (2 of 20), with
the method's own models (`personal_accuracy_*`) for the personalized methods and with the global
model (`client_accuracy_*`) for fedavg and q-FFL. Every personalized row also shows FedAvg's
global numbers on the same split for comparison.

    python benchmarks/personalization.py            # 50 rounds, seeds 0-2: a few minutes on 2 cores
    python benchmarks/personalization.py --quick    # 15 rounds, 1 seed, fewer methods: a smoke check
    python benchmarks/personalization.py --only ditto-l1 qffl-q2 --seeds 5

The last lines are `RESULT split=... method=... key=mean±std ...`, one per split and method
(std: the population standard deviation over seeds), then a markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from science import cpu_name, mean_std  # the science benchmark's: the same mean ± std and machine line

from flcore.config import ExperimentConfig
from flcore.federation.simulation import DivergedError, Simulation

SETTING = dict(
    dataset="digits", model="mlp", num_clients=20, clients_per_round=10, local_epochs=2, batch_size=16, lr=0.1,
    client_test_fraction=0.2, device="cpu",
)  # fmt: skip
SPLITS = {
    "shards": dict(partition="shards", shards_per_client=2),
    "dirichlet": dict(partition="dirichlet", alpha=0.1),
}
METHODS = {  # name: the fields that differ from FedAvg
    "fedavg": dict(),
    "finetune": dict(personalization="finetune", finetune_steps=5),
    "fedper": dict(personalization="fedper", head_layers=1),
    "fedrep": dict(personalization="fedrep", head_layers=1),
    "ditto-l0.1": dict(personalization="ditto", ditto_lambda=0.1),
    "ditto-l1": dict(personalization="ditto", ditto_lambda=1.0),
    "qffl-q0": dict(strategy="qffl", qffl_q=0.0),
    "qffl-q0.1": dict(strategy="qffl", qffl_q=0.1),
    "qffl-q0.5": dict(strategy="qffl", qffl_q=0.5),
    "qffl-q1": dict(strategy="qffl", qffl_q=1.0),
    "qffl-q2": dict(strategy="qffl", qffl_q=2.0),
    "qffl-q5": dict(strategy="qffl", qffl_q=5.0),
    "qffl-q1-lr0.03": dict(strategy="qffl", qffl_q=1.0, lr=0.03),
    "qffl-q1-lr0.3": dict(strategy="qffl", qffl_q=1.0, lr=0.3),
}
QUICK_METHODS = ["fedavg", "finetune", "fedper", "fedrep", "ditto-l0.1", "qffl-q1"]


@dataclass
class Outcome:
    """One run's final per-client accuracies: the served model's (own or global) and the global's."""

    mean: float
    worst10: float
    global_mean: float
    global_worst10: float
    test_accuracy: float  # the global model on the pooled test set
    worst_sizes: tuple[int, ...]  # the test samples of the worst 10% of clients (served model)
    seconds: float
    diverged_at: int | None = None


def personal(method: str) -> bool:
    return "personalization" in METHODS[method]


def run(split: str, method: str, seed: int, rounds: int) -> Outcome:
    config = ExperimentConfig.create(
        **{**SETTING, **SPLITS[split], **METHODS[method]}, rounds=rounds, eval_every=rounds, seed=seed,
        name=f"personalization {split} {method} seed {seed}",
    )  # fmt: skip
    started = time.perf_counter()
    last = None
    try:
        for result in Simulation(config).run():
            last = result
    except DivergedError:
        nan = float("nan")
        return Outcome(nan, nan, nan, nan, nan, (), time.perf_counter() - started, diverged_at=last.round + 1 if last else 1)
    m = last.metrics
    own = "personal_accuracy" if personal(method) else "client_accuracy"
    rows = [e for e in last.evaluations if e.test_samples]
    rows.sort(key=lambda e: e.personal_accuracy if personal(method) else e.test_accuracy)
    worst = tuple(e.test_samples for e in rows[: max(1, -(-len(rows) // 10))])
    return Outcome(
        m[f"{own}_mean"], m[f"{own}_worst10"], m["client_accuracy_mean"], m["client_accuracy_worst10"],
        last.test_accuracy, worst, time.perf_counter() - started,
    )  # fmt: skip


def pm(values: list[float]) -> str:
    m, s = mean_std(values)
    return f"{m:.3f} ± {s:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="15 rounds, 1 seed, fewer methods: a smoke check")
    ap.add_argument("--rounds", type=int, help="communication rounds (default 50; 15 with --quick)")
    ap.add_argument("--seeds", type=int, help="seeds per method (0, 1, ...; default 3, 1 with --quick)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: these runs are small, and 2 threads on busy cores wait on each other)",
    )
    ap.add_argument("--only", nargs="*", choices=list(METHODS), help="these methods only (fedavg always runs)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rounds = args.rounds or (15 if args.quick else 50)
    seeds = args.seeds or (1 if args.quick else 3)
    methods = args.only or (QUICK_METHODS if args.quick else list(METHODS))
    methods = ["fedavg"] + [m for m in methods if m != "fedavg"]
    started = time.perf_counter()
    print(
        f"{cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"digits, mlp, 20 clients, 10/round, E=2, B=16, lr 0.1, client_test_fraction 0.2, {rounds} rounds, seeds 0..{seeds - 1}\n")
    print(
        f"{'split':<10} {'method':<15} {'seed':>4} {'mean':>6} {'worst10':>7} {'global mean':>11} {'global worst10':>14} {'pooled':>6} {'s':>5}  worst clients' test samples"
    )
    out: dict[tuple[str, str], list[Outcome]] = {}
    for split in SPLITS:
        for method in methods:
            for seed in range(seeds):
                o = run(split, method, seed, rounds)
                out.setdefault((split, method), []).append(o)
                note = f"  diverged in round {o.diverged_at}" if o.diverged_at else ""
                print(
                    f"{split:<10} {method:<15} {seed:>4} {o.mean:>6.3f} {o.worst10:>7.3f} {o.global_mean:>11.3f} "
                    f"{o.global_worst10:>14.3f} {o.test_accuracy:>6.3f} {o.seconds:>5.1f}  {','.join(map(str, o.worst_sizes))}{note}",
                    flush=True,
                )

    print()
    for (split, method), os_ in out.items():
        base = out[(split, "fedavg")]
        fields = {
            "mean": mean_std([o.mean for o in os_]),
            "worst10": mean_std([o.worst10 for o in os_]),
            "fedavg_mean": mean_std([o.mean for o in base]),
            "fedavg_worst10": mean_std([o.worst10 for o in base]),
        }
        if personal(method):
            fields["own_global_mean"] = mean_std([o.global_mean for o in os_])
        print(
            f"RESULT split={split} method={method} rounds={rounds} seeds={len(os_)} model={'own' if personal(method) else 'global'} "
            + " ".join(f"{k}={m:.4f}±{s:.4f}" for k, (m, s) in fields.items())
            + f" diverged={sum(o.diverged_at is not None for o in os_)}"
        )

    print(f"\nFinal round ({rounds}), mean ± std over {seeds} seed(s) of each run's per-client accuracy on its own test data:\n")
    print("| split | method | model | per-client mean | worst 10% | FedAvg global: mean | FedAvg global: worst 10% |")
    print("|---|---|---|---|---|---|---|")
    for (split, method), os_ in out.items():
        base = out[(split, "fedavg")]
        print(
            f"| {split} | {method} | {'own' if personal(method) else 'global'} | {pm([o.mean for o in os_])} | "
            f"{pm([o.worst10 for o in os_])} | {pm([o.mean for o in base])} | {pm([o.worst10 for o in base])} |"
        )
    print(f"\nwall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
