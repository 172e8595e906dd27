"""Vectorized local training: all clients of a round as one batched computation.

The sequential executor (`local.py`) trains one `nn.Module` per client with `torch.optim.SGD`.
This executor gives the same numbers, but stacks the clients' copies of each parameter along a
leading dimension (`[clients, *shape]`) and runs one forward and one backward pass per local
step for all of them: linear layers become batched matmuls over stacked weights
(`torch.baddbmm`), convolutions become one grouped convolution (client c's channels form group
c), and the backward pass is written out layer by layer with ATen's own backward kernels, so no
autograd graph, no per-client module, DataLoader or optimizer object exists inside a round.
Each client reads its own batches from the data tensors where they lie (CPU or CUDA).
(`torch.func.vmap` over `functional_call` is the other way to batch; on the CPU it measured
about 4x slower on workload A of `benchmarks/engine.py --vmap`, see benchmarks/README.md.)

Equivalence with the sequential reference, for the same seed:

- Batches: each client's mini-batches come from `batch_order`, the function the sequential
  executor uses. They are laid out as index tensors `[steps, clients, batch]`; a client's short
  last batch of an epoch is padded, and padded samples get weight 0, real ones weight
  1 / (real batch size), so the loss gradient is that of `F.cross_entropy`'s mean.
- Steps: clients are sorted by step count, so at step s the clients still training are a
  prefix of the chunk; a client whose steps are done is not touched at all (no parameter or
  momentum change), exactly as if it had stopped. A task's `max_steps` (a straggler's partial
  work) only shortens its step count, so it is the same rule.
- Update: the shared `LocalObjective` (objective.py) adds weight decay, FedProx's proximal
  gradient (Li et al. 2020) and SCAFFOLD's correction (Karimireddy et al. 2020) to each stacked
  gradient, then PyTorch's SGD step is written out: buf = momentum buf + d (buf = d on the first
  step, since buf starts at 0), w -= lr buf.
- Label flipping: a flipping client's labels are flipped before training, as in the reference.

Memory: clients go through in chunks of `chunk_size` (or as many as fit `memory_budget`
bytes of parameter, gradient, momentum and activation copies, and on the CPU as many as keep
their parameter state near the cache), so memory grows with the chunk, never with the number
of clients in the round or in the federation. The returned deltas are `[n, P]`, as for the
sequential executor; SCAFFOLD's corrections arrive as `[n, P]` from the strategy.

Models: `nn.Sequential` of Linear, Conv2d, ReLU, MaxPool2d and Flatten, without buffers (every
registered model but the character LSTM: embeddings and LSTMs have no batched version here).
`supports(model)` says whether a model qualifies; `auto` falls back to the sequential executor
when it does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from flcore.training.base import EXECUTORS, ClientsDone, ClientTask, ExecutorSpec, TrainedClients, TrainingData, throttled
from flcore.training.local import SequentialExecutor, batch_order, local_steps, samples_in_steps
from flcore.training.objective import LocalObjective, LocalSettings

DEFAULT_MEMORY_BUDGET = 256 * 2**20  # bytes of per-chunk working copies when chunk_size is None
# On the CPU a chunk's parameters, gradients and momentum should also stay near the cache: past
# that, every step streams them from memory. Measured on 2 cores, MLP (2NN, 199k parameters),
# 100 clients: 0.18 s/round in chunks of 10, 0.37-0.68 s in one chunk of 100.
CPU_CHUNK_STATE = 32 * 2**20
_aten = torch.ops.aten


def unsupported_reason(model: nn.Module) -> str | None:
    """Why the vectorized executor cannot train `model`, or None when it can."""
    recurrent = sorted({type(m).__name__ for m in model.modules() if isinstance(m, (nn.Embedding, nn.RNNBase))})
    if recurrent:
        return f"it has no batched version of embeddings or recurrent layers ({', '.join(recurrent)}); the sequential executor trains them"
    if not isinstance(model, nn.Sequential):
        return f"it handles nn.Sequential models only, not {type(model).__name__}"
    if not any(True for _ in model.parameters()):
        return "the model has no parameters to train"
    if any(True for _ in model.buffers()):
        return "the model has buffers (e.g. BatchNorm statistics), which are state outside the parameters"
    for layer in model:
        if type(layer) not in _LAYERS:
            return f"it has no batched version of layer {type(layer).__name__}"
        if isinstance(layer, nn.Flatten) and (layer.start_dim, layer.end_dim) != (1, -1):
            return "it handles nn.Flatten() over all feature dimensions only"
        if isinstance(layer, nn.Conv2d) and (layer.groups != 1 or layer.padding_mode != "zeros" or isinstance(layer.padding, str)):
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
# Weights come stacked, [clients, *shape]. A layer's `forward(weights, x)` returns (output,
# saved); `backward(weights, saved, grad_out, need_input_grad, out)` writes each weight's
# gradient into the preallocated `out` tensors and returns the gradient of its input. Writing
# into buffers that live for the whole chunk matters on the CPU: a fresh [clients, P] tensor
# per step is, for a large model, a fresh mmap and tens of thousands of page faults per step.


class _Linear:
    layout_in = layout_out = "rows"

    def __init__(self, layer: nn.Linear) -> None:
        self.shapes = [tuple(layer.weight.shape)] + ([tuple(layer.bias.shape)] if layer.bias is not None else [])

    def forward(self, ws, x):
        w = ws[0]
        if len(ws) == 2:
            return torch.baddbmm(ws[1].unsqueeze(1), x, w.transpose(1, 2)), x
        return torch.bmm(x, w.transpose(1, 2)), x

    def backward(self, ws, x, g, need_input_grad, out):
        torch.bmm(g.transpose(1, 2), x, out=out[0])
        if len(ws) == 2:
            torch.sum(g, 1, out=out[1])
        return torch.bmm(g, ws[0]) if need_input_grad else None


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

    def backward(self, ws, saved, g, need_input_grad, out):
        x, w, b = saved
        gx, gw, gb = _aten.convolution_backward(
            g,
            x,
            w,
            [w.shape[0]] if b is not None else None,
            self.stride,
            self.padding,
            self.dilation,
            False,
            [0, 0],
            ws[0].shape[0],
            [need_input_grad, True, b is not None],
        )
        out[0].view(w.shape).copy_(gw)
        if b is not None:
            out[1].view(b.shape).copy_(gb)
        return gx


class _ReLU:
    layout_in = layout_out = None  # keeps whatever layout it is given
    shapes: list = []

    def forward(self, ws, x):
        out = torch.relu(x)
        return out, out

    def backward(self, ws, saved, g, need_input_grad, out):
        return _aten.threshold_backward(g, saved, 0)


class _MaxPool2d:
    layout_in = layout_out = "grouped"
    shapes: list = []

    def __init__(self, layer: nn.MaxPool2d) -> None:
        pair = lambda v: list(v) if isinstance(v, (tuple, list)) else [v, v]
        stride = layer.stride if layer.stride is not None else layer.kernel_size
        self.args = (pair(layer.kernel_size), pair(stride), pair(layer.padding), pair(layer.dilation), layer.ceil_mode)

    def forward(self, ws, x):
        out, where = _aten.max_pool2d_with_indices(x, *self.args)
        return out, (x, where)

    def backward(self, ws, saved, g, need_input_grad, out):
        x, where = saved
        return _aten.max_pool2d_with_indices_backward(g, x, *self.args, where)


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

    def backward(self, ws, shape, g, need_input_grad, out):
        if not self.channels:
            return g
        a, batch = g.shape[:2]
        gx = torch.empty(shape, device=g.device, dtype=g.dtype, memory_format=torch.channels_last)
        gx.unflatten(1, (a, self.channels)).copy_(g.view(a, batch, self.channels, *shape[2:]).transpose(0, 1))
        return gx


_LAYERS = {nn.Linear: _Linear, nn.Conv2d: _Conv2d, nn.ReLU: _ReLU, nn.MaxPool2d: _MaxPool2d, nn.Flatten: _Flatten}


@dataclass(frozen=True)
class _Net:
    """The model as batched layers, for one input shape."""

    layers: list
    weights: list[list[int]]  # per layer: positions of its weights in model.parameters()
    shapes: list[tuple[int, ...]]  # of each parameter, in model.parameters() order
    grouped_input: bool  # images enter as [batch, clients * channels, H, W]
    activation_floats: int  # activation values per sample, summed over layers

    @property
    def first_weighted(self) -> int:
        """The first layer with weights: backpropagation stops there."""
        return next(i for i, slots in enumerate(self.weights) if slots)


def _compile(model: nn.Sequential, sample_shape: tuple[int, ...]) -> _Net:
    grouped = len(sample_shape) == 3 and not isinstance(model[0], nn.Flatten)
    layout = "grouped" if grouped else "rows"
    layers, weights, shapes = [], [], []
    probe = torch.zeros(1, *sample_shape, device=next(model.parameters()).device)
    activations = 0
    with torch.no_grad():
        for module in model:
            layer = (
                _Flatten(probe.shape[1] if layout == "grouped" else 0)
                if isinstance(module, nn.Flatten)
                else (_LAYERS[type(module)](module) if type(module) in (nn.Linear, nn.Conv2d, nn.MaxPool2d) else _ReLU())
            )
            if layer.layout_in not in (None, layout):
                raise ValueError(f"the vectorized executor cannot apply {type(module).__name__} to {layout} activations")
            layout = layer.layout_out or layout
            weights.append(list(range(len(shapes), len(shapes) + len(layer.shapes))))
            shapes.extend(layer.shapes)
            layers.append(layer)
            probe = module(probe)
            activations += probe.numel()
    if layout != "rows" or probe.dim() != 2:
        raise ValueError("the vectorized executor needs a model that ends in class scores of shape [batch, classes]")
    return _Net(layers, weights, shapes, grouped, activations + math.prod(sample_shape))


# The executor -----------------------------------------------------------------------------


class VectorizedExecutor:
    """Trains a round's clients together, in chunks, with the sequential executor's numbers."""

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
        self.objective = LocalObjective(settings)
        self.chunk_size, self.memory_budget = chunk_size, memory_budget
        self.num_params = sum(p.numel() for p in model.parameters())
        self._nets: dict[tuple[int, ...], _Net] = {}

    def close(self) -> None:
        """Nothing is held between rounds."""

    def _net(self, sample_shape: tuple[int, ...]) -> _Net:
        if sample_shape not in self._nets:
            self._nets[sample_shape] = _compile(self.model, sample_shape)
        return self._nets[sample_shape]

    def clients_per_chunk(self, sample_shape: tuple[int, ...], batch: int, steps: int, device: torch.device | str = "cpu") -> int:
        """`chunk_size`, or how many clients' working copies fit in `memory_budget` (and, on
        the CPU, how many clients' parameter state fits in `CPU_CHUNK_STATE`)."""
        if self.chunk_size is not None:
            return self.chunk_size
        s = self.settings
        state = 2 + (s.momentum > 0)  # params, gradients, momentum: touched at every step
        copies = state + 2  # and the correction rows and the deltas, once per chunk
        net = self._net(sample_shape)
        activations = 3 * batch * net.activation_floats  # outputs kept for backward, and their gradients
        layout = steps * batch * (2 * self.num_classes + 6)  # logits, targets, indices, labels, weights
        per_client = 4 * (copies * self.num_params + activations + layout)
        chunk = self.memory_budget // per_client
        if torch.device(device).type == "cpu":
            chunk = min(chunk, CPU_CHUNK_STATE // (4 * state * self.num_params))
        return max(1, chunk)

    def train(
        self,
        global_params: torch.Tensor,
        tasks: list[ClientTask],
        data: TrainingData,
        round_: int,
        corrections: torch.Tensor | None = None,
        on_clients: ClientsDone | None = None,
        starts: torch.Tensor | None = None,
        trainable: torch.Tensor | None = None,
    ) -> TrainedClients:
        x, y = data.tensors()
        report = throttled(on_clients)
        s, n, device = self.settings, len(tasks), global_params.device
        net = self._net(tuple(x.shape[1:]))
        sizes = np.array([len(t.indices) for t in tasks], dtype=np.int64)
        steps = np.array([local_steps(len(t.indices), s, t.max_steps) for t in tasks], dtype=np.int64)
        order = np.argsort(-steps, kind="stable")  # most steps first: active clients form a prefix
        batch = int(min(s.batch_size, sizes.max(initial=1)))
        chunk = self.clients_per_chunk(tuple(x.shape[1:]), batch, int(steps.max(initial=0)), device)

        deltas = torch.empty(n, self.num_params, device=device, dtype=global_params.dtype)
        loss_sum = torch.zeros(n, device=device)
        correct = torch.zeros(n, device=device)
        for start in range(0, n, chunk):
            rows = order[start : start + chunk]
            part = [tasks[i] for i in rows]
            corr = None if corrections is None else corrections[torch.as_tensor(rows, device=corrections.device)]
            begin = None if starts is None else starts[torch.as_tensor(rows, device=starts.device)]
            d, chunk_loss, c = self._train_chunk(net, global_params, part, x, y, round_, corr, begin, trainable)
            where = torch.as_tensor(rows, device=device)
            deltas[where], loss_sum[where], correct[where] = d, chunk_loss, c
            report(start + len(rows), n)
        seen = torch.as_tensor([samples_in_steps(m, s.batch_size, k) for m, k in zip(sizes, steps)], dtype=torch.float32).clamp_min(1)
        return TrainedClients(
            self.objective.finish(deltas),
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
        limits = [local_steps(m, s, t.max_steps) for t, m in zip(tasks, sizes)]
        num_steps = limits[0]  # tasks arrive sorted by steps, most first
        pos = np.zeros((num_steps, len(tasks), batch), dtype=np.int64)
        valid = np.zeros((num_steps, len(tasks), batch), dtype=bool)
        offset = 0
        for j, (task, m, nb, limit) in enumerate(zip(tasks, sizes, per_epoch, limits)):
            if m:
                order = torch.cat(batch_order(m, s, self.seed, round_, task.client_id)).numpy()
                slots = np.full((s.epochs, nb * s.batch_size), -1, dtype=np.int64)
                slots[:, :m] = order.reshape(s.epochs, m)
                slots = slots.reshape(s.epochs * nb, s.batch_size)[:limit, :batch]  # a straggler's first `limit` steps
                ok = slots >= 0
                pos[: len(slots), j] = np.where(ok, slots, 0) + offset
                valid[: len(slots), j] = ok
            offset += m
        counts = valid.sum(2, keepdims=True)
        weights = valid / np.maximum(counts, 1)
        active = (counts[:, :, 0] > 0).sum(1)  # clients still training at each step
        return pos, valid, weights.astype(np.float32), active.tolist()

    def _train_chunk(self, net, global_params, tasks, x, y, round_, corr, starts=None, trainable=None):
        s, device, classes = self.settings, global_params.device, self.num_classes
        pos, valid, weights, active = self._layout(tasks, round_)
        num_steps, width, batch = pos.shape
        # Only the clients still training at a step are kept, packed step after step (rows
        # first[k]:first[k + 1] are step k's): with uneven clients most of the steps x clients
        # grid is padding (workload D: 100 steps x 100 clients, 3% of it training), and the
        # per-sample tensors below would cost in proportion to the grid, not to the work.
        live = np.arange(width)[None, :] < np.asarray(active)[:, None]  # [steps, clients]
        first = np.concatenate([[0], np.cumsum(active)]).tolist()
        indices = torch.cat([t.indices.to(device) for t in tasks])
        idx = indices[torch.from_numpy(pos[live]).to(device)]  # [rows, batch] rows of x
        labels = y[idx]
        if any(t.flip_labels for t in tasks):
            flips = torch.tensor([t.flip_labels for t in tasks], device=device)[torch.from_numpy(np.nonzero(live)[1]).to(device)]
            labels = torch.where(flips[:, None], classes - 1 - labels, labels)
        live_t = torch.from_numpy(live).to(device)
        valid_t = torch.from_numpy(valid[live]).to(device)
        sample_w = torch.from_numpy(weights[live]).to(device).unsqueeze(2)
        # d loss / d logits = softmax * w - onehot * w: the target part is known before training
        target_w = torch.zeros(len(idx), batch, classes, device=device)
        target_w.scatter_(2, labels.unsqueeze(2), sample_w)
        logits_all = torch.zeros(len(idx), batch, classes, device=device)

        # One stacked tensor per parameter, [clients, *shape]; row c is client c's copy.
        cuts = np.cumsum([0] + [math.prod(shape) for shape in net.shapes]).tolist()
        global_w = [global_params[i:j].view(shape) for i, j, shape in zip(cuts, cuts[1:], net.shapes)]
        spans = list(zip(cuts, cuts[1:], net.shapes))
        if starts is None:
            begin = [w.expand(width, *w.shape) for w in global_w]
        else:  # each client from its own parameters (a personalized method); the proximal anchor stays global
            begin = [starts[:, i:j].view(width, *shape) for i, j, shape in spans]
        params = [w.clone() for w in begin]
        masks = None if trainable is None else [trainable[i:j].view(shape) for i, j, shape in spans]
        grads = [torch.empty_like(w) for w in params]
        momentum = [torch.zeros_like(w) for w in params] if s.momentum else None
        corrections = None if corr is None else [corr[:, i:j].view(width, *shape) for i, j, shape in spans]
        anchors = self.objective.anchors(global_w)

        for step, a in enumerate(active):
            rows = slice(first[step], first[step + 1])
            w_s, t_s, logits_s = sample_w[rows], target_w[rows], logits_all[rows]
            # Clients [0, a) still train at this step; slicing is skipped while all of them do.
            cut = (lambda t: t) if a == width else (lambda t, a=a: t[:a])
            ps, gs = [cut(w) for w in params], [cut(g) for g in grads]
            if net.grouped_input:  # channels-last: oneDNN's grouped convolution is fastest so
                h = x[idx[rows].t().contiguous()]  # [batch, clients, ...]
                h = h.view(batch, a * h.shape[2], *h.shape[3:]).contiguous(memory_format=torch.channels_last)
            else:
                h = x[idx[rows]].view(a, batch, -1)
            saved = []
            for layer, slots in zip(net.layers, net.weights):
                h, keep = layer.forward([ps[i] for i in slots], h)
                saved.append(keep)
            logits_s.copy_(h)
            g = torch.softmax(h, 2).mul_(w_s).sub_(t_s)
            for i in range(len(net.layers) - 1, net.first_weighted - 1, -1):
                slots, need_input_grad = net.weights[i], i > net.first_weighted
                g = net.layers[i].backward([ps[k] for k in slots], saved[i], g, need_input_grad, [gs[k] for k in slots])
            # d = grad + the objective's terms; PyTorch SGD: buf = m buf + d; w -= lr buf
            self.objective.direction(gs, ps, anchors, None if corrections is None else [cut(c) for c in corrections])
            if masks is not None:  # frozen coordinates take no step (their momentum stays 0)
                for d, m in zip(gs, masks):
                    d.mul_(m)
            for k, (w, d) in enumerate(zip(ps, gs)):
                if momentum is not None:
                    d = cut(momentum[k]).mul_(s.momentum).add_(d)
                w.sub_(d, alpha=s.lr)
        deltas = torch.cat([w.sub_(w0).view(width, -1) for w, w0 in zip(params, begin)], 1)

        log_p = torch.log_softmax(logits_all, 2)
        nll = -log_p.gather(2, labels.unsqueeze(2)).squeeze(2)
        # summed on the steps x clients x batch grid, in the order the unpacked tensors were
        grid = torch.zeros(num_steps, width, batch, device=device)
        grid[live_t] = nll * valid_t
        loss_sum = grid.sum((0, 2))
        grid[live_t] = ((logits_all.argmax(2) == labels) & valid_t).float()
        correct = grid.sum((0, 2))
        return deltas, loss_sum, correct


def vectorized(model: nn.Module, config, num_classes: int) -> VectorizedExecutor:
    reason = unsupported_reason(model)
    if reason:
        raise ValueError(f"executor='vectorized' cannot train model={config.model!r}: {reason}; use executor='sequential' or 'auto'")
    return VectorizedExecutor(model, LocalSettings.from_config(config), num_classes, config.seed, chunk_size=config.chunk_size)


def auto(model: nn.Module, config, num_classes: int) -> VectorizedExecutor | SequentialExecutor:
    if supports(model):
        return vectorized(model, config, num_classes)
    return SequentialExecutor(model, LocalSettings.from_config(config), num_classes, config.seed)


EXECUTORS.register(
    "vectorized",
    label="All clients at once (batched)",
    description="A round's clients train as one batched computation, with the same numbers: much faster for many small clients.",
    params=("chunk_size",),
)(ExecutorSpec(vectorized, batched=True))
EXECUTORS.register(
    "auto",
    label="Automatic",
    description="All clients at once where the model allows it, else one after another.",
    params=("chunk_size",),
)(ExecutorSpec(auto))
