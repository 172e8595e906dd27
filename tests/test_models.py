"""Models build for every input shape they accept and refuse the rest with a reason."""

import pytest
import torch
from torch import nn

from flcore.models import MODELS, build_model

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32), (60,)]
TOKENS = ((80,), 81)  # Shakespeare: 80 character ids from a vocabulary of 81


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_shape_or_reason(name, shape):
    spec = MODELS.get(name)
    reason = spec.unsupported(shape)
    if reason:
        assert "needs images of at least" in reason or (spec.tokens and "reads sequences of character ids" in reason)
        return
    model = build_model(name, shape, 10)
    assert model(torch.zeros(4, *shape)).shape == (4, 10)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert not list(model.buffers())


def test_which_models_read_which_inputs():
    readable = {n: [s for s in SHAPES if not MODELS.get(n).unsupported(s)] for n in MODELS.names()}
    assert readable["logistic"] == readable["mlp"] == SHAPES
    assert readable["cnn"] == readable["femnist_cnn"] == SHAPES[:3]
    assert readable["cifar_cnn"] == [(1, 28, 28), (3, 32, 32)]
    assert readable["char_lstm"] == []
    sequences = [n for n in MODELS.names() if not MODELS.get(n).unsupported(*TOKENS)]
    assert sequences == ["char_lstm"]
    assert "use model='char_lstm'" in MODELS.get("mlp").unsupported(*TOKENS)


def test_leaf_femnist_cnn_has_leafs_size():
    # LEAF's FEMNIST CNN: conv 5x5x32 (832), conv 5x5x32x64 (51,264), dense 7*7*64 -> 2048 (6,424,576), 2048 -> 62 (127,038)
    params = sum(p.numel() for p in build_model("femnist_cnn", (1, 28, 28), 62).parameters())
    assert params == 832 + 51_264 + 6_424_576 + 127_038
    assert build_model("femnist_cnn", (1, 28, 28), 62)(torch.zeros(2, 1, 28, 28)).shape == (2, 62)


def test_char_lstm_reads_character_ids_and_predicts_from_the_last_step():
    torch.manual_seed(0)
    model = build_model("char_lstm", *TOKENS[:1], 80, vocab_size=TOKENS[1])
    assert (model.embed.num_embeddings, model.embed.embedding_dim) == (81, 8)
    assert (model.lstm.hidden_size, model.lstm.num_layers) == (256, 2)
    ids = torch.randint(0, 81, (3, 80))
    out = model(ids)
    assert out.shape == (3, 80) and not list(model.buffers())
    # The LSTM reads the whole line in order: the same characters shuffled predict something else.
    shuffled = ids[:, torch.randperm(80)]
    assert not torch.allclose(model(shuffled), out)


def test_mcmahan_cnn_has_the_papers_size_on_mnist():
    params = sum(p.numel() for p in build_model("cnn", (1, 28, 28), 10).parameters())
    assert params == 1_663_370  # McMahan et al. 2017 report 1,663,370 parameters
