"""Compressed updates: top-k keeps exactly k coordinates and counts values plus packed positions;
stochastic quantization is unbiased, uses at most 2^bits levels and is seeded per client; error
feedback carries the residual, survives a checkpoint, and both executors agree."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch

from flcore.config import ConfigError, ExperimentConfig
from flcore.federation.compression import RESIDUALS, Channel, index_bits, quantize, top_k, topk_count
from flcore.federation.simulation import Simulation
from flcore.seeding import torch_generator
from flcore.service.checkpoint import state_from_bytes, state_to_bytes
from flcore.strategies import ServerState

TINY = dict(dataset="digits", partition="dirichlet", model="logistic", batch_size=32, local_epochs=1, num_clients=6, seed=0)
P = 650  # logistic regression on 8x8 digits: 64 x 10 weights + 10 biases


def run(**kw):
    return list(Simulation(ExperimentConfig.create(**{**TINY, **kw})).run())


def seeded(result):
    return dataclasses.replace(result, wall_time_s=0.0)


# Top-k ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("ratio", "k"), [(0.1, 65), (0.01, 7), (1e-9, 1), (1.0, 650), (0.333, 217)])
def test_topk_keeps_exactly_k_of_the_largest_coordinates(ratio, k):
    assert topk_count(P, ratio) == k == max(1, math.ceil(ratio * P - 1e-9))
    u = torch.randn(4, P, generator=torch.Generator().manual_seed(1))
    sent = top_k(u, k)
    assert ((sent != 0).sum(1) == k).all()
    kept = sent != 0
    assert torch.equal(sent[kept], u[kept])  # kept values travel exactly
    for row in range(4):
        dropped = u[row][~kept[row]].abs()
        assert dropped.numel() == 0 or u[row][kept[row]].abs().min() >= dropped.max()


def test_bytes_received_count_values_and_packed_positions_for_topk_and_packed_bits_for_quantize():
    plain = run(rounds=1)[0]
    assert plain.bytes_received == 6 * P * 4 == plain.bytes_sent
    # top-k at 10%: 65 float32 values and 65 positions of ceil(log2 650) = 10 bits each
    assert index_bits(P) == 10
    assert run(rounds=1, compression="topk", compression_ratio=0.1)[0].bytes_received == 6 * (65 * 4 + math.ceil(65 * 10 / 8))
    # 3-bit quantization: 650 x 3 bits, then the minimum and the step as float32
    quantized = run(rounds=1, compression="quantize", compression_bits=3)[0]
    assert quantized.bytes_received == 6 * (math.ceil(650 * 3 / 8) + 2 * 4)
    assert quantized.bytes_sent == plain.bytes_sent  # the global model still goes out whole


def test_the_share_sent_is_measured_against_the_uploads_that_happened(tmp_path, capsys):
    from flcore.cli import main

    results = run(rounds=4, compression="topk", compression_ratio=0.1, dropout=0.5)
    for r in results:  # dropped clients upload nothing: only the updates that arrived count
        arrived = sum(c.status == "trained" for c in r.clients)
        assert r.metrics["bytes_uncompressed"] == arrived * P * 4 and r.bytes_received == arrived * (65 * 4 + math.ceil(65 * 10 / 8))
    args = ["run", "--dataset", "digits", "--partition", "dirichlet", "--model", "logistic", "--batch-size", "32", "--num-clients", "6"]
    assert (
        main(
            [
                *args,
                "--rounds",
                "4",
                "--compression",
                "topk",
                "--compression-ratio",
                "0.1",
                "--dropout",
                "0.5",
                "--no-store",
                "--quiet",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    share = (65 * 4 + math.ceil(65 * 10 / 8)) / (P * 4)  # 11.2%, whatever the dropout
    assert f"{share:.1%} of the same uploads uncompressed" in capsys.readouterr().out


# Quantization -----------------------------------------------------------------------------------
def test_quantization_is_unbiased():
    u = torch.randn(1, 200, generator=torch.Generator().manual_seed(0))
    draws = torch.stack([quantize(u, 2, [torch_generator(s, "quantize", 1, 0)]) for s in range(3000)])
    step = (u.max() - u.min()) / 3
    assert (draws[0] != u).any()  # one draw is not the update itself
    error = (draws.mean(0) - u).abs().max().item()
    assert error < 0.1 * step.item()  # the per-coordinate std is at most step / 2, so the mean of 3000 is ~0.01 step off


@pytest.mark.parametrize("bits", [1, 2, 4, 16])
def test_quantization_uses_at_most_2_to_the_bits_levels_between_min_and_max(bits):
    u = torch.randn(3, 5000, generator=torch.Generator().manual_seed(bits))
    q = quantize(u, bits, [torch_generator(0, "quantize", 1, c) for c in range(3)])
    for row in range(3):
        lo, hi = u[row].min(), u[row].max()
        assert q[row].min() >= lo - 1e-5 and q[row].max() <= hi + 1e-5
        assert len(torch.unique(q[row])) <= 2**bits
        levels = (q[row] - lo) / ((hi - lo) / (2**bits - 1))
        assert torch.allclose(levels, levels.round(), atol=1e-2)  # on the grid
        assert ((q[row] - u[row]).abs() <= (hi - lo) / (2**bits - 1) + 1e-5).all()  # one of the two neighbouring levels
    if bits == 1:
        assert torch.unique(q[0]).tolist() == pytest.approx([u[0].min().item(), u[0].max().item()])


def test_quantization_draws_are_a_function_of_seed_round_and_client():
    u = torch.randn(1, 300, generator=torch.Generator().manual_seed(0))
    q = lambda seed, round_, client: quantize(u, 2, [torch_generator(seed, "quantize", round_, client)])
    assert torch.equal(q(0, 1, 2), q(0, 1, 2))
    assert not torch.equal(q(0, 1, 2), q(0, 1, 3)) and not torch.equal(q(0, 1, 2), q(0, 2, 2))


def test_a_constant_update_is_sent_exactly():
    u = torch.full((1, 10), 0.25)
    assert torch.equal(quantize(u, 1, [torch.Generator().manual_seed(0)]), u)


# Error feedback ---------------------------------------------------------------------------------
def test_error_feedback_adds_what_was_not_sent_to_the_next_update():
    config = ExperimentConfig.create(compression="topk", compression_ratio=0.5, error_feedback=True)
    channel = Channel(config, 2)
    state = ServerState(params=torch.zeros(2))
    first = channel.send(torch.tensor([[3.0, 1.0]]), [4], 1, state)
    assert torch.equal(first.deltas, torch.tensor([[3.0, 0.0]])) and torch.equal(first.residuals[4], torch.tensor([0.0, 1.0]))
    state = channel.keep(state, first)
    second = channel.send(torch.tensor([[0.0, 0.5], [2.0, 0.0]]), [4, 7], 2, state)  # client 7 has no residual yet
    assert torch.equal(second.deltas, torch.tensor([[0.0, 1.5], [2.0, 0.0]]))
    assert torch.equal(second.residuals[4], torch.zeros(2)) and set(second.residuals) == {4, 7}
    without = Channel(config.replace(error_feedback=False), 2).send(torch.tensor([[0.0, 0.5]]), [4], 2, state)
    assert torch.equal(without.deltas, torch.tensor([[0.0, 0.5]])) and without.residuals is None


@pytest.mark.parametrize(
    "compression", [dict(compression="topk", compression_ratio=0.05), dict(compression="quantize", compression_bits=1)]
)
def test_error_feedback_runs_are_deterministic_and_resume_from_a_checkpoint(compression):
    config = ExperimentConfig.create(**TINY, clients_per_round=3, rounds=4, error_feedback=True, **compression)
    whole = list(Simulation(config).run())
    assert [seeded(r) for r in whole] == [seeded(r) for r in Simulation(config).run()]
    head = list(itertools.islice(Simulation(config).run(), 2))
    blob = state_to_bytes(head[-1].state)
    assert set(state_from_bytes(blob).extra[RESIDUALS]) == {c for r in head for c in r.sampled_clients}
    tail = list(Simulation(config).run(state_from_bytes(blob)))
    assert [seeded(r) for r in head + tail] == [seeded(r) for r in whole]
    # the residuals matter: a resume that lost them sends other updates
    forgetful = head[-1].state.evolve(extra={k: v for k, v in head[-1].state.extra.items() if k != RESIDUALS})
    assert [r.test_loss for r in Simulation(config).run(forgetful)] != [r.test_loss for r in tail]


@pytest.mark.parametrize("compression", [dict(compression="topk", compression_ratio=0.2), dict(compression="quantize", compression_bits=4)])
def test_compressed_runs_give_the_same_numbers_with_either_executor(compression):
    # Clients train on all their samples: with a fifth held out, two coordinates of one update are so
    # near in size that the default CPU kernels' rounding orders them the other way in one executor,
    # top-k sends a different coordinate, and the parameters differ by 7e-3.
    kw = dict(rounds=3, clients_per_round=4, error_feedback=True, client_test_fraction=0, **compression)
    seq, vec = run(executor="sequential", **kw), run(executor="vectorized", **kw)
    for a, b in zip(seq, vec):
        assert a.bytes_received == b.bytes_received
        assert a.test_loss == pytest.approx(b.test_loss, rel=1e-4)
        assert torch.allclose(a.state.params, b.state.params, atol=1e-4)


def test_compression_still_learns():
    assert run(rounds=5, compression="topk", compression_ratio=0.2, error_feedback=True)[-1].test_accuracy > 0.6


# Validation -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"compression_bits": 0}, "compression_bits=0 is invalid: input should be greater than or equal to 1"),
        ({"compression_bits": 17}, "compression_bits=17 is invalid: input should be less than or equal to 16"),
        ({"compression_ratio": 0}, "compression_ratio=0 is invalid: input should be greater than 0"),
        ({"compression_ratio": 1.5}, "compression_ratio=1.5 is invalid: input should be less than or equal to 1"),
        ({"compression": "zip"}, "compression='zip' is not a known compression; choose one of: none, topk, quantize"),
    ],
)
def test_bad_compression_settings_are_refused_with_a_sentence_naming_the_field(values, expected):
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.create(**values)
    assert [p.field for p in err.value.problems] == list(values)
    assert expected in str(err.value)
