"""The sequential executor, the reference every other executor is checked against.

Properties of the batch order, and the executor against a hand-written SGD loop (softmax
regression with its gradient written out), so that the reference itself is checked by
something independent of torch.optim and autograd.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from flcore.models import build_model
from flcore.training import TrainingData
from flcore.training.local import (
    ClientTask,
    LocalSettings,
    SequentialExecutor,
    batch_order,
    evaluate,
    flat_params,
    local_steps,
    samples_in_steps,
)

SHAPE = (1, 4, 4)


def settings(**kw):
    return LocalSettings(**{**dict(epochs=1, batch_size=5, lr=0.1, momentum=0.0, weight_decay=0.0, prox_mu=0.0), **kw})


def problem(n=23, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *SHAPE, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    model = build_model("logistic", SHAPE, 10)
    return model, x, y


def train(model, x, y, s, tasks=None, corrections=None, round_=1):
    """One round from the model's initial parameters (kept on the model as `start`)."""
    if not hasattr(model, "start"):
        model.start = flat_params(model)
    tasks = tasks if tasks is not None else [ClientTask(3, torch.arange(len(y)))]
    return SequentialExecutor(model, s, 10, seed=7).train(model.start, tasks, TrainingData.holding(None, "cpu", x, y), round_, corrections)


# The batch order ----------------------------------------------------------------------------
def test_batch_order_covers_each_sample_once_per_epoch():
    s = settings(epochs=3, batch_size=5)
    batches = batch_order(23, s, seed=0, round_=1, client_id=4)
    assert len(batches) == 3 * math.ceil(23 / 5)
    per_epoch = len(batches) // 3
    for e in range(3):
        epoch = batches[e * per_epoch : (e + 1) * per_epoch]
        assert sorted(torch.cat(epoch).tolist()) == list(range(23))
        assert [len(b) for b in epoch] == [5, 5, 5, 5, 3]  # only an epoch's last batch is short


def test_batch_order_is_a_function_of_seed_round_and_client():
    s = settings(batch_size=4)
    order = lambda *key: torch.cat(batch_order(30, s, *key)).tolist()
    assert order(0, 1, 2) == order(0, 1, 2)
    assert order(0, 1, 2) != order(0, 2, 2)  # another round
    assert order(0, 1, 2) != order(0, 1, 3)  # another client
    assert order(0, 1, 2) != order(1, 1, 2)  # another seed


def test_batch_order_leaves_the_global_rng_alone():
    before = torch.get_rng_state()
    batch_order(10, settings(), 0, 1, 1)
    assert torch.equal(before, torch.get_rng_state())


# The executor ------------------------------------------------------------------------------
def hand_written_sgd(w, b, x, y, batches, s, num_classes=10):
    """Softmax regression trained by SGD with momentum and weight decay, gradients by hand."""
    w, b = w.clone().double(), b.clone().double()
    x, buf_w, buf_b = x.reshape(len(x), -1).double(), torch.zeros_like(w), torch.zeros_like(b)
    for batch in batches:
        xb, yb = x[batch], y[batch]
        p = torch.softmax(xb @ w.T + b, 1)
        p[torch.arange(len(yb)), yb] -= 1  # d mean-CE / d logits, times the batch size
        gw, gb = p.T @ xb / len(yb) + s.weight_decay * w, p.sum(0) / len(yb) + s.weight_decay * b
        buf_w, buf_b = s.momentum * buf_w + gw, s.momentum * buf_b + gb
        w, b = w - s.lr * buf_w, b - s.lr * buf_b
    return torch.cat([w.flatten(), b]).float()


def test_matches_hand_written_sgd_with_momentum_and_weight_decay():
    model, x, y = problem()
    s = settings(epochs=2, momentum=0.9, weight_decay=1e-2)
    start = flat_params(model)
    expected = hand_written_sgd(model[1].weight.detach(), model[1].bias.detach(), x, y, batch_order(len(y), s, 7, 1, 3), s)
    out = train(model, x, y, s)
    assert torch.allclose(start + out.deltas[0], expected, atol=1e-5)


def test_steps_and_samples_are_counted():
    model, x, y = problem(n=23)
    out = train(model, x, y, settings(epochs=2, batch_size=5))
    assert out.num_samples.tolist() == [23] and out.num_steps.tolist() == [2 * 5]


