"""Models build for every input shape they accept and refuse the rest with a reason."""

import pytest
import torch
from torch import nn

from flcore.models import MODELS, build_model

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32), (60,)]


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_shape_or_reason(name, shape):
    spec = MODELS.get(name)
    reason = spec.unsupported(shape)
    if reason:
        assert "needs images of at least" in reason
        return
    model = build_model(name, shape, 10)
    assert model(torch.zeros(4, *shape)).shape == (4, 10)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert not list(model.buffers())


def test_which_models_read_which_inputs():
    readable = {n: [s for s in SHAPES if not MODELS.get(n).unsupported(s)] for n in MODELS.names()}
    assert readable["logistic"] == readable["mlp"] == SHAPES
    assert readable["cnn"] == SHAPES[:3]
    assert readable["cifar_cnn"] == [(1, 28, 28), (3, 32, 32)]


def test_mcmahan_cnn_has_the_papers_size_on_mnist():
    params = sum(p.numel() for p in build_model("cnn", (1, 28, 28), 10).parameters())
    assert params == 1_663_370  # McMahan et al. 2017 report 1,663,370 parameters
