"""The registered strategies: registry entries, one round against hand-computed numbers or an
independent reference, explicit (never mutated) state, and config problems naming their field."""

import math
import types

import pytest
import torch

from flcore.config import ConfigError, ExperimentConfig
from flcore.strategies import STRATEGIES, ClientUpdates, build_strategy
from flcore.strategies.trimmed_mean import TrimmedMean

ORDER = ["fedavg", "fedavgm", "fedadam", "fedyogi", "fedadagrad", "scaffold", "median", "trimmed_mean", "krum", "multikrum"]


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def updates(deltas, samples=None, steps=None, ids=None):
    deltas = t(deltas)
    n = deltas.shape[0]
    return ClientUpdates(
        client_ids=list(range(n)) if ids is None else ids,
        deltas=deltas,
        num_samples=t([1.0] * n if samples is None else samples),
        num_steps=t([1.0] * n if steps is None else steps),
        start_loss=t([0.5 + 0.25 * i for i in range(n)]),  # q-FFL reads it; the others must not care
    )


def make(strategy, **values):
    return build_strategy(ExperimentConfig.create(strategy=strategy, **values))


def snapshot(value):
    """A deep copy of the tensors in a state, to check later that nothing changed in place."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    return value


def same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


# Registry -----------------------------------------------------------------------------------


def test_registered_in_dashboard_order_with_label_description_and_real_fields():
    assert STRATEGIES.names()[: len(ORDER)] == ORDER  # a new strategy comes after these
    fields = set(ExperimentConfig.model_fields)
    for e in STRATEGIES.entries():
        assert e.label and e.description
        assert set(e.params) <= fields, e.name
        assert e.obj.name == e.name


def test_params_name_what_each_strategy_reads():
    p = {e.name: e.params for e in STRATEGIES.entries()}
    assert "server_momentum" in p["fedavgm"]
    assert {"beta1", "beta2", "tau"} <= set(p["fedadam"]) and {"beta1", "beta2", "tau"} <= set(p["fedyogi"])
    assert "trim_beta" in p["trimmed_mean"]
    assert "krum_byzantine" in p["krum"] and "multi_krum_m" not in p["krum"]
    assert {"krum_byzantine", "multi_krum_m"} <= set(p["multikrum"])


def test_default_server_lrs_and_override():
    lrs = {name: make(name).server_lr for name in ORDER}
    assert lrs["fedavg"] == lrs["fedavgm"] == 1.0
    assert 0.005 <= lrs["fedadam"] <= 0.05 and 0.005 <= lrs["fedyogi"] <= 0.05 and 0.005 <= lrs["fedadagrad"] <= 0.05
    assert make("fedadam", server_lr=0.5).server_lr == 0.5


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_one_round_returns_new_state_and_float_metrics_without_touching_the_old(name):
    s = make(name, num_clients=8, clients_per_round=6)
    g = torch.Generator().manual_seed(0)
    state = s.init(torch.randn(11, generator=g))
    ids = [0, 2, 3, 5, 6, 7]
    if s.client_corrections(state, ids) is not None:
        assert s.client_corrections(state, ids).shape == (6, 11)
    u = ClientUpdates(ids, torch.randn(6, 11, generator=g), t([5, 1, 2, 8, 3, 3]), t([2, 1, 1, 4, 2, 2]), t([1, 2, 1, 3, 1, 2]))
    state1, metrics = s.aggregate(state, u)
    before = snapshot(state1)
    state2, _ = s.aggregate(state1, u)
    assert state.round == 0 and state1.round == 1 and state2.round == 2
    assert same(snapshot(state1), before)  # aggregate made a new state, the old one is intact
    assert not torch.equal(state1.params, state.params)
    assert metrics and all(isinstance(k, str) and type(v) is float for k, v in metrics.items())


# FedAvg -------------------------------------------------------------------------------------


def test_fedavg_is_the_sample_weighted_mean_scaled_by_server_lr():
    s = make("fedavg")
    state, _ = s.aggregate(s.init(t([10, 10])), updates([[1, 2], [3, 4]], samples=[1, 3]))
    assert torch.allclose(state.params, t([12.5, 13.5]))
    s = make("fedavg", server_lr=0.5)
    state, _ = s.aggregate(s.init(t([10, 10])), updates([[1, 2], [3, 4]], samples=[1, 3]))
    assert torch.allclose(state.params, t([11.25, 11.75]))


# FedNova ------------------------------------------------------------------------------------


def test_fednova_with_equal_steps_is_fedavg():
    g = torch.Generator().manual_seed(0)
    start, deltas, samples = torch.randn(9, generator=g), torch.randn(4, 9, generator=g), t([5, 1, 2, 8])
    u = ClientUpdates([0, 1, 2, 3], deltas, samples, t([6, 6, 6, 6]))
    fedavg, _ = make("fedavg").aggregate(make("fedavg").init(start), u)
    nova, metrics = make("fednova").aggregate(make("fednova").init(start), u)
    assert torch.equal(nova.params, fedavg.params) and metrics["fednova_tau_eff"] == 6.0
    fedavg, _ = make("fedavg", momentum=0.9).aggregate(make("fedavg").init(start), u)
    nova, _ = make("fednova", momentum=0.9).aggregate(make("fednova").init(start), u)
    assert torch.allclose(nova.params, fedavg.params, rtol=1e-6, atol=1e-7)


def test_fednova_unequal_steps_hand_computed():
    # steps 2 and 6, one sample each: tau_eff = 4; 4 * (0.5 * [2, 4] / 2 + 0.5 * [3, 3] / 6) = [3, 5]
    s = make("fednova")
    state, metrics = s.aggregate(s.init(t([10, 10])), updates([[2, 4], [3, 3]], samples=[1, 1], steps=[2, 6]))
    assert torch.allclose(state.params, t([13, 15])) and metrics["fednova_tau_eff"] == 4.0
    # client momentum 0.5: 1 and 3 steps hold 1 and 4.25 steps' worth of gradient; normalized updates
    # 2 / 1 and 4.25 / 4.25, tau_eff = (1 + 4.25) / 2 = 2.625, so 2.625 * 1.5 = 3.9375 (FedAvg: 3.125)
    s = make("fednova", momentum=0.5)
    state, metrics = s.aggregate(s.init(t([0])), updates([[2], [4.25]], samples=[1, 1], steps=[1, 3]))
    assert torch.allclose(state.params, t([3.9375])) and metrics["fednova_tau_eff"] == 2.625


def reference_fednova_prox(deltas, samples, steps, lr, mu):
    """JYWa/FedNova's `FedNova` optimizer over Python floats, proximal term, no momentum: the
    normalizing vector runs a = a * (1 - lr * mu) + 1 per step, and `average` rescales by
    tau_eff = sum_i p_i * local_steps_i (its `mu != 0` branch), not by sum_i p_i a_i."""
    total = sum(samples)
    norms = []
    for tau in steps:
        a = 0.0
        for _ in range(tau):
            a = a * (1 - lr * mu) + 1
        norms.append(a)
    tau_eff = sum(n / total * tau for n, tau in zip(samples, steps))
    return [sum(n / total * tau_eff / a * d[j] for n, a, d in zip(samples, norms, deltas)) for j in range(len(deltas[0]))], tau_eff


def test_fednova_with_a_proximal_term_rescales_as_the_authors_code_does():
    # lr 0.1, mu 1: 1 and 3 steps hold 1 and 2.71 steps' worth of gradient; normalized updates 2 and
    # 5.42 / 2.71 = 2, tau_eff = (1 + 3) / 2 = 2 (the mean norm, 1.855, would give 3.71 instead of 4)
    s = make("fednova", lr=0.1, prox_mu=1.0)
    state, metrics = s.aggregate(s.init(t([0])), updates([[2], [5.42]], samples=[1, 1], steps=[1, 3]))
    assert torch.allclose(state.params, t([4.0])) and metrics["fednova_tau_eff"] == 2.0
    g = torch.Generator().manual_seed(1)
    deltas, samples, steps = torch.randn(3, 5, generator=g), [4, 1, 7], [2, 9, 5]
    s = make("fednova", lr=0.05, prox_mu=0.7)
    state, metrics = s.aggregate(s.init(torch.zeros(5)), updates(deltas.tolist(), samples=samples, steps=steps))
    expected, tau_eff = reference_fednova_prox(deltas.tolist(), samples, steps, lr=0.05, mu=0.7)
    assert torch.allclose(state.params, t(expected), rtol=1e-5, atol=1e-6) and metrics["fednova_tau_eff"] == pytest.approx(tau_eff)


def test_client_momentum_gives_more_effective_steps_than_it_takes():
    from flcore.strategies.aggregate import local_solver_norms

    assert local_solver_norms(t([3]), lr=0.1, momentum=0.9).item() == pytest.approx(5.61)  # not fewer than 3


# FedOpt -------------------------------------------------------------------------------------


def test_fedavgm_two_rounds_hand_computed():
    s = make("fedavgm", server_momentum=0.5)
    state = s.init(t([0, 0]))
    state, _ = s.aggregate(state, updates([[1, 2], [3, 4]], samples=[1, 3]))  # delta [2.5, 3.5]
    assert torch.allclose(state.params, t([2.5, 3.5]))
    state, _ = s.aggregate(state, updates([[1, -1]]))  # m = 0.5 [2.5, 3.5] + [1, -1]
    assert torch.allclose(state.extra["m"], t([2.25, 0.75]))
    assert torch.allclose(state.params, t([4.75, 4.25]))


@pytest.mark.parametrize(
    "name, deltas, expected",
    [
        # beta1 = beta2 = 0.5, tau = 1 (v starts at 1): the client mean is the delta of
        # test_aggregate's hand-computed cases, x = 0.12 m / (sqrt(v) + 1).
        ("fedadam", [[0, -6], [2, -8]], [0.03, -0.07]),
        ("fedyogi", [[0, 3], [2, 5]], [0.03, 0.06]),
        ("fedadagrad", [[0.5, -1], [1, -5 / 3]], [0.02, -0.03]),
    ],
)
def test_adaptive_one_round_hand_computed(name, deltas, expected):
    s = make(name, server_lr=0.12, beta1=0.5, beta2=0.5, tau=1.0)
    state = s.init(t([0, 0]))
    assert torch.equal(state.extra["v"], t([1, 1]))  # v_{-1} = tau^2
    state, _ = s.aggregate(state, updates(deltas))
    assert torch.allclose(state.params, t(expected))


def reference_fedopt(kind, x, deltas, lr, beta1, beta2, tau, momentum):
    """Reddi et al. 2021 Algorithm 2, written independently over Python floats."""
    x = list(x)
    m = [0.0] * len(x)
    v = [tau * tau] * len(x)
    for d in deltas:
        for j, dj in enumerate(d):
            if kind == "fedavgm":
                m[j] = momentum * m[j] + dj
                x[j] += lr * m[j]
                continue
            m[j] = beta1 * m[j] + (1 - beta1) * dj
            if kind == "fedadagrad":
                v[j] = v[j] + dj * dj
            elif kind == "fedadam":
                v[j] = beta2 * v[j] + (1 - beta2) * dj * dj
            else:
                diff = v[j] - dj * dj
                v[j] = v[j] - (1 - beta2) * dj * dj * (diff > 0) + (1 - beta2) * dj * dj * (diff < 0)
            x[j] += lr * m[j] / (math.sqrt(v[j]) + tau)
    return x


@pytest.mark.parametrize("name", ["fedavgm", "fedadam", "fedyogi", "fedadagrad"])
def test_fedopt_three_rounds_match_an_independent_reference(name):
    hp = dict(server_lr=0.05, beta1=0.8, beta2=0.9, tau=0.01, server_momentum=0.7)
    s = make(name, **hp)
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(6, generator=g)
    rounds = [torch.randn(1, 6, generator=g) * 0.2 for _ in range(3)]
    state = s.init(x0)
    for d in rounds:
        state, _ = s.aggregate(state, updates(d.tolist()))
    expected = reference_fedopt(
        name, x0.tolist(), [d[0].tolist() for d in rounds], hp["server_lr"], hp["beta1"], hp["beta2"], hp["tau"], hp["server_momentum"]
    )
    assert torch.allclose(state.params, torch.tensor(expected), atol=1e-5)


# SCAFFOLD -----------------------------------------------------------------------------------


def test_scaffold_control_variates_hand_computed():
    s = make("scaffold", num_clients=4, lr=0.1)
    state = s.init(t([0, 0]))
    assert torch.equal(s.client_corrections(state, [0, 3]), torch.zeros(2, 2))

    # Round 1: clients 0 (K=2) and 2 (K=3). dc_i = -c - delta_i / (K_i * lr).
    state, _ = s.aggregate(state, updates([[-0.2, 0.4], [0.6, 0]], samples=[1, 9], steps=[2, 3], ids=[0, 2]))
    controls = state.extra["client_controls"]
    assert torch.allclose(controls[0], t([1, -2])) and torch.allclose(controls[2], t([-2, 0]))
    assert set(controls) == {0, 2}  # only participants are stored
    assert torch.allclose(state.extra["control"], t([-0.25, -0.5]))  # (2/4) * mean(dc)
    assert torch.allclose(state.params, t([0.2, 0.2]))  # plain mean, the sample counts are ignored
    assert torch.allclose(s.client_corrections(state, [0, 1, 2]), t([[-1.25, 1.5], [-0.25, -0.5], [1.75, -0.5]]))

    # Round 2: clients 0 (K=1) and 1 (K=2, first time).
    old = snapshot(state)
    state2, _ = s.aggregate(state, updates([[0.1, 0.1], [0, -0.2]], steps=[1, 2], ids=[0, 1]))
    controls = state2.extra["client_controls"]
    assert torch.allclose(controls[0], t([0.25, -2.5]))  # [1, -2] + [-0.75, -0.5]
    assert torch.allclose(controls[1], t([0.25, 1.5]))
    assert torch.allclose(controls[2], t([-2, 0]))  # not sampled: unchanged
    assert torch.allclose(state2.extra["control"], t([-0.375, -0.25]))
    assert torch.allclose(state2.params, t([0.25, 0.15]))
    assert same(snapshot(state), old)


# Robust strategies ----------------------------------------------------------------------------


def test_median_and_trimmed_mean_ignore_an_outlier_and_the_sample_counts():
    deltas = [[1, 0], [2, 1], [100, -100], [3, 2], [2.5, 3]]
    samples = [1, 1, 1000, 1, 1]
    s = make("median")
    state, _ = s.aggregate(s.init(t([0, 0])), updates(deltas, samples=samples))
    assert torch.allclose(state.params, t([2.5, 1]))
    s = make("trimmed_mean", trim_beta=0.2)
    state, metrics = s.aggregate(s.init(t([0, 0])), updates(deltas, samples=samples))
    assert torch.allclose(state.params, t([2.5, 1]))  # mean(2, 2.5, 3), mean(0, 1, 2)
    assert metrics["trimmed_per_side"] == 1.0


def test_krum_rejects_the_outlier_and_reports_the_selection():
    deltas = [[1, 1], [1.1, 0.9], [50, -50], [0.9, 1.1], [1, 1.05]]
    s = make("krum", num_clients=5, krum_byzantine=1)
    state, metrics = s.aggregate(s.init(t([0, 0])), updates(deltas, ids=[10, 11, 12, 13, 14]))
    assert metrics["krum_selected"] == 1.0 and metrics["krum_byzantine"] == 1.0
    assert metrics["krum_best_client"] in (10.0, 11.0, 13.0, 14.0)
    assert state.params.tolist() in [d for i, d in enumerate(t(deltas).tolist()) if i != 2]

    s = make("multikrum", num_clients=5, krum_byzantine=1)  # m defaults to n - f = 4
    state, metrics = s.aggregate(s.init(t([0, 0])), updates(deltas))
    assert metrics["krum_selected"] == 4.0
    assert torch.allclose(state.params, t([d for i, d in enumerate(deltas) if i != 2]).mean(0))


def test_multikrum_with_all_updates_and_no_attackers_is_the_plain_mean():
    deltas = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    s = make("multikrum", num_clients=5, krum_byzantine=0, multi_krum_m=5)
    state, _ = s.aggregate(s.init(torch.zeros(3)), updates(deltas.tolist(), samples=[1, 2, 3, 4, 5]))
    assert torch.allclose(state.params, deltas.mean(0))


def test_krum_byzantine_defaults_to_the_attack_fraction_clamped():
    attack = "sign_flip"
    assert make("krum", num_clients=10, attack=attack, attack_fraction=0.2).num_byzantine(10) == 2
    # 0.45 * 10 rounds to 4 (banker's rounding of 4.5), but n=10 allows at most (10 - 3) // 2 = 3
    assert make("krum", num_clients=10, attack=attack, attack_fraction=0.45).num_byzantine(10) == 3
    assert make("krum", num_clients=10).num_byzantine(10) == 0


# Config problems ------------------------------------------------------------------------------


def test_krum_refuses_too_many_byzantine_naming_field_value_and_maximum():
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.create(strategy="krum", num_clients=10, clients_per_round=6, krum_byzantine=2)
    msg = str(err.value)
    assert "krum_byzantine=2" in msg and "at most 1" in msg and "clients_per_round=6" in msg
    ExperimentConfig.create(strategy="krum", num_clients=10, clients_per_round=6, krum_byzantine=1)
    # the same field is free under another strategy
    ExperimentConfig.create(strategy="fedavg", num_clients=10, clients_per_round=6, krum_byzantine=2)


def test_krum_refuses_rounds_too_small_to_run():
    with pytest.raises(ConfigError, match="clients_per_round=2"):
        ExperimentConfig.create(strategy="krum", num_clients=2)


def test_multikrum_refuses_m_above_clients_per_round():
    with pytest.raises(ConfigError, match="multi_krum_m=7 exceeds clients_per_round=6"):
        ExperimentConfig.create(strategy="multikrum", num_clients=10, clients_per_round=6, multi_krum_m=7)


def test_trimmed_mean_config_problems_name_trim_beta_and_clients_per_round():
    # The field's own bound (trim_beta < 0.5) already keeps validated configs safe, so the
    # check is exercised directly with a stand-in config.
    bad = types.SimpleNamespace(trim_beta=0.5, clients_per_round_resolved=4)
    ((field, msg),) = TrimmedMean.config_problems(bad)
    assert field == "trim_beta" and "trim_beta=0.5" in msg and "clients_per_round=4" in msg
    assert TrimmedMean.config_problems(types.SimpleNamespace(trim_beta=0.49, clients_per_round_resolved=4)) == []
    assert ExperimentConfig.create(strategy="trimmed_mean", trim_beta=0.4, num_clients=3).trim_beta == 0.4


# Every registered strategy, whatever it is --------------------------------------------------


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_moves_the_model_along_an_update_all_clients_agree_on(name):
    s = make(name, num_clients=8, clients_per_round=6)
    state = s.init(torch.zeros(5))
    direction = t([1.0, -2.0, 0.5, 0.0, 3.0])
    state, _ = s.aggregate(state, updates([direction.tolist()] * 6, samples=[1, 2, 3, 4, 5, 6]))
    assert torch.isfinite(state.params).all()
    assert float(state.params @ direction) > 0, f"{name} moved away from the update every client sent"


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_is_deterministic_and_names_itself(name):
    config = ExperimentConfig.create(strategy=name, num_clients=8, clients_per_round=6)
    assert build_strategy(config).name == name == STRATEGIES.entry(name).obj.name
    u = updates(torch.randn(6, 4, generator=torch.Generator().manual_seed(1)).tolist(), samples=[3, 1, 4, 1, 5, 9])
    runs = [build_strategy(config).aggregate(build_strategy(config).init(torch.ones(4)), u)[0].params for _ in range(2)]
    assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_what_a_strategy_declares_is_what_it_does(name):
    """`averages` (central DP may stand in for its combining rule) and `sends_corrections` are
    declared, not probed; they must agree with what the class overrides."""
    from flcore.strategies import Strategy

    cls = STRATEGIES.get(name)
    plain_mean = cls.combine is Strategy.combine and cls.aggregate is Strategy.aggregate
    assert cls.averages == plain_mean, f"{name} declares averages={cls.averages}"
    assert cls.sends_corrections == (cls.client_corrections is not Strategy.client_corrections)


def test_a_strategy_is_one_registered_class(monkeypatch):
    """A new strategy in one file: a class registered with `register`. The config accepts its
    name, the CLI lists it, the form offers it, and the loops above test it."""
    from flcore.strategies import Strategy, register

    monkeypatch.setattr(STRATEGIES, "_entries", dict(STRATEGIES._entries))  # registered for this test only

    @register("half_step", label="Half step", description="A toy.", params=("server_lr",))
    class HalfStep(Strategy):
        """FedAvg taking half the combined update each round (a toy)."""

        default_server_lr = 0.5

    assert HalfStep.name == "half_step"
    config = ExperimentConfig.create(strategy="half_step")
    state, _ = build_strategy(config).aggregate(build_strategy(config).init(t([0, 0])), updates([[2, 4]]))
    assert torch.equal(state.params, t([1, 2]))
    from dashboard.form import CHOICES

    assert "half_step" in CHOICES["strategy"].names()