def test_max_steps_stops_after_the_first_batches_of_the_usual_order():
    model, x, y = problem(n=23)
    s = settings(epochs=2, batch_size=5, momentum=0.9)
    start = flat_params(model)
    first_seven = batch_order(23, s, 7, 1, 3)[:7]  # an epoch and two batches of the next
    expected = hand_written_sgd(model[1].weight.detach(), model[1].bias.detach(), x, y, first_seven, s)
    out = train(model, x, y, s, [ClientTask(3, torch.arange(23), max_steps=7)])
    assert out.num_steps.tolist() == [7] and out.num_samples.tolist() == [23]
    assert torch.allclose(start + out.deltas[0], expected, atol=1e-5)
    assert local_steps(23, s) == 10 and local_steps(23, s, 7) == 7 and local_steps(23, s, 50) == 10
    assert samples_in_steps(23, 5, 7) == 23 + 10 and samples_in_steps(23, 5, 10) == 46 and samples_in_steps(23, 5, 4) == 20


def test_with_lr_zero_train_metrics_are_the_models_loss_and_accuracy_on_the_client_data():
    # Every sample is seen once per epoch, so the sample-weighted mean over batches is the mean.
    model, x, y = problem()
    out = train(model, x, y, settings(lr=0.0, epochs=2))
    loss, accuracy = evaluate(model, flat_params(model), x, y)
    assert out.train_loss.item() == pytest.approx(loss, abs=1e-5)
    assert out.train_accuracy.item() == pytest.approx(accuracy)
    assert torch.all(out.deltas == 0)


def test_training_leaves_the_global_parameters_alone():
    model, x, y = problem()
    start = flat_params(model)
    ex = SequentialExecutor(model, settings(), 10, seed=0)
    copy = start.clone()
    ex.train(start, [ClientTask(0, torch.arange(10)), ClientTask(1, torch.arange(10, 23))], TrainingData.holding(None, "cpu", x, y), 1)
    assert torch.equal(start, copy)


def test_each_client_starts_from_the_global_parameters():
    model, x, y = problem()
    task = ClientTask(0, torch.arange(10))
    alone = train(model, x, y, settings(), [task])
    after_another = train(model, x, y, settings(), [ClientTask(1, torch.arange(10, 23)), task])
    assert torch.equal(alone.deltas[0], after_another.deltas[1])


def test_prox_with_mu_zero_is_plain_sgd_and_a_large_mu_holds_the_update_back():
    model, x, y = problem()
    plain = train(model, x, y, settings(epochs=3))
    assert torch.equal(train(model, x, y, settings(epochs=3, prox_mu=0.0)).deltas, plain.deltas)
    held = train(model, x, y, settings(epochs=3, prox_mu=5.0))
    assert held.deltas.norm() < 0.8 * plain.deltas.norm()


def test_prox_changes_nothing_on_the_first_step():
    # The proximal gradient mu (w - w_global) is zero while w is still the global model. The shared
    # objective adds it as mu w - mu w_global (one form for every executor, and no temporary per step
    # in the batched one), which is zero up to float rounding: an atol of 1e-7 where mu = 3 would
    # move these deltas by ~1e-2 if the term were not zero.
    model, x, y = problem(n=5)
    one_step = settings(batch_size=5)
    held = train(model, x, y, settings(batch_size=5, prox_mu=3.0)).deltas
    assert torch.allclose(held, train(model, x, y, one_step).deltas, rtol=0, atol=1e-7)


def test_a_zero_correction_is_no_correction_and_a_correction_is_added_to_each_gradient():
    model, x, y = problem(n=5)
    s = settings(batch_size=5)  # one step: delta = -lr (grad + c)
    plain = train(model, x, y, s)
    p = flat_params(model).numel()
    assert torch.equal(train(model, x, y, s, corrections=torch.zeros(1, p)).deltas, plain.deltas)
    c = torch.linspace(-1, 1, p)[None]
    assert torch.allclose(train(model, x, y, s, corrections=c).deltas, plain.deltas - s.lr * c, atol=1e-6)


def test_a_label_flipping_client_trains_on_flipped_labels():
    model, x, y = problem()
    idx = torch.arange(len(y))
    flipped = train(model, x, y, settings(), [ClientTask(3, idx, flip_labels=True)])
    honest_on_flipped = train(model, x, 9 - y, settings(), [ClientTask(3, idx)])
    assert torch.equal(flipped.deltas, honest_on_flipped.deltas)
    assert flipped.train_loss.item() == pytest.approx(honest_on_flipped.train_loss.item())


def test_train_loss_is_cross_entropy_before_each_step():
    model, x, y = problem(n=5)
    with torch.no_grad():
        before = F.cross_entropy(model(x), y).item()
    out = train(model, x, y, settings(batch_size=5))
    assert out.train_loss.item() == pytest.approx(before, abs=1e-6)
