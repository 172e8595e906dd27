"""The pure aggregation math, on small hand-computed numbers."""

import math

import pytest
import torch

from flcore.strategies.aggregate import (
    adagrad_moment,
    adam_moment,
    adaptive_step,
    coordinate_median,
    krum,
    krum_max_byzantine,
    krum_scores,
    krum_select,
    local_solver_norms,
    normalized_average,
    server_momentum_step,
    trim_count,
    trimmed_mean,
    weighted_mean,
    yogi_moment,
)


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_weighted_mean_hand_computed():
    assert torch.allclose(weighted_mean(t([[1, 2], [3, 4]]), t([1, 3])), t([2.5, 3.5]))


def test_coordinate_median_odd_and_even():
    assert torch.equal(coordinate_median(t([[1, 5], [3, 2], [2, 9]])), t([2, 5]))
    # even n: mean of the two middle values per coordinate
    assert torch.equal(coordinate_median(t([[1, 4], [3, 2], [2, 8], [10, 0]])), t([2.5, 3]))


def test_coordinate_median_ignores_a_far_outlier():
    rows = t([[1.0], [1.1], [0.9], [1e6]])
    assert coordinate_median(rows).item() == pytest.approx(1.05)


def test_trimmed_mean_drops_the_extremes_per_coordinate():
    rows = t([[1, -50], [100, 0], [3, 1], [2, 3], [4, 2]])
    # beta=0.2, n=5: drop 1 from each end -> mean(2,3,4)=3 and mean(0,1,2)=1
    assert torch.allclose(trimmed_mean(rows, 0.2), t([3, 1]))
    # beta=0.1: floor(0.5)=0 dropped -> the plain mean
    assert torch.allclose(trimmed_mean(rows, 0.1), rows.mean(0))
    # beta=0.4: drop 2 from each end -> the median
    assert torch.allclose(trimmed_mean(rows, 0.4), t([3, 1]))


def test_trimmed_mean_refuses_to_drop_everything():
    with pytest.raises(ValueError, match="beta=0.5"):
        trimmed_mean(t([[1], [2], [3], [4]]), 0.5)


def test_trim_count_is_not_fooled_by_float_noise():
    assert 0.29 * 100 < 29  # the float product floors to 28
    assert trim_count(100, 0.29) == 29
    assert trim_count(10, 0.1) == 1
    assert trim_count(9, 0.1) == 0


def test_krum_scores_hand_computed():
    # 1-D points 0, 1, 3, 10 with f=0: each sums squared distances to its n-f-2 = 2 nearest.
    rows = t([[0], [1], [3], [10]])
    assert torch.allclose(krum_scores(rows, 0), t([1 + 9, 1 + 4, 4 + 9, 49 + 81]))
    assert krum_select(rows, 0).tolist() == [1]
    assert krum_select(rows, 0, multi=2).tolist() == [1, 0]
    assert torch.equal(krum(rows, 0), t([1]))
    assert torch.equal(krum(rows, 0, multi=2), t([0.5]))


def test_krum_on_identical_updates_returns_that_update():
    u = t([0.5, -1.25, 3.0])
    rows = u.repeat(5, 1)
    assert torch.allclose(krum(rows, num_byzantine=1), u)
    assert torch.allclose(krum(rows, num_byzantine=1, multi=4), u)


def test_krum_never_selects_a_far_outlier():
    g = torch.Generator().manual_seed(0)
    honest = torch.randn(6, 20, generator=g) * 0.1 + 1.0
    rows = torch.cat([honest[:3], torch.full((1, 20), 100.0), honest[3:]])  # outlier at row 3
    for f in range(krum_max_byzantine(7) + 1):
        for multi in range(1, 7 - max(f, 1) + 1):  # up to n - f, and at most the 6 honest ones
            assert 3 not in krum_select(rows, f, multi).tolist()


