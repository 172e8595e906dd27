"""Vectorized local training: all clients of a round as one batched computation.

The sequential executor (`local.py`) trains one `nn.Module` per client with `torch.optim.SGD`.
This executor gives the same numbers, but keeps every client's parameters as one row of a
`[clients, P]` matrix and runs one forward and one backward pass per local step for all of
them: linear layers become batched matmuls over stacked weights (`torch.baddbmm`), convolutions
become one grouped convolution (client c's channels form group c), and the backward pass is
written out layer by layer with ATen's own backward kernels, so no autograd graph, no
per-client module, DataLoader or optimizer object exists inside a round.

Equivalence with the sequential reference, for the same seed:

- Batches: each client's mini-batches come from `batch_order`, the function the sequential
  executor uses. They are laid out as index tensors `[steps, clients, batch]`; a client's short
  last batch of an epoch is padded, and padded samples get weight 0, real ones weight
  1 / (real batch size), so the loss gradient is that of `F.cross_entropy`'s mean.
- Steps: clients are sorted by step count, so at step s the clients still training are a
  prefix of the chunk; a client whose steps are done is not touched at all (no parameter or
  momentum change), exactly as if it had stopped.
- Update: PyTorch's SGD written out, g = grad + mu (w - w_global) + correction + wd w,
  buf = momentum buf + g (buf = g on the first step, since buf starts at 0), w -= lr buf.
  FedProx (Li et al. 2020) is the mu term, SCAFFOLD (Karimireddy et al. 2020) the correction.
- Label flipping: a flipping client's labels are flipped before training, as in the reference.

Memory: clients go through in chunks of `chunk_size` (or as many as fit `memory_budget`
bytes of parameter, gradient, momentum and activation copies), so memory grows with the chunk,
never with the number of clients in the round or in the federation. The returned deltas are
`[n, P]`, as for the sequential executor.

Models: `nn.Sequential` of Linear, Conv2d, ReLU, MaxPool2d and Flatten, without buffers (every
registered model). `supports(model)` says whether a model qualifies; `auto` falls back to the
sequential executor when it does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from flcore.training.local import ClientTask, LocalSettings, TrainedClients, batch_order

DEFAULT_MEMORY_BUDGET = 256 * 2**20  # bytes of per-chunk working copies when chunk_size is None
_aten = torch.ops.aten


def unsupported_reason(model: nn.Module) -> str | None:
    """Why the vectorized executor cannot train `model`, or None when it can."""
    if not isinstance(model, nn.Sequential):
        return f"it handles nn.Sequential models only, not {type(model).__name__}"
    if any(True for _ in model.buffers()):
        return "the model has buffers (e.g. BatchNorm statistics), which are state outside the parameters"
    for layer in model:
        if type(layer) not in _LAYERS:
            return f"it has no batched version of layer {type(layer).__name__}"
        if isinstance(layer, nn.Flatten) and (layer.start_dim, layer.end_dim) != (1, -1):
            return "it handles nn.Flatten() over all feature dimensions only"
        if isinstance(layer, nn.Conv2d) and (
            layer.groups != 1 or layer.padding_mode != "zeros" or isinstance(layer.padding, str)
        ):
            return "it handles Conv2d with groups=1, zero padding given as numbers only"
        if isinstance(layer, nn.MaxPool2d) and layer.return_indices:
            return "it handles MaxPool2d without return_indices only"
    return None


def supports(model: nn.Module) -> bool:
    return unsupported_reason(model) is None


# Batched layers --------------------------------------------------------------------------
# Activations travel in one of two layouts: "rows" [clients, batch, features] for dense layers,
# and "grouped" [batch, clients * channels, H, W] for convolutions, where client c owns channels
# c*C .. (c+1)*C - 1, so one grouped convolution applies each client's own kernels.
# Each layer's `forward(weights, x)` returns (output, saved) and `backward(weights, saved,
# grad_out, need_input_grad)` returns (grad_in, [grad of each weight, as [clients, numel]]).


class _Linear:
    layout_in = layout_out = "rows"

    def __init__(self, layer: nn.Linear) -> None:
        self.shapes = [tuple(layer.weight.shape)] + ([tuple(layer.bias.shape)] if layer.bias is not None else [])

    def forward(self, ws, x):
        w = ws[0]
        if len(ws) == 2:
            return torch.baddbmm(ws[1].unsqueeze(1), x, w.transpose(1, 2)), x
        return torch.bmm(x, w.transpose(1, 2)), x

    def backward(self, ws, x, g, need_input_grad):
        a = g.shape[0]
        grads = [torch.bmm(g.transpose(1, 2), x).view(a, -1)]
        if len(ws) == 2:
            grads.append(g.sum(1))
        return (torch.bmm(g, ws[0]) if need_input_grad else None), grads


class _Conv2d:
    layout_in = layout_out = "grouped"

    def __init__(self, layer: nn.Conv2d) -> None:
        self.shapes = [tuple(layer.weight.shape)] + ([tuple(layer.bias.shape)] if layer.bias is not None else [])
        self.stride, self.padding, self.dilation = list(layer.stride), list(layer.padding), list(layer.dilation)

    def _kernels(self, ws):
        a, out_ch = ws[0].shape[:2]
        w = ws[0].reshape(a * out_ch, *ws[0].shape[2:])
        return w, (ws[1].reshape(a * out_ch) if len(ws) == 2 else None)

    def forward(self, ws, x):
        w, b = self._kernels(ws)
        out = F.conv2d(x, w, b, self.stride, self.padding, self.dilation, groups=ws[0].shape[0])
        return out, (x, w, b)

    def backward(self, ws, saved, g, need_input_grad):
        (x, w, b), a = saved, ws[0].shape[0]
        gx, gw, gb = _aten.convolution_backward(
            g, x, w, [w.shape[0]] if b is not None else None,
            self.stride, self.padding, self.dilation, False, [0, 0], a,
            [need_input_grad, True, b is not None],
        )
        return gx, [gw.reshape(a, -1)] + ([gb.view(a, -1)] if b is not None else [])


class _ReLU:
    layout_in = layout_out = None  # keeps whatever layout it is given
    shapes: list = []

    def forward(self, ws, x):
        out = torch.relu(x)
        return out, out

    def backward(self, ws, out, g, need_input_grad):
        return _aten.threshold_backward(g, out, 0), []


class _MaxPool2d:
    layout_in = layout_out = "grouped"
    shapes: list = []

    def __init__(self, layer: nn.MaxPool2d) -> None:
        pair = lambda v: list(v) if isinstance(v, (tuple, list)) else [v, v]  # noqa: E731
        stride = layer.stride if layer.stride is not None else layer.kernel_size
        self.args = (pair(layer.kernel_size), pair(stride), pair(layer.padding), pair(layer.dilation), layer.ceil_mode)

    def forward(self, ws, x):
        out, where = _aten.max_pool2d_with_indices(x, *self.args)
        return out, (x, where)

    def backward(self, ws, saved, g, need_input_grad):
        x, where = saved
        return _aten.max_pool2d_with_indices_backward(g, x, *self.args, where), []


class _Flatten:
    layout_in, layout_out = None, "rows"
    shapes: list = []

    def __init__(self, grouped_channels: int) -> None:
        self.channels = grouped_channels  # channels per client of a grouped input; 0 for rows

    def forward(self, ws, x):
        if not self.channels:
            return x, None
        batch, a = x.shape[0], x.shape[1] // self.channels
        # [batch, a*C, H, W] -> [a, batch, C*H*W], each client's features in (C, H, W) order
        return x.unflatten(1, (a, self.channels)).transpose(0, 1).reshape(a, batch, -1), x.shape

    def backward(self, ws, shape, g, need_input_grad):
        if not self.channels:
            return g, []
        a, batch = g.shape[:2]
        out = torch.empty(shape, device=g.device, dtype=g.dtype, memory_format=torch.channels_last)
        out.unflatten(1, (a, self.channels)).copy_(g.view(a, batch, self.channels, *shape[2:]).transpose(0, 1))
        return out, []


_LAYERS = {nn.Linear: _Linear, nn.Conv2d: _Conv2d, nn.ReLU: _ReLU, nn.MaxPool2d: _MaxPool2d, nn.Flatten: _Flatten}


@dataclass(frozen=True)
class _Net:
    """The model as batched layers, for one input shape."""

    layers: list
    offsets: list[list[tuple[int, int, tuple[int, ...]]]]  # per layer: (start, end, shape) of each weight
    grouped_input: bool  # images enter as [batch, clients * channels, H, W]
    activation_floats: int  # activation values per sample, summed over layers


def _compile(model: nn.Sequential, sample_shape: tuple[int, ...]) -> _Net:
    grouped = len(sample_shape) == 3 and not isinstance(model[0], nn.Flatten)
    layout = "grouped" if grouped else "rows"
    layers, offsets, start = [], [], 0
    probe = torch.zeros(1, *sample_shape, device=next(model.parameters()).device)
    activations = 0
    with torch.no_grad():
        for module in model:
            layer = _Flatten(probe.shape[1] if layout == "grouped" else 0) if isinstance(module, nn.Flatten) else (
                _LAYERS[type(module)](module) if type(module) in (nn.Linear, nn.Conv2d, nn.MaxPool2d) else _ReLU()
            )
            if layer.layout_in not in (None, layout):
                raise ValueError(f"the vectorized executor cannot apply {type(module).__name__} to {layout} activations")
            layout = layer.layout_out or layout
            spans = []
            for shape in layer.shapes:
                spans.append((start, start + math.prod(shape), shape))
                start += math.prod(shape)
            layers.append(layer)
            offsets.append(spans)
            probe = module(probe)
            activations += probe.numel()
    if layout != "rows" or probe.dim() != 2:
        raise ValueError("the vectorized executor needs a model that ends in class scores of shape [batch, classes]")
    return _Net(layers, offsets, grouped, activations + math.prod(sample_shape))


# The executor -----------------------------------------------------------------------------


class VectorizedExecutor:
    """Trains a round's clients together, in chunks, with the sequential executor's numbers."""

    name = "vectorized"

    def __init__(
        self,
        model: nn.Module,
        settings: LocalSettings,
        num_classes: int,
        seed: int,
        chunk_size: int | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ) -> None:
        reason = unsupported_reason(model)
        if reason:
            raise ValueError(f"the vectorized executor cannot train this model: {reason}")
        self.model, self.settings, self.num_classes, self.seed = model, settings, num_classes, seed
        self.chunk_size, self.memory_budget = chunk_size, memory_budget
        self.num_params = sum(p.numel() for p in model.parameters())
        self._nets: dict[tuple[int, ...], _Net] = {}

    def _net(self, sample_shape: tuple[int, ...]) -> _Net:
        if sample_shape not in self._nets:
            self._nets[sample_shape] = _compile(self.model, sample_shape)
        return self._nets[sample_shape]

    def clients_per_chunk(self, sample_shape: tuple[int, ...], batch: int, steps: int) -> int:
        """`chunk_size`, or how many clients' working copies fit in `memory_budget`."""
        if self.chunk_size is not None:
            return self.chunk_size
        s = self.settings
        copies = 4 + (s.momentum > 0)  # params, layer gradients, their concatenation, correction, momentum
        net = self._net(sample_shape)
        activations = 3 * batch * net.activation_floats  # outputs kept for backward, and their gradients
        layout = steps * batch * (2 * self.num_classes + 6)  # logits, targets, indices, labels, weights
        if not net.grouped_input:  # dense inputs are gathered for the whole chunk at once
            layout += steps * batch * math.prod(sample_shape)
        per_client = 4 * (copies * self.num_params + activations + layout)
        return max(1, self.memory_budget // per_client)

    def train(
        self,
        global_params: torch.Tensor,
        tasks: list[ClientTask],
        x: torch.Tensor,
        y: torch.Tensor,
        round_: int,
        corrections: torch.Tensor | None = None,
    ) -> TrainedClients:
        s, n, device = self.settings, len(tasks), global_params.device
        net = self._net(tuple(x.shape[1:]))
        sizes = np.array([len(t.indices) for t in tasks], dtype=np.int64)
        steps = s.epochs * -(-sizes // s.batch_size)
        order = np.argsort(-steps, kind="stable")  # most steps first: active clients form a prefix
        batch = int(min(s.batch_size, sizes.max(initial=1)))
        chunk = self.clients_per_chunk(tuple(x.shape[1:]), batch, int(steps.max(initial=0)))

        deltas = torch.empty(n, self.num_params, device=device, dtype=global_params.dtype)
        loss_sum = torch.zeros(n, device=device)
        correct = torch.zeros(n, device=device)
        for start in range(0, n, chunk):
            rows = order[start : start + chunk]
            part = [tasks[i] for i in rows]
            corr = None if corrections is None else corrections[torch.as_tensor(rows, device=corrections.device)]
            d, l, c = self._train_chunk(net, global_params, part, x, y, round_, corr)
            where = torch.as_tensor(rows, device=device)
            deltas[where], loss_sum[where], correct[where] = d, l, c
        seen = torch.as_tensor(s.epochs * sizes, dtype=torch.float32).clamp_min(1)
        return TrainedClients(
            deltas,
            torch.as_tensor(sizes, dtype=torch.float32),
            torch.as_tensor(steps, dtype=torch.float32),
            loss_sum.cpu() / seen,
            correct.cpu() / seen,
        )

    def _layout(self, tasks: list[ClientTask], round_: int):
        """Index and weight tensors [steps, clients, batch] for a chunk, built on the CPU.

        Positions index the chunk's concatenated sample lists; a padded slot points at the
        client's first sample and has weight 0.
        """
        s = self.settings
        sizes = [len(t.indices) for t in tasks]
        batch = max(1, min(s.batch_size, max(sizes)))
        per_epoch = [-(-m // s.batch_size) for m in sizes]
        num_steps = s.epochs * per_epoch[0]  # tasks arrive sorted by steps, most first
        pos = np.zeros((num_steps, len(tasks), batch), dtype=np.int64)
        valid = np.zeros((num_steps, len(tasks), batch), dtype=bool)
        offset = 0
        for j, (task, m, nb) in enumerate(zip(tasks, sizes, per_epoch)):
            if m:
                order = torch.cat(batch_order(m, s, self.seed, round_, task.client_id)).numpy()
                slots = np.full((s.epochs, nb * s.batch_size), -1, dtype=np.int64)
                slots[:, :m] = order.reshape(s.epochs, m)
                slots = slots.reshape(s.epochs * nb, s.batch_size)[:, :batch]
                ok = slots >= 0
                pos[: len(slots), j] = np.where(ok, slots, 0) + offset
                valid[: len(slots), j] = ok
            offset += m
        counts = valid.sum(2, keepdims=True)
        weights = valid / np.maximum(counts, 1)
        active = (counts[:, :, 0] > 0).sum(1)  # clients still training at each step
        return pos, valid, weights.astype(np.float32), active.tolist()

    def _train_chunk(self, net, global_params, tasks, x, y, round_, corr):
        s, device, k = self.settings, global_params.device, self.num_classes
        pos, valid, weights, active = self._layout(tasks, round_)
        num_steps, width, batch = pos.shape
        indices = torch.cat([t.indices.to(device) for t in tasks])
        idx = indices[torch.from_numpy(pos).to(device)]  # [steps, clients, batch] rows of x
        labels = y[idx]
        if any(t.flip_labels for t in tasks):
            flips = torch.tensor([t.flip_labels for t in tasks], device=device)
            labels = torch.where(flips[None, :, None], k - 1 - labels, labels)
        valid_t = torch.from_numpy(valid).to(device)
        sample_w = torch.from_numpy(weights).to(device).unsqueeze(3)
        # d loss / d logits = softmax * w - onehot * w: the target part is known before training
        target_w = torch.zeros(num_steps, width, batch, k, device=device).scatter_(3, labels.unsqueeze(3), sample_w)
        if net.grouped_input:
            idx = idx.transpose(1, 2).contiguous()  # [steps, batch, clients]: gathers [batch, clients, ...]
        else:
            inputs = x[idx].view(num_steps, width, batch, -1)  # one gather for the chunk
        logits_all = torch.zeros(num_steps, width, batch, k, device=device)

        params = global_params.unsqueeze(0).repeat(width, 1)  # [clients, P], one row per client
        momentum = torch.zeros_like(params) if s.momentum else None
        decay = s.weight_decay + s.prox_mu
        prox_anchor = s.prox_mu * global_params if s.prox_mu else None
        full = [[params[:, i:j].view(width, *shape) for i, j, shape in spans] for spans in net.offsets]
        per_step = zip(sample_w.unbind(0), target_w.unbind(0), logits_all.unbind(0), *([] if net.grouped_input else [inputs.unbind(0)]))
        for step, (a, (w_s, t_s, logits_s, *x_s)) in enumerate(zip(active, per_step)):
            # Clients [0, a) still train at this step; slicing is skipped while all of them do.
            cut = (lambda t: t) if a == width else (lambda t: t[:a])  # noqa: E731
            p, ws = cut(params), [[cut(w) for w in layer] for layer in full]
            if net.grouped_input:  # channels-last: oneDNN's grouped convolution is fastest so
                h = x[idx[step, :, :a]]
                h = h.view(batch, a * h.shape[2], *h.shape[3:]).contiguous(memory_format=torch.channels_last)
            else:
                h = cut(x_s[0])
            saved = []
            for layer, wl in zip(net.layers, ws):
                h, keep = layer.forward(wl, h)
                saved.append(keep)
            cut(logits_s).copy_(h)
            g = torch.softmax(h, 2).mul_(cut(w_s)).sub_(cut(t_s))
            grads = []
            for i in range(len(net.layers) - 1, -1, -1):
                g, gw = net.layers[i].backward(ws[i], saved[i], g, i > 0)
                grads[:0] = gw
            g = torch.cat(grads, 1) if len(grads) > 1 else grads[0]
            # PyTorch SGD: d = grad + prox + correction + wd * p; buf = m buf + d; p -= lr buf
            if decay:
                g.add_(p, alpha=decay)
            if prox_anchor is not None:
                g.sub_(prox_anchor)
            if corr is not None:
                g.add_(cut(corr))
            if momentum is not None:
                g = cut(momentum).mul_(s.momentum).add_(g)
            p.sub_(g, alpha=s.lr)

        log_p = torch.log_softmax(logits_all, 3)
        nll = -log_p.gather(3, labels.unsqueeze(3)).squeeze(3)
        loss_sum = (nll * valid_t).sum((0, 2))
        correct = ((logits_all.argmax(3) == labels) & valid_t).sum((0, 2)).float()
        return params.sub_(global_params), loss_sum, correct
