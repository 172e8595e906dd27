"""The vectorized executor gives the sequential executor's numbers.

One round from the same state and seed, for every registered model, with equal and unequal
client sizes, momentum, weight decay, FedProx, a SCAFFOLD correction and a label-flipping
client; one simulated round for every registered strategy; and a full run's accuracy curve.
"""

import math

import pytest
import torch
from torch import nn

from flcore.config import ConfigError, ExperimentConfig
from flcore.federation.simulation import Simulation
from flcore.models import MODELS, build_model
from flcore.strategies import STRATEGIES
from flcore.training import SequentialExecutor, TrainingData, VectorizedExecutor, make_executor, supports
from flcore.training.local import ClientTask, LocalSettings, flat_params
from flcore.training.vectorized import unsupported_reason

ATOL = 1e-5


INPUT = {"logistic": (1, 8, 8), "mlp": (1, 8, 8), "cnn": (1, 8, 8), "cifar_cnn": (3, 16, 16), "femnist_cnn": (1, 8, 8)}
BATCHED = [m for m in MODELS.names() if not MODELS.get(m).tokens]  # the character LSTM trains one client at a time
PLAIN = LocalSettings(epochs=1, batch_size=5, lr=0.05, momentum=0.0, weight_decay=0.0, prox_mu=0.0)
EVERYTHING = LocalSettings(epochs=2, batch_size=5, lr=0.05, momentum=0.9, weight_decay=1e-3, prox_mu=0.1)


