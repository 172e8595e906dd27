"""Pure aggregation math over stacked client updates (Flower's `aggregate.py` style).

The combining functions take a `[n, P]` tensor whose rows are client updates (flat parameter
vectors) and return one `[P]` vector; the server-optimizer steps of FedOpt take the parameters,
the round's pseudo-gradient and the moments, and return new tensors. No state, no config, no
in-place changes to their inputs: strategies call these.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def weighted_mean(updates: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Sum_i w_i u_i / sum_i w_i (McMahan et al. 2017, weights = sample counts)."""
    w = weights.to(device=updates.device, dtype=updates.dtype)
    return (w[:, None] * updates).sum(0) / w.sum()


# Robust combining rules -------------------------------------------------------------------


def coordinate_median(updates: torch.Tensor) -> torch.Tensor:
    """The median of each coordinate over clients (Yin et al. 2018, "Byzantine-robust
    distributed learning: towards optimal statistical rates").

    With an even number of clients this is the mean of the two middle values (torch.median
    would return the lower one, which biases the estimate downwards).
    """
    n = updates.shape[0]
    ordered = updates.sort(dim=0).values
    if n % 2:
        return ordered[n // 2].clone()
    return (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def trim_count(n: int, beta: float) -> int:
    """How many values trimmed_mean drops from each end: floor(beta * n).

    A tiny tolerance keeps float noise from flooring an exact product down (0.29 * 100).
    """
    return math.floor(beta * n + 1e-9)


def trimmed_mean(updates: torch.Tensor, beta: float) -> torch.Tensor:
    """Coordinate-wise beta-trimmed mean (Yin et al. 2018): per coordinate, drop the
    floor(beta * n) smallest and the floor(beta * n) largest values and average the rest."""
    n = updates.shape[0]
    k = trim_count(n, beta)
    if 2 * k >= n:
        raise ValueError(f"trimmed_mean with beta={beta} drops all {n} updates; need floor(beta * n) * 2 < n")
    if k == 0:
        return updates.mean(0)
    return updates.sort(dim=0).values[k : n - k].mean(0)


def krum_max_byzantine(n: int) -> int:
    """The largest f Krum tolerates among n updates: n > 2f + 2 (Blanchard et al. 2017).

    Negative when n < 3, where Krum cannot run at all.
    """
    return (n - 3) // 2


def krum_scores(updates: torch.Tensor, num_byzantine: int) -> torch.Tensor:
    """Krum score of each update (Blanchard et al. 2017, "Machine learning with adversaries:
    Byzantine tolerant gradient descent"): the sum of squared distances to its n - f - 2
    nearest other updates. Returns `[n]`."""
    n = updates.shape[0]
    f = num_byzantine
    if f < 0 or n <= 2 * f + 2:
        raise ValueError(f"Krum needs n > 2f + 2 updates; got n={n}, f={f}")
    sq = (updates * updates).sum(1)
    dist = (sq[:, None] + sq[None, :] - 2 * updates @ updates.T).clamp_min(0)
    dist.fill_diagonal_(float("inf"))  # a point is not its own neighbour
    return dist.sort(dim=1).values[:, : n - f - 2].sum(1)


def krum_select(updates: torch.Tensor, num_byzantine: int, multi: int = 1) -> torch.Tensor:
    """Row indices of the `multi` updates with the lowest Krum scores, best first
    (Blanchard et al. 2017; `multi` > 1 is their Multi-Krum). Ties go to the lower index."""
    n = updates.shape[0]
    if not 1 <= multi <= n:
        raise ValueError(f"Multi-Krum selects 1..{n} updates; got multi={multi}")
    scores = krum_scores(updates, num_byzantine)
    return torch.argsort(scores, stable=True)[:multi]


def krum(updates: torch.Tensor, num_byzantine: int, multi: int = 1) -> torch.Tensor:
    """Krum (multi=1) or Multi-Krum: the plain mean of the `multi` updates with the lowest
    Krum scores, assuming at most `num_byzantine` of the n updates are malicious
    (Blanchard et al. 2017)."""
    return updates[krum_select(updates, num_byzantine, multi)].mean(0)


# FedOpt server optimizers (Reddi et al. 2021, "Adaptive federated optimization", Alg. 2) ---
# The pseudo-gradient `delta` is the combined client update (local minus global), so the
# server moves *along* it: x + lr * step. FedAdagrad, FedAdam and FedYogi differ only in how
# they update the second moment v; each is a function here, passed to `adaptive_step`.


def server_momentum_step(
    params: torch.Tensor, delta: torch.Tensor, m: torch.Tensor, *, lr: float, momentum: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """FedAvgM (Hsu et al. 2019; Reddi et al. 2021): m = beta m + delta; x = x + lr m.
    Returns (params, m)."""
    m = momentum * m + delta
    return params + lr * m, m


def adagrad_moment(v: torch.Tensor, delta: torch.Tensor, beta2: float) -> torch.Tensor:
    """FedAdagrad's second moment: v + delta^2 (beta2 unused)."""
    return v + delta * delta


def adam_moment(v: torch.Tensor, delta: torch.Tensor, beta2: float) -> torch.Tensor:
    """FedAdam's second moment: beta2 v + (1 - beta2) delta^2."""
    return beta2 * v + (1 - beta2) * (delta * delta)


def yogi_moment(v: torch.Tensor, delta: torch.Tensor, beta2: float) -> torch.Tensor:
    """FedYogi's second moment: v - (1 - beta2) delta^2 sign(v - delta^2), which shrinks v slowly
    when updates get small, where Adam would decay it towards them."""
    d2 = delta * delta
    return v - (1 - beta2) * d2 * torch.sign(v - d2)


SecondMoment = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def adaptive_step(
    params: torch.Tensor,
    delta: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    *,
    second_moment: SecondMoment,
    lr: float,
    beta1: float,
    beta2: float,
    tau: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One FedAdagrad / FedAdam / FedYogi server step (Reddi et al. 2021, Algorithm 2):
    m = beta1 m + (1 - beta1) delta; v = second_moment(v, delta, beta2);
    x = x + lr m / (sqrt(v) + tau). No bias correction, as in the paper. Returns (params, m, v)."""
    m = beta1 * m + (1 - beta1) * delta
    v = second_moment(v, delta, beta2)
    return params + lr * m / (v.sqrt() + tau), m, v


# SCAFFOLD (Karimireddy et al. 2020, "SCAFFOLD: stochastic controlled averaging for federated
# learning", Algorithm 1 with option II for the client control variates) ---------------------


def scaffold_control_deltas(control: torch.Tensor, deltas: torch.Tensor, steps: torch.Tensor, lr: float) -> torch.Tensor:
    """Each client's change of its control variate, option II: dc_i = -c + (x - y_i) / (K_i lr)
    = -c - delta_i / (K_i lr), for K_i local steps at client learning rate lr. Returns [n, P].
    A client that took no step (no data) has K_i taken as 1 to avoid dividing by zero."""
    k = steps.to(device=control.device, dtype=control.dtype).clamp_min(1)
    return -control - deltas / (k[:, None] * lr)


def scaffold_server_control(control: torch.Tensor, control_deltas: torch.Tensor, num_clients: int) -> torch.Tensor:
    """The server's new control variate: c + (|S| / N) mean_i dc_i over the |S| sampled clients."""
    return control + (control_deltas.shape[0] / num_clients) * control_deltas.mean(0)


# FedNova (Wang et al. 2020, "Tackling the objective inconsistency problem in heterogeneous
# federated optimization") -----------------------------------------------------------------
# Client i's update after tau_i local steps is -lr * sum_k a_ik g_ik: a weighted sum of its
# gradients, with weights a_i set by its local solver. ||a_i||_1 counts how many steps' worth of
# gradient the update holds; FedAvg's plain mean lets a client with more steps pull further.


def local_solver_norms(steps: torch.Tensor, *, lr: float, momentum: float = 0.0, prox_mu: float = 0.0) -> torch.Tensor:
    """||a_i||_1 of each client's local solver, float64 [n] (Wang et al. 2020, Section 4):

    - plain SGD: tau_i;
    - SGD with momentum rho (PyTorch's buf = rho buf + g): [tau - rho (1 - rho^tau) / (1 - rho)] / (1 - rho),
      more than tau (each gradient keeps acting through the buffer: 5.61 for 3 steps at rho = 0.9);
    - proximal SGD (FedProx, alpha = lr * mu): [1 - (1 - alpha)^tau] / alpha;
    - both: the same sum, from running the solver's linear recursion with every gradient = 1.

    Weight decay is taken as part of each gradient (it is the local objective's), not the solver."""
    tau = steps.detach().to(dtype=torch.float64, device="cpu")
    rho, alpha = momentum, lr * prox_mu
    if not alpha:
        if not rho:
            return tau
        return (tau - rho * (1 - rho**tau) / (1 - rho)) / (1 - rho)
    if not rho:
        return (1 - (1 - alpha) ** tau) / alpha
    total, buf, norms = torch.zeros_like(tau), torch.zeros_like(tau), torch.zeros_like(tau)
    for k in range(1, int(tau.max()) + 1 if len(tau) else 1):  # total = -(w - w0) / lr, per client
        buf = rho * buf + 1 - alpha * total
        total = total + buf
        norms = torch.where(tau == k, total, norms)
    return norms


def normalized_average(
    updates: torch.Tensor, weights: torch.Tensor, norms: torch.Tensor, steps: torch.Tensor | None = None
) -> tuple[torch.Tensor, float]:
    """FedNova's combined update tau_eff * sum_i p_i u_i / ||a_i||_1, with p_i = w_i / sum w and
    tau_eff = sum_i p_i ||a_i||_1 (Wang et al. 2020, Eq. 7 with FedAvg's tau_eff), and tau_eff.
    Given the clients' step counts `steps`, tau_eff = sum_i p_i tau_i instead: what the authors'
    code (JYWa/FedNova, `FedNova.average`) uses when the local solver has a proximal term.

    Computed as FedAvg's weighted mean of the updates scaled by tau_eff / ||a_i||_1, so equal
    step counts of plain SGD (every scale exactly 1) give FedAvg's numbers bit for bit. A client
    whose norm is 0 (no step taken) sent no update and is scaled by 0."""
    w = weights.detach().to(dtype=torch.float64, device="cpu")
    a = norms.to(dtype=torch.float64, device="cpu")
    tau = a if steps is None else steps.detach().to(dtype=torch.float64, device="cpu")
    tau_eff = float((w * tau).sum() / w.sum())
    scale = torch.where(a > 0, tau_eff / a.clamp_min(1e-300), torch.zeros_like(a))
    scaled = updates * scale.to(device=updates.device, dtype=updates.dtype)[:, None]
    return weighted_mean(scaled, weights), tau_eff
