"""Engine benchmark: what a simulated round costs, next to what its arithmetic costs.

Runs flcore's executors directly on synthetic tensors of the real shapes (random inputs and
labels, no downloads), in one process:

  A  LR-MNIST: 1000 clients, Dirichlet(0.5) over 10 labels (~60 samples each), 784 features,
     logistic regression, 10 clients per round, 100 rounds, 1 epoch, batch 10, SGD lr 0.03
     (the job of FLUTE's published comparison with Flower).
  B  CNN-CIFAR: 100 IID clients of 500 samples of 3x32x32, the PyTorch CIFAR tutorial CNN,
     10 clients per round, 10 rounds, 1 epoch, batch 32, lr 0.05.
  C  scale: 10,000 and 1,000 clients sharing a 60,000-sample MNIST-shaped set, MLP (2NN),
     100 clients per round, 5 rounds: seconds per round and peak RSS, each client count in its
     own child process so that the two peaks are comparable.

  D  FEMNIST-like heavy tail: 2,000 clients of 784 features whose sizes follow a power law
     (lognormal, 10 to 1,000 samples: 100x), logistic regression, 100 clients per round,
     10 rounds, 1 epoch, batch 10.
  E  Chem97-like tabular: 31,022 rows of 5 features over 131 clients of heavy-tailed sizes
     (20 to about 1,400), the MLP (2NN), every client every round, 3 rounds, 2 epochs, batch 16.

For D and E (uneven clients) it times the vectorized executor on the uneven split and on an even
split of the same rows (each round's sampled rows dealt evenly over the same number of clients),
next to central training of those rows at the clients' batch and at clients-per-round x batch.
The targets: uneven within 2x of central training at the same batch, and within 1.5x of even.

For A and B it times the sequential and vectorized executors and two central trainings of the
same samples with one plain nn.Module and torch.optim.SGD: at the clients' batch size, and at
batch clients-per-round x batch, the floor a simulation can approach (the same arithmetic in
the fewest, largest steps). Every figure is the median of `--reps` repetitions (at least 3).
The last lines are `RESULT key=value ...`, one per workload, for scripts to read.

    python benchmarks/engine.py            # full, a few minutes on 2 cores
    python benchmarks/engine.py --quick    # fewer rounds, under a minute
    python benchmarks/engine.py --vmap     # also time the torch.func.vmap design on A
    python benchmarks/engine.py --ray      # C on the ray executor with 1 and 2 actors, next to vectorized
    python benchmarks/engine.py --ray-cluster   # ... with the 2 actors on 2 Ray nodes of this machine

`--ray` runs workload C (10,000 clients, 100 per round) through the `ray` executor with 1 and 2
actors on a local Ray (one CPU each) and prints seconds per round next to the local vectorized
executor at 1 thread and at the benchmark's threads, and the Ray overhead per round: the round's
wall time minus the slowest actor's own training time (sending the parameters and tasks,
scheduling, returning and reassembling the updates). The first round, which starts the actors
and ships them the 188 MB data set, is reported apart. `--ray-cluster` does the same with
2 actors on a simulated 2-node cluster (`ray.cluster_utils.Cluster`, one CPU per node), so the
data set and every round's traffic cross between two object stores as they would between machines.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flcore import seeding
from flcore.config import ExperimentConfig
from flcore.data.partition import partition
from flcore.models import build_model
from flcore.training import TrainingData
from flcore.training.local import ClientTask, LocalSettings, SequentialExecutor, flat_params
from flcore.training.vectorized import VectorizedExecutor

SEED = 0


@dataclass
class Workload:
    name: str
    model: str
    x: torch.Tensor
    y: torch.Tensor
    parts: list[torch.Tensor]
    per_round: int
    rounds: int
    settings: LocalSettings

    def sampled(self, round_: int) -> list[int]:
        rng = seeding.rng(SEED, "sampling", round_)
        return sorted(rng.choice(len(self.parts), size=self.per_round, replace=False).tolist())

    def fresh_model(self) -> torch.nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            return build_model(self.model, tuple(self.x.shape[1:]), 10)


def synthetic(num_samples: int, shape: tuple[int, ...], num_clients: int, split: str, alpha: float = 0.5):
    g = torch.Generator().manual_seed(SEED)
    x = torch.randn(num_samples, *shape, generator=g)
    y = torch.randint(0, 10, (num_samples,), generator=g)
    config = ExperimentConfig.create(num_clients=num_clients, partition=split, alpha=alpha, seed=SEED)
    parts = partition(y.numpy(), config, seeding.rng(SEED, "partition"))
    return x, y, [torch.from_numpy(p) for p in parts]


def workload_a(rounds: int) -> Workload:
    x, y, parts = synthetic(60_000, (1, 28, 28), 1000, "dirichlet", alpha=0.5)
    return Workload("A", "logistic", x, y, parts, 10, rounds, LocalSettings(1, 10, 0.03, 0.0, 0.0, 0.0))


def workload_b(rounds: int) -> Workload:
    x, y, parts = synthetic(50_000, (3, 32, 32), 100, "iid")
    return Workload("B", "cifar_cnn", x, y, parts, 10, rounds, LocalSettings(1, 32, 0.05, 0.0, 0.0, 0.0))


def heavy_tailed_sizes(total: int, clients: int, sigma: float, low: int, high: int) -> np.ndarray:
    """`clients` sizes summing to about `total`, lognormal(0, sigma) scaled, clipped to [low, high]."""
    raw = np.random.default_rng(SEED).lognormal(0, sigma, clients)
    return np.clip(raw / raw.sum() * total, low, high).astype(np.int64)


def uneven_workload(name, model, shape, sizes, per_round, rounds, settings) -> Workload:
    g = torch.Generator().manual_seed(SEED)
    n = int(sizes.sum())
    x, y = torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g)
    order = torch.randperm(n, generator=g)
    cuts = np.concatenate([[0], np.cumsum(sizes)])
    return Workload(name, model, x, y, [order[a:b] for a, b in zip(cuts, cuts[1:])], per_round, rounds, settings)


def workload_d(rounds: int) -> Workload:
    sizes = heavy_tailed_sizes(60_000, 2000, 1.5, 10, 1000)
    return uneven_workload("D", "logistic", (1, 28, 28), sizes, 100, rounds, LocalSettings(1, 10, 0.03, 0.0, 0.0, 0.0))


def workload_e(rounds: int) -> Workload:
    sizes = heavy_tailed_sizes(31_022, 131, 1.2, 20, 5000)
    return uneven_workload("E", "mlp", (5,), sizes, 131, rounds, LocalSettings(2, 16, 0.05, 0.0, 0.0, 0.0))


# The four ways of training a workload ------------------------------------------------------
def run_federated(wl: Workload, executor_cls, model: torch.nn.Module, even: bool = False) -> tuple[float, torch.Tensor]:
    """FedAvg rounds with one executor; returns (seconds, final parameters). `even`: each round's
    sampled rows are dealt evenly over the same number of clients (the uneven split's control)."""
    executor = executor_cls(model, wl.settings, 10, SEED)
    params = flat_params(model)
    data = TrainingData.holding(None, "cpu", wl.x, wl.y)
    start = time.perf_counter()
    for round_ in range(1, wl.rounds + 1):
        sampled = wl.sampled(round_)
        if even:
            rows = torch.cat([wl.parts[c] for c in sampled]).tensor_split(len(sampled))
            tasks = [ClientTask(c, r) for c, r in zip(sampled, rows)]
        else:
            tasks = [ClientTask(c, wl.parts[c]) for c in sampled]
        out = executor.train(params, tasks, data, round_)
        weights = out.num_samples / out.num_samples.sum()
        params = params + weights @ out.deltas
    return time.perf_counter() - start, params


def run_central(wl: Workload, model: torch.nn.Module, batch: int, channels_last: bool = False) -> float:
    """Plain PyTorch training of each round's samples, as one dataset, at `batch`."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=wl.settings.lr)
    g = torch.Generator().manual_seed(SEED)
    start = time.perf_counter()
    for round_ in range(1, wl.rounds + 1):
        idx = torch.cat([wl.parts[c] for c in wl.sampled(round_)])
        xs, ys = wl.x[idx], wl.y[idx]
        if channels_last:
            xs = xs.contiguous(memory_format=fmt)
        for b in torch.randperm(len(idx), generator=g).split(batch):
            loss = F.cross_entropy(model(xs[b]), ys[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - start


class VmapExecutor(VectorizedExecutor):
    """Ablation (--vmap): the vectorized executor with gradients from torch.func instead of the
    hand-written batched backward; same layout, same update."""

    def _train_chunk(self, net, global_params, tasks, x, y, round_, corr, starts=None, trainable=None):
        from torch.func import functional_call, grad, vmap

        if starts is not None or trainable is not None:
            raise NotImplementedError("the vmap ablation trains every client from the global model, with nothing frozen")

        s = self.settings
        pos, valid, weights, active = self._layout(tasks, round_)
        idx = torch.cat([t.indices for t in tasks])[torch.from_numpy(pos)]
        labels, w = y[idx], torch.from_numpy(weights)
        names = [n for n, _ in self.model.named_parameters()]
        shapes = [p.shape for p in self.model.parameters()]
        cuts = np.cumsum([0] + [math.prod(sh) for sh in shapes])

        def loss(ps, xb, yb, wb):
            return (F.cross_entropy(functional_call(self.model, ps, (xb,)), yb, reduction="none") * wb).sum()

        grad_fn = vmap(grad(loss))
        params = global_params.unsqueeze(0).repeat(len(tasks), 1)
        for step, a in enumerate(active):
            p = params[:a]
            ps = {n: p[:, cuts[i] : cuts[i + 1]].view(a, *shapes[i]) for i, n in enumerate(names)}
            grads = grad_fn(ps, x[idx[step, :a]], labels[step, :a], w[step, :a])
            p.sub_(torch.cat([grads[n].reshape(a, -1) for n in names], 1), alpha=s.lr)
        zeros = torch.zeros(len(tasks))
        return params - global_params, zeros, zeros


def interleaved_medians(methods: dict, reps: int) -> dict[str, float]:
    """Each method's median seconds over `reps` runs, interleaved so that a noisy neighbour hits
    every method alike."""
    times: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(reps):
        for k, fn in methods.items():
            times[k].append(fn())
    return {k: statistics.median(v) for k, v in times.items()}


def executor_difference(wl: Workload, rounds: int) -> float:
    """The largest parameter difference between the sequential and vectorized executors after
    `rounds` rounds: the two must agree, a benchmark of a wrong answer is worth nothing."""
    check = Workload(**{**wl.__dict__, "rounds": rounds})
    _, seq = run_federated(check, SequentialExecutor, wl.fresh_model())
    _, vec = run_federated(check, VectorizedExecutor, wl.fresh_model())
    return float((seq - vec).abs().max())


def bench(wl: Workload, reps: int, vmap: bool) -> dict:
    same, floor = wl.settings.batch_size, wl.per_round * wl.settings.batch_size
    methods = {
        "sequential_s": lambda: run_federated(wl, SequentialExecutor, wl.fresh_model())[0],
        "vectorized_s": lambda: run_federated(wl, VectorizedExecutor, wl.fresh_model())[0],
        "central_nchw_same_s": lambda: run_central(wl, wl.fresh_model(), same),
        "central_nchw_floor_s": lambda: run_central(wl, wl.fresh_model(), floor),
    }
    if wl.x.dim() == 4 and any(isinstance(m, torch.nn.Conv2d) for m in wl.fresh_model()):
        # The vectorized executor runs convolutions channels-last; give central training that too.
        methods["central_cl_same_s"] = lambda: run_central(wl, wl.fresh_model(), same, channels_last=True)
        methods["central_cl_floor_s"] = lambda: run_central(wl, wl.fresh_model(), floor, channels_last=True)
    if vmap:
        methods["vmap_s"] = lambda: run_federated(wl, VmapExecutor, wl.fresh_model())[0]
    out = interleaved_medians(methods, reps)
    # Central training's figure is its faster memory format (NCHW or channels-last).
    out["central_same_batch_s"] = min(v for k, v in out.items() if k.startswith("central") and k.endswith("same_s"))
    out["floor_s"] = min(v for k, v in out.items() if k.startswith("central") and k.endswith("floor_s"))
    out["max_param_diff"] = executor_difference(wl, min(2, wl.rounds))
    out["ratio_to_central"] = out["vectorized_s"] / out["central_same_batch_s"]
    out["ratio_to_floor"] = out["vectorized_s"] / out["floor_s"]
    out["speedup_over_sequential"] = out["sequential_s"] / out["vectorized_s"]
    return out


def bench_uneven(wl: Workload, reps: int) -> dict:
    same, floor = wl.settings.batch_size, wl.per_round * wl.settings.batch_size
    methods = {
        "uneven_s": lambda: run_federated(wl, VectorizedExecutor, wl.fresh_model())[0],
        "even_s": lambda: run_federated(wl, VectorizedExecutor, wl.fresh_model(), even=True)[0],
        "central_same_batch_s": lambda: run_central(wl, wl.fresh_model(), same),
        "floor_s": lambda: run_central(wl, wl.fresh_model(), floor),
    }
    out = interleaved_medians(methods, reps)
    out["max_param_diff"] = executor_difference(wl, 1)
    out["uneven_over_even"] = out["uneven_s"] / out["even_s"]
    out["ratio_to_central"] = out["uneven_s"] / out["central_same_batch_s"]
    out["ratio_to_floor"] = out["uneven_s"] / out["floor_s"]
    return out


# C: scale, one child process per client count -------------------------------------------------
def scale_child(num_clients: int, rounds: int) -> dict:
    x, y, parts = synthetic(60_000, (1, 28, 28), num_clients, "iid")
    model = build_model("mlp", (1, 28, 28), 10)
    settings = LocalSettings(1, 10, 0.05, 0.0, 0.0, 0.0)
    executor = VectorizedExecutor(model, settings, 10, SEED)
    params = flat_params(model)
    data = TrainingData.holding(None, "cpu", x, y)
    per_round = []
    for round_ in range(1, rounds + 1):
        rng = seeding.rng(SEED, "sampling", round_)
        sampled = sorted(rng.choice(num_clients, size=100, replace=False).tolist())
        start = time.perf_counter()
        out = executor.train(params, [ClientTask(c, parts[c]) for c in sampled], data, round_)
        params = params + (out.num_samples / out.num_samples.sum()) @ out.deltas
        per_round.append(time.perf_counter() - start)
    return {"clients": num_clients, "s_per_round": statistics.median(per_round), "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM where Linux has it: ru_maxrss carries the
    parent's resident size over fork and exec, which would make a child report its parent's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scale(rounds: int) -> list[dict]:
    rows = []
    for n in (10_000, 1_000):
        cmd = [sys.executable, __file__, "--scale-child", str(n), "--scale-rounds", str(rounds)]
        cmd += ["--threads", str(torch.get_num_threads())]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


# C on Ray ----------------------------------------------------------------------------------
def ray_scale(rounds: int, cluster: bool) -> list[dict]:
    """Workload C (10,000 clients) per round: local vectorized, then the ray executor."""
    import ray

    from flcore.training.ray_executor import RayExecutor

    x, y, parts = synthetic(60_000, (1, 28, 28), 10_000, "iid")
    model = build_model("mlp", (1, 28, 28), 10)
    settings = LocalSettings(1, 10, 0.05, 0.0, 0.0, 0.0)
    config = ExperimentConfig.create(
        model="mlp", local_epochs=1, batch_size=10, lr=0.05, seed=SEED, num_clients=10_000, clients_per_round=100
    )
    data = TrainingData.holding(None, "cpu", x, y)  # made here: actors get it from the object store
    start_params = flat_params(model)

    def tasks(round_: int) -> list[ClientTask]:
        rng = seeding.rng(SEED, "sampling", round_)
        return [ClientTask(c, parts[c]) for c in sorted(rng.choice(len(parts), size=100, replace=False).tolist())]

    def fedavg_rounds(executor, first: int, count: int, timing=None) -> tuple[list[float], torch.Tensor]:
        params, seconds = start_params, []
        for round_ in range(first, first + count):
            t0 = time.perf_counter()
            out = executor.train(params, tasks(round_), data, round_)
            seconds.append(time.perf_counter() - t0)
            if timing is not None:
                timing.append(dict(executor.last_round))
            params = params + (out.num_samples / out.num_samples.sum()) @ out.deltas
        return seconds, params

    rows = []
    threads = torch.get_num_threads()
    for t in sorted({1, threads}):
        torch.set_num_threads(t)
        seconds, local_params = fedavg_rounds(VectorizedExecutor(model, settings, 10, SEED), 1, rounds + 1)
        rows.append({"executor": f"vectorized, {t} thread{'s' if t > 1 else ''}", "s_per_round": statistics.median(seconds[1:])})
    torch.set_num_threads(threads)

    nodes = None
    if cluster:
        from ray.cluster_utils import Cluster

        nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        nodes.add_node(num_cpus=1)
        ray.init(address=nodes.address, include_dashboard=False, log_to_driver=False)
        counts = (2,)
    else:
        ray.init(num_cpus=max(2, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False)
        counts = (1, 2)
    try:
        for k in counts:
            executor, timing = RayExecutor(model, config, 10, num_actors=k), []
            try:
                seconds, params = fedavg_rounds(executor, 1, rounds + 1, timing)
                where = len({p["node"] for p in executor.placement})
            finally:
                executor.close()
            overhead = [tm["wall_s"] - max(tm["actor_s"]) for tm in timing[1:]]
            rows.append(
                {
                    "executor": f"ray, {k} actor{'s' if k > 1 else ''} on {where} node{'s' if where > 1 else ''}",
                    "s_per_round": statistics.median(seconds[1:]),
                    "actor_s": statistics.median(max(tm["actor_s"]) for tm in timing[1:]),
                    "overhead_s": statistics.median(overhead),
                    "first_round_s": seconds[0],
                    "max_param_diff": float((params - local_params).abs().max()),
                }
            )
    finally:
        ray.shutdown()
        if nodes is not None:
            nodes.shutdown()
    return rows


# Report ------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds: a check in under a minute")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per figure (median; at least 3)")
    ap.add_argument("--vmap", action="store_true", help="also time the torch.func.vmap design on A")
    ap.add_argument("--only", default="ABCDE", help="workloads to run, e.g. A or BDE")
    ap.add_argument("--ray", action="store_true", help="only workload C, on the ray executor with 1 and 2 actors (needs Ray)")
    ap.add_argument("--ray-cluster", action="store_true", help="only workload C, 2 actors on a simulated 2-node Ray cluster")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--scale-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--scale-rounds", type=int, default=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.scale_child:
        print(json.dumps(scale_child(args.scale_child, args.scale_rounds)))
        return
    reps = max(3, args.reps)
    rounds = {"A": 20, "B": 1, "C": 3, "D": 3, "E": 1} if args.quick else {"A": 100, "B": 10, "C": 5, "D": 10, "E": 3}
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads on {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}, median of {reps}{', quick' if args.quick else ''}"
    )

    if args.ray or args.ray_cluster:
        ray_rounds = rounds["C"]
        rows = ray_scale(ray_rounds, cluster=args.ray_cluster)
        print(f"\nC: mlp, 10,000 clients, 100/round, median of rounds 2-{ray_rounds + 1} (round 1 starts the actors)")
        for r in rows:
            line = f"  {r['executor']:<28} {r['s_per_round']:7.3f} s/round"
            if "overhead_s" in r:
                line += (
                    f"   slowest actor {r['actor_s']:.3f} s, Ray overhead {r['overhead_s']:.3f} s/round, "
                    f"first round {r['first_round_s']:.2f} s, max |ray - vectorized| {r['max_param_diff']:.1e}"
                )
            print(line)
        print()
        for r in rows:
            extra = "".join(f" {k}={r[k]:.4f}" for k in ("actor_s", "overhead_s", "first_round_s") if k in r)
            print(
                f"RESULT workload=C clients=10000 executor={r['executor'].replace(' ', '_').replace(',', '')} s_per_round={r['s_per_round']:.4f}{extra}"
            )
        return

    results = []
    for name, make in (("A", workload_a), ("B", workload_b)):
        if name not in args.only:
            continue
        wl = make(rounds[name])
        r = bench(wl, reps, args.vmap and name == "A")
        results.append((name, wl, r))
        floor_batch = wl.per_round * wl.settings.batch_size
        print(f"\n{name}: {wl.model}, {len(wl.parts)} clients, {wl.per_round}/round, {wl.rounds} rounds, batch {wl.settings.batch_size}")
        print(f"  sequential executor            {r['sequential_s']:8.3f} s")
        print(f"  vectorized executor            {r['vectorized_s']:8.3f} s   {r['speedup_over_sequential']:6.1f}x faster than sequential")
        if "vmap_s" in r:
            print(f"  vectorized via torch.func.vmap {r['vmap_s']:8.3f} s   (ablation)")
        for fmt, label in (("nchw", ""), ("cl", ", channels-last")):
            if f"central_{fmt}_same_s" in r:
                print(f"  central, batch {wl.settings.batch_size:<4}{label:<16}       {r[f'central_{fmt}_same_s']:8.3f} s")
                print(f"  central, batch {floor_batch:<4}{label:<16} floor {r[f'central_{fmt}_floor_s']:8.3f} s")
        print(
            f"  vectorized / central at batch {wl.settings.batch_size} = {r['ratio_to_central']:.2f}, "
            f"vectorized / floor = {r['ratio_to_floor']:.2f}"
        )
        print(f"  max |sequential - vectorized| parameter after 2 rounds: {r['max_param_diff']:.2e}")

    uneven = []
    for name, make in (("D", workload_d), ("E", workload_e)):
        if name not in args.only:
            continue
        wl = make(rounds[name])
        r = bench_uneven(wl, reps)
        uneven.append((name, r))
        sizes = [len(p) for p in wl.parts]
        print(
            f"\n{name}: {wl.model}, {len(wl.parts)} clients of {min(sizes)}-{max(sizes)} samples (median {int(np.median(sizes))}), "
            f"{wl.per_round}/round, {wl.rounds} rounds, {wl.settings.epochs} epoch(s), batch {wl.settings.batch_size}"
        )
        print(f"  vectorized, uneven clients     {r['uneven_s']:8.3f} s")
        print(f"  vectorized, same rows evenly   {r['even_s']:8.3f} s   uneven / even = {r['uneven_over_even']:.2f} (target 1.5)")
        print(
            f"  central, batch {wl.settings.batch_size:<4}               {r['central_same_batch_s']:8.3f} s   uneven / central = {r['ratio_to_central']:.2f} (target 2)"
        )
        print(
            f"  central, batch {wl.per_round * wl.settings.batch_size:<5}        floor {r['floor_s']:8.3f} s   uneven / floor = {r['ratio_to_floor']:.2f}"
        )
        print(f"  max |sequential - vectorized| parameter after 1 round: {r['max_param_diff']:.2e}")

    scale_rows = []
    if "C" in args.only:
        scale_rows = scale(rounds["C"])
        print(f"\nC: mlp, 100 clients/round, {rounds['C']} rounds, vectorized executor, one child process each")
        for row in scale_rows:
            print(f"  {row['clients']:>6} clients   {row['s_per_round']:7.3f} s/round   peak RSS {row['peak_rss_mb']:7.1f} MB")
        if len(scale_rows) == 2:
            print(f"  peak RSS 10,000 / 1,000 clients = {scale_rows[0]['peak_rss_mb'] / scale_rows[1]['peak_rss_mb']:.3f}")

    print()
    for name, _, r in results:
        keys = ("sequential_s", "vectorized_s", "central_same_batch_s", "floor_s", "ratio_to_central", "ratio_to_floor")
        extra = f" vmap_s={r['vmap_s']:.4f}" if "vmap_s" in r else ""
        print(f"RESULT workload={name} " + " ".join(f"{k}={r[k]:.4f}" for k in keys) + extra)
    for name, r in uneven:
        keys = ("uneven_s", "even_s", "central_same_batch_s", "floor_s", "uneven_over_even", "ratio_to_central", "ratio_to_floor")
        print(f"RESULT workload={name} " + " ".join(f"{k}={r[k]:.4f}" for k in keys))
    for row in scale_rows:
        print(f"RESULT workload=C clients={row['clients']} s_per_round={row['s_per_round']:.4f} peak_rss_mb={row['peak_rss_mb']:.1f}")


if __name__ == "__main__":
    main()