def problem(model_name, sizes, shape=None, seed=0):
    shape = shape or INPUT[model_name]
    g = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    x = torch.randn(n, *shape, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    order = torch.randperm(n, generator=g)
    cuts = [0, *torch.tensor(sizes).cumsum(0).tolist()]
    tasks = [ClientTask(10 + 3 * i, order[a:b]) for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model(model_name, shape, 10)
    return model, x, y, tasks


def both(model, settings, x, y, tasks, corrections=None, chunk_size=None, round_=3):
    start = flat_params(model)
    data = TrainingData.holding(None, x.device, x, y)
    seq = SequentialExecutor(model, settings, 10, seed=5).train(start, tasks, data, round_, corrections)
    vec = VectorizedExecutor(model, settings, 10, seed=5, chunk_size=chunk_size).train(start, tasks, data, round_, corrections)
    return seq, vec


def assert_same(seq, vec):
    assert torch.allclose(vec.deltas, seq.deltas, atol=ATOL), (vec.deltas - seq.deltas).abs().max()
    assert torch.equal(vec.num_samples, seq.num_samples)
    assert torch.equal(vec.num_steps, seq.num_steps)
    assert torch.allclose(vec.train_loss, seq.train_loss, atol=ATOL)
    assert torch.allclose(vec.train_accuracy, seq.train_accuracy, atol=ATOL)


# One round, every model ---------------------------------------------------------------------
@pytest.mark.parametrize("model_name", BATCHED)
@pytest.mark.parametrize("sizes", [(10, 10, 10), (7, 13, 20, 1)], ids=["equal", "unequal"])
def test_plain_sgd_matches_sequential(model_name, sizes):
    model, x, y, tasks = problem(model_name, sizes)
    assert_same(*both(model, PLAIN, x, y, tasks))


@pytest.mark.parametrize("model_name", BATCHED)
def test_momentum_weight_decay_prox_scaffold_and_label_flip_match_sequential(model_name):
    model, x, y, tasks = problem(model_name, (7, 13, 20, 3))
    tasks[1] = ClientTask(tasks[1].client_id, tasks[1].indices, flip_labels=True)
    p = flat_params(model).numel()
    corrections = 0.05 * torch.randn(len(tasks), p, generator=torch.Generator().manual_seed(1))
    seq, vec = both(model, EVERYTHING, x, y, tasks, corrections, chunk_size=2)  # 2 chunks
    assert_same(seq, vec)
    assert seq.num_steps.tolist() == [2 * math.ceil(n / 5) for n in (7, 13, 20, 3)]


@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_partial_work_matches_sequential(model_name):
    """Stragglers' step limits: below, inside and past a client's own steps, in two chunks."""
    model, x, y, tasks = problem(model_name, (7, 13, 20, 3))
    limits = (1, 5, None, 99)
    tasks = [ClientTask(t.client_id, t.indices, max_steps=k) for t, k in zip(tasks, limits)]
    seq, vec = both(model, EVERYTHING, x, y, tasks, chunk_size=2)
    assert_same(seq, vec)
    assert seq.num_steps.tolist() == [1, 5, 8, 2]  # full counts: 4, 6, 8, 2
    model, x, y, _ = problem(model_name, (7, 13, 20, 3))  # the same start again (training moved the model)
    full = both(model, EVERYTHING, x, y, [ClientTask(t.client_id, t.indices) for t in tasks])[0]
    assert torch.equal(seq.deltas[2:], full.deltas[2:]) and not torch.allclose(seq.deltas[:2], full.deltas[:2])


@pytest.mark.parametrize("model_name", ["logistic", "mlp"])
def test_flat_inputs_match_sequential(model_name):
    model, x, y, tasks = problem(model_name, (9, 4, 12), shape=(60,))
    assert_same(*both(model, EVERYTHING, x, y, tasks))


@pytest.mark.parametrize("model_name", ["logistic", "mlp", "cnn"])
def test_heavy_tailed_clients_match_sequential(model_name):
    """Sizes spanning 100x (one step against 40): late steps carry only the few clients still
    training, and read only their samples."""
    sizes = (2, 200, 3, 5, 2, 60, 4, 2)
    model, x, y, tasks = problem(model_name, sizes, shape=(60,) if model_name != "cnn" else None)
    seq, vec = both(model, EVERYTHING, x, y, tasks, chunk_size=5)
    assert_same(seq, vec)
    assert seq.num_steps.max() == 2 * 40 and seq.num_steps.min() == 2


def test_batch_larger_than_every_client():
    model, x, y, tasks = problem("mlp", (3, 1, 2))
    s = LocalSettings(epochs=3, batch_size=64, lr=0.1, momentum=0.5, weight_decay=0.0, prox_mu=0.0)
    assert_same(*both(model, s, x, y, tasks))


def test_chunking_does_not_change_the_result():
    model, x, y, tasks = problem("cnn", (7, 13, 20, 3, 9))
    start = flat_params(model)
    whole = VectorizedExecutor(model, EVERYTHING, 10, seed=5).train(start, tasks, TrainingData.holding(None, x.device, x, y), 1)
    for chunk in (1, 2, 4):
        part = VectorizedExecutor(model, EVERYTHING, 10, seed=5, chunk_size=chunk).train(
            start, tasks, TrainingData.holding(None, x.device, x, y), 1
        )
        assert torch.allclose(part.deltas, whole.deltas, atol=1e-6)
        assert torch.allclose(part.train_loss, whole.train_loss, atol=1e-6)


def test_global_parameters_are_not_written():
    model, x, y, tasks = problem("mlp", (7, 13))
    start = flat_params(model)
    before = start.clone()
    VectorizedExecutor(model, EVERYTHING, 10, seed=5).train(start, tasks, TrainingData.holding(None, x.device, x, y), 1)
    assert torch.equal(start, before)


def test_the_memory_budget_bounds_the_chunk():
    model = build_model("mlp", (1, 28, 28), 10)
    p = flat_params(model).numel()
    budget = 64 * 2**20
    on = lambda device, **kw: VectorizedExecutor(model, EVERYTHING, 10, seed=0, **kw).clients_per_chunk(
        (1, 28, 28), batch=10, steps=20, device=device
    )
    chunk = on("cuda", memory_budget=budget)
    assert chunk > 1 and chunk * 5 * p * 4 <= budget  # five [chunk, P] float copies fit
    assert on("cuda", memory_budget=1) == 1
    assert on("cpu", memory_budget=budget) <= chunk  # the CPU also keeps the state near the cache
    assert on("cpu", chunk_size=7) == on("cuda", chunk_size=7) == 7


# Choosing the executor ----------------------------------------------------------------------
def test_every_registered_model_of_real_inputs_is_supported_and_auto_is_the_default():
    assert ExperimentConfig().executor == "auto"
    assert [m for m in MODELS.names() if m != "char_lstm"] == BATCHED
    for name in BATCHED:
        assert supports(build_model(name, INPUT[name], 10)), name
    sim = Simulation(ExperimentConfig.create(num_clients=4, rounds=1))
    assert isinstance(sim.executor, VectorizedExecutor)


def test_the_character_lstm_is_refused_with_a_reason_and_auto_trains_it_one_client_at_a_time():
    lstm = build_model("char_lstm", (80,), 80, vocab_size=81)
    reason = unsupported_reason(lstm)
    assert reason.startswith("it has no batched version of embeddings or recurrent layers (Embedding, LSTM)")
    config = ExperimentConfig.create(model="mlp")  # the executor reads only the training settings from it
    assert isinstance(make_executor(config, lstm, 80), SequentialExecutor)
    with pytest.raises(ValueError, match="executor='vectorized' cannot train model='mlp': it has no batched version of embeddings"):
        make_executor(config.replace(executor="vectorized"), lstm, 80)


def test_make_executor_honours_the_setting_and_falls_back_for_unsupported_models():
    config = ExperimentConfig.create(model="mlp")
    model = build_model("mlp", (1, 8, 8), 10)
    assert isinstance(make_executor(config.replace(executor="sequential"), model, 10), SequentialExecutor)
    assert isinstance(make_executor(config.replace(executor="vectorized"), model, 10), VectorizedExecutor)
    with_norm = nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.BatchNorm1d(10))
    assert not supports(with_norm)
    assert isinstance(make_executor(config, with_norm, 10), SequentialExecutor)
    with pytest.raises(ValueError, match="buffers"):
        make_executor(config.replace(executor="vectorized"), with_norm, 10)


# Inside the simulation ----------------------------------------------------------------------
# Few local steps: over long runs a ReLU input within ~1e-7 of zero can take either side in two
# float summation orders, which moves one step's gradient by one unit's contribution (seen with
# the cnn on digits after 25 steps). That is float rounding, not a difference in the algorithm.
SMALL = dict(
    dataset="digits",
    partition="dirichlet",
    alpha=0.5,
    num_clients=8,
    clients_per_round=6,
    model="mlp",
    local_epochs=1,
    batch_size=32,
    lr=0.05,
    momentum=0.5,
    weight_decay=1e-4,
    prox_mu=0.01,
    seed=3,
)
DIGIT_MODELS = [m for m in MODELS.names() if MODELS.get(m).unsupported((1, 8, 8)) is None]


@pytest.mark.parametrize("model", DIGIT_MODELS)
@pytest.mark.parametrize("strategy", STRATEGIES.names())
def test_each_strategy_gets_the_same_parameters_from_either_executor(strategy, model):
    params = {}
    for executor in ("sequential", "vectorized"):
        config = ExperimentConfig.create(**{**SMALL, "model": model}, strategy=strategy, rounds=2, executor=executor)
        sim = Simulation(config)
        state = sim.initial_state()
        for _ in range(2):  # the second round sees SCAFFOLD's corrections and server optimizer state
            state, _ = sim.step(state)
        params[executor] = state.params
    assert torch.allclose(params["vectorized"], params["sequential"], atol=1e-4)


def test_prox_and_label_flipping_in_a_simulation_match():
    extra = dict(attack="label_flip", attack_fraction=0.25, rounds=2)
    results = {}
    for executor in ("sequential", "vectorized"):
        results[executor] = list(Simulation(ExperimentConfig.create(**SMALL, **extra, executor=executor)).run())
    for seq, vec in zip(results["sequential"], results["vectorized"]):
        assert [c.train_loss for c in vec.clients] == pytest.approx([c.train_loss for c in seq.clients], abs=1e-5)
        assert vec.test_loss == pytest.approx(seq.test_loss, abs=1e-5)


def test_a_full_run_has_the_same_accuracy_curve_with_either_executor():
    config = dict(dataset="digits", partition="iid", num_clients=10, clients_per_round=5, model="mlp", rounds=5, seed=1)
    curves = {
        executor: [(r.test_accuracy, r.test_loss) for r in Simulation(ExperimentConfig.create(**config, executor=executor)).run()]
        for executor in ("sequential", "vectorized")
    }
    for (acc_s, loss_s), (acc_v, loss_v) in zip(curves["sequential"], curves["vectorized"]):
        assert acc_v == pytest.approx(acc_s, abs=2e-3)  # at most one test image in 360 may flip
        assert loss_v == pytest.approx(loss_s, abs=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_the_cpu_reference():
    model, x, y, tasks = problem("cifar_cnn", (7, 13, 20))
    start = flat_params(model)
    seq = SequentialExecutor(model, EVERYTHING, 10, seed=5).train(start, tasks, TrainingData.holding(None, x.device, x, y), 1)
    cuda_tasks = [ClientTask(t.client_id, t.indices.cuda(), t.flip_labels) for t in tasks]
    vec = VectorizedExecutor(model.cuda(), EVERYTHING, 10, seed=5).train(
        start.cuda(), cuda_tasks, TrainingData.holding(None, "cuda", x.cuda(), y.cuda()), 1
    )
    assert torch.allclose(vec.deltas.cpu(), seq.deltas, atol=1e-4)


@pytest.mark.parametrize("name", MODELS.names())
def test_what_a_model_declares_about_batching_is_what_the_vectorized_executor_finds(name):
    spec = MODELS.get(name)
    model = build_model(name, (80,), 80, vocab_size=81) if spec.tokens else build_model(name, (3, 32, 32), 10)
    assert spec.batchable == supports(model)


def test_a_batched_executor_refuses_a_model_it_cannot_batch_when_the_config_is_checked():
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.create(dataset="shakespeare", model="char_lstm", executor="vectorized")
    assert [p.field for p in err.value.problems] == ["executor"]
    assert "executor='vectorized' cannot train model='char_lstm'" in str(err.value) and "choose executor='sequential' or 'auto'" in str(
        err.value
    )
    assert ExperimentConfig.create(dataset="shakespeare", model="char_lstm", executor="auto").executor == "auto"