def test_multi_krum_with_all_updates_and_no_attackers_is_the_mean():
    rows = torch.randn(5, 7, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(krum(rows, num_byzantine=0, multi=5), rows.mean(0))


def test_krum_requires_n_above_2f_plus_2():
    assert krum_max_byzantine(5) == 1 and krum_max_byzantine(6) == 1 and krum_max_byzantine(7) == 2
    assert krum_max_byzantine(2) < 0
    with pytest.raises(ValueError, match="n > 2f \\+ 2"):
        krum(torch.zeros(4, 2), num_byzantine=1)
    with pytest.raises(ValueError, match="multi"):
        krum(torch.zeros(4, 2), num_byzantine=0, multi=5)


def test_server_momentum_step_hand_computed():
    x, m = torch.zeros(2), torch.zeros(2)
    x, m = server_momentum_step(x, t([1, 2]), m, lr=1.0, momentum=0.5)
    x, m = server_momentum_step(x, t([3, -1]), m, lr=1.0, momentum=0.5)
    # m = 0.5 [1, 2] + [3, -1]; x = [1, 2] + m
    assert torch.equal(m, t([3.5, 0]))
    assert torch.equal(x, t([4.5, 2]))


# Hand-picked so the square roots are exact: beta1 = beta2 = 0.5, tau = 1, v starts at tau^2 = 1.
@pytest.mark.parametrize(
    "moment, delta, m, v, x",
    [
        # m = 0.5 delta; v = 0.5 + 0.5 delta^2 = [1, 25]; x = 0.12 m / (sqrt v + 1)
        (adam_moment, [1, -7], [0.5, -3.5], [1, 25], [0.03, -0.07]),
        # v = 1 - 0.5 delta^2 sign(1 - delta^2) = [1 (sign 0), 1 + 8]
        (yogi_moment, [1, 4], [0.5, 2], [1, 9], [0.03, 0.06]),
        # v = 1 + delta^2 = [25/16, 25/9]
        (adagrad_moment, [0.75, -4 / 3], [0.375, -2 / 3], [25 / 16, 25 / 9], [0.02, -0.03]),
    ],
)
def test_server_adaptive_step_hand_computed(moment, delta, m, v, x):
    new_x, new_m, new_v = adaptive_step(
        torch.zeros(2), t(delta), torch.zeros(2), torch.ones(2), second_moment=moment, lr=0.12, beta1=0.5, beta2=0.5, tau=1.0
    )
    assert torch.allclose(new_m, t(m))
    assert torch.allclose(new_v, t(v))
    assert torch.allclose(new_x, t(x))


def test_yogi_shrinks_v_when_the_update_is_small():
    # v=1 > delta^2=0.25: Yogi subtracts (1-beta2) delta^2, where Adam would decay towards 0.25
    assert yogi_moment(t([1]), t([0.5]), 0.5).item() == pytest.approx(1 - 0.125)
    assert adam_moment(t([1]), t([0.5]), 0.5).item() == pytest.approx(0.625)


def test_steps_do_not_change_their_inputs():
    x, d, m, v = t([1, 2]), t([0.5, -0.5]), t([0.1, 0.1]), t([0.2, 0.2])
    before = [a.clone() for a in (x, d, m, v)]
    adaptive_step(x, d, m, v, second_moment=yogi_moment, lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    server_momentum_step(x, d, m, lr=1.0, momentum=0.9)
    rows = t([[3, 1], [1, 2], [2, 0]])
    rows_before = rows.clone()
    coordinate_median(rows), trimmed_mean(rows, 0.34), krum(rows, 0)
    assert all(torch.equal(a, b) for a, b in zip((x, d, m, v), before))
    assert torch.equal(rows, rows_before)
    assert not math.isnan(float(coordinate_median(rows).sum()))


# FedNova ------------------------------------------------------------------------------------


def test_local_solver_norms_hand_computed():
    steps = t([1, 2, 3])
    assert local_solver_norms(steps, lr=0.1).tolist() == [1, 2, 3]  # plain SGD: one gradient per step
    # momentum 0.5: of 3 steps the first gradient counts 1 + 0.5 + 0.25, the second 1 + 0.5, the last 1
    assert torch.allclose(local_solver_norms(steps, lr=0.1, momentum=0.5), torch.tensor([1, 2.5, 4.25], dtype=torch.float64))
    # proximal SGD, lr * mu = 0.1: each earlier gradient shrinks by 0.9 per later step
    assert torch.allclose(local_solver_norms(steps, lr=0.1, prox_mu=1.0), torch.tensor([1, 1.9, 2.71], dtype=torch.float64))
    # both, 2 steps: buf = 1, total = 1; then buf = 0.5 * 1 + 1 - 0.1 * 1 = 1.4, total = 2.4
    both = local_solver_norms(t([2, 1]), lr=0.1, momentum=0.5, prox_mu=1.0)
    assert torch.allclose(both, torch.tensor([2.4, 1.0], dtype=torch.float64))
    # the recursion for both agrees with each closed form when the other term vanishes
    many = t([1, 4, 9, 30])
    recursion = local_solver_norms(many, lr=0.1, momentum=0.7, prox_mu=1e-12)
    assert torch.allclose(recursion, local_solver_norms(many, lr=0.1, momentum=0.7))
    assert torch.allclose(local_solver_norms(many, lr=0.1, momentum=1e-12, prox_mu=2.0), local_solver_norms(many, lr=0.1, prox_mu=2.0))


def test_normalized_average_hand_computed():
    # steps 2 and 6, equal weights: tau_eff = 4, update = 4 * (0.5 * [2, 4] / 2 + 0.5 * [3, 3] / 6) = [3, 5]
    u = t([[2, 4], [3, 3]])
    delta, tau_eff = normalized_average(u, t([1, 1]), torch.tensor([2.0, 6.0]))
    assert tau_eff == 4.0 and torch.allclose(delta, t([3, 5]))
    assert torch.allclose(weighted_mean(u, t([1, 1])), t([2.5, 3.5]))  # FedAvg lets the 6-step client pull further
    # equal norms: FedAvg's weighted mean, bit for bit
    g = torch.Generator().manual_seed(0)
    u, w = torch.randn(5, 7, generator=g), t([3, 1, 4, 1, 5])
    assert torch.equal(normalized_average(u, w, torch.full((5,), 7.0))[0], weighted_mean(u, w))
    # a client that took no step sent nothing and weighs nothing in the normalized sum
    delta, _ = normalized_average(t([[2, 4], [0, 0]]), t([1, 1]), torch.tensor([2.0, 0.0]))
    assert torch.allclose(delta, t([0.5, 1]))  # tau_eff = 1: 1 * 0.5 * [2, 4] / 2
