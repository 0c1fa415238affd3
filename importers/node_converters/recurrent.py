"""LSTM, GRU and RNN, unrolled over the sequence, with the rule of Arras et al. (2017).

Arras, Montavon, Müller, Samek, "Explaining recurrent neural network predictions in sentiment
analysis" (WASSA 2017): in a product of a gate and a signal the gate is a constant multiplier,
and relevance follows the signal. Each step is written with ops every backend handles, so the
unrolled layer is an ordinary provenance graph:

LSTM (gates ``i, o, f = σ(…)``, candidate ``g = tanh(W_c x_t + R_c h_{t−1} + b_c)``)::

    c_t = Add(Gate(c_{t−1}, f), Gate(g, i))      h_t = Gate(tanh(c_t), o)

The candidate is one :class:`~provgraph.model.ops.Dense` over ``Concat(x_t, h_{t−1})`` (a linear
op: its rule splits ``g``'s pre-activation among the input, the previous state and the bias), the
Add splits the cell's relevance between ``f ⊙ c_{t−1}`` and ``i ⊙ g`` by the linear rule, and each
Gate passes all of it to its signal (the signal and cell path); the gates ``i, o, f`` get none.

GRU (gates ``z, r``; candidate ``n = tanh(W_h x_t + b_W + r ⊙ (R_h h_{t−1} + b_R))`` with
``linear_before_reset``, or ``tanh(W_h x_t + R_h (r ⊙ h_{t−1}) + b)`` without)::

    h_t = Add(Gate(n, 1 − z), Gate(h_{t−1}, z))

RNN: ``h_t = f(Dense(Concat(x_t, h_{t−1})))``. From the zero initial state the first step has no
state term (a GRU's ``r ⊙ b_R`` is then part of a sample-dependent bias:
:class:`~provgraph.model.ops.GatedBiasDense`).

The layer reads ``layout = 1`` (batch first: :mod:`~provgraph.importers.recurrent_layout` rewrites
the time-major exports); the initial states must be absent or zero, ``sequence_lens`` absent or
the full length, and the activations the defaults. Everything else is refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.registry import register
from provgraph.model.ops import (
    Activation,
    Add,
    Affine,
    Concat,
    Dense,
    Gate,
    GatedBiasDense,
    Reshape,
    Slice,
)

DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"],
                       "RNN": ["Tanh"]}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


@dataclass
class Layer:
    """One direction's weights: ``W (gates·H, F)``, ``R (gates·H, H)``, ``b_W``, ``b_R``."""

    w: np.ndarray
    r: np.ndarray
    bw: np.ndarray
    br: np.ndarray


class Unroller:
    """Emits the ops of one recurrent node, naming every tensor after it."""

    def __init__(self, node: OnnxNode, ctx: ConversionContext) -> None:
        self.node, self.ctx = node, ctx
        kind = node.op_type
        if int(node.attr("layout", 0) or 0) != 1:
            raise ctx.unsupported(
                node, "time-major input (layout 0, (seq, batch, features)) that no Transpose "
                "makes batch-first; provgraph keeps the batch axis first",
            )
        self.x = ctx.computed(node, 0)
        full = ctx.full_shape(self.x)
        if len(full) != 3:
            raise ctx.invalid(node, f"input of sample shape {full[1:]}; expected (seq, features)")
        self.steps, self.features = int(full[1]), int(full[2])
        self.hidden = int(node.attr("hidden_size", 0) or 0)
        direction = node.attr("direction", "forward") or "forward"
        if direction not in ("forward", "reverse", "bidirectional"):
            raise ctx.invalid(node, f"unknown direction {direction!r}")
        self.directions = ["forward", "reverse"] if direction == "bidirectional" else [direction]
        self.check_attributes(kind)
        self.layers = self.read_weights(kind)

    def check_attributes(self, kind: str) -> None:
        node, ctx = self.node, self.ctx
        activations = node.attr("activations", None)
        default = DEFAULT_ACTIVATIONS[kind] * len(self.directions)
        if activations and [a.lower() for a in activations] != [a.lower() for a in default]:
            raise ctx.unsupported(node, f"activations {activations}; only the defaults {default}")
        if node.attr("clip", None) is not None:
            raise ctx.unsupported(node, "cell clipping (clip) is not supported")
        if node.attr("input_forget", 0):
            raise ctx.unsupported(node, "input_forget (coupled input and forget gates)")
        lens = ctx.optional_constant(node, 4, "sequence_lens")
        if lens is not None and np.any(np.asarray(lens) != self.steps):
            raise ctx.unsupported(node, f"sequence_lens {np.asarray(lens).tolist()} shorter "
                                  f"than the sequence ({self.steps})")
        for index, what in ((5, "initial_h"), (6, "initial_c"), (7, "peepholes P")):
            if kind == "LSTM" or index == 5:
                value = ctx.optional_constant(node, index, what)
                if value is not None and np.any(np.asarray(value) != 0):
                    raise ctx.unsupported(node, f"a non-zero {what} is not supported")

    def read_weights(self, kind: str) -> list[Layer]:
        node, ctx, h, d = self.node, self.ctx, self.hidden, len(self.directions)
        g = GATES[kind]
        w = np.asarray(ctx.constant(node, 1, "W"), dtype=np.float64)
        r = np.asarray(ctx.constant(node, 2, "R"), dtype=np.float64)
        b = ctx.optional_constant(node, 3, "B")
        b = np.zeros((d, 2 * g * h)) if b is None else np.asarray(b, dtype=np.float64)
        expected = {"W": (d, g * h, self.features), "R": (d, g * h, h), "B": (d, 2 * g * h)}
        for what, value in (("W", w), ("R", r), ("B", b)):
            if value.shape != expected[what]:
                raise ctx.invalid(node, f"{what} has shape {list(value.shape)}, expected "
                                  f"{list(expected[what])} (hidden_size {h})")
        return [Layer(w[i], r[i], b[i, : g * h], b[i, g * h :]) for i in range(d)]

    # --- emission -------------------------------------------------------------------------------

    def name(self, *parts: object) -> str:
        return ":".join([self.node.outputs[0] or self.node.name, *map(str, parts)])

    def emit(self, op_class, inputs: tuple[str, ...], *parts: object, **fields) -> str:
        out = self.name(*parts)
        self.ctx.emit(op_class(out, inputs, out, source=self.node.op_type, **fields))
        return out

    def dense(self, x: str, weight: np.ndarray, bias: np.ndarray, *parts: object) -> str:
        return self.emit(Dense, (x,), *parts, weight=weight.T.copy(), bias=bias.copy())

    def slice(self, x: str, start: int, stop: int, *parts: object) -> str:
        return self.emit(Slice, (x,), *parts, axes=(1,), starts=(start,), ends=(stop,))

    def act(self, x: str, function: str, *parts: object) -> str:
        return self.emit(Activation, (x,), *parts, function=function)

    def input_at(self, t: int) -> str:
        """``x_t`` of shape ``(1, F)`` (one slice for every direction)."""
        name = self.name("x", t)
        if name not in self.ctx.shapes:
            self.emit(Slice, (self.x,), "x", t, axes=(0,), starts=(t,), ends=(t + 1,))
        return name

    def with_state(self, x: str, h: str | None, *parts: object) -> str:
        return x if h is None else self.emit(Concat, (x, h), *parts, axis=1)

    def stacked(self, w: np.ndarray, r: np.ndarray, h: str | None) -> np.ndarray:
        return w if h is None else np.concatenate([w, r], axis=1)

    def run(self, step) -> None:
        """Unroll every direction with ``step(layer, d, t, x_t, state) → state``; write Y, Y_h
        (and Y_c) where the graph reads them."""
        node, hs, last = self.node, [], []
        for d, direction in enumerate(self.directions):
            order = range(self.steps) if direction == "forward" else range(self.steps)[::-1]
            state, per_step = None, {}
            for t in order:
                state = step(self.layers[d], d, t, self.input_at(t), state)
                per_step[t] = state[0]
            hs.append([per_step[t] for t in range(self.steps)])
            last.append(state)
        outputs = node.outputs

        def read(index: int) -> bool:
            name = outputs[index] if len(outputs) > index else ""
            return bool(name) and (name in self.ctx.protected or self.ctx.consumers.get(name, 0))

        if read(0):
            frames = [self.emit(Concat, tuple(h[t] for h in hs), "y", t, axis=0)
                      for t in range(self.steps)]
            joined = self.emit(Concat, tuple(frames), "y", axis=0)
            self.ctx.emit(Reshape(node.name, (joined,), outputs[0], source=node.op_type,
                                  shape=(self.steps, len(hs), self.hidden)))
        for index in (1, 2):
            if read(index):
                parts = tuple(s[index - 1] for s in last)
                joined = self.emit(Concat, parts, "state", index, axis=0)
                self.ctx.emit(Reshape(f"{node.name}:{index}", (joined,), outputs[index],
                                      source=node.op_type, shape=(len(hs), self.hidden)))


def _lstm_step(u: Unroller, layer: Layer, d: int, t: int, x: str, state):
    h = u.hidden
    h_prev, c_prev = state if state is not None else (None, None)
    both = u.with_state(x, h_prev, d, t, "in")
    gates = u.dense(both, u.stacked(layer.w[: 3 * h], layer.r[: 3 * h], h_prev),
                    layer.bw[: 3 * h] + layer.br[: 3 * h], d, t, "gates")
    gates = u.act(gates, "sigmoid", d, t, "sigmoid")
    i, o, f = (u.slice(gates, k * h, (k + 1) * h, d, t, name) for k, name in enumerate("iof"))
    g = u.dense(both, u.stacked(layer.w[3 * h :], layer.r[3 * h :], h_prev),
                layer.bw[3 * h :] + layer.br[3 * h :], d, t, "candidate")
    g = u.act(g, "tanh", d, t, "g")
    c = u.emit(Gate, (g, i), d, t, "ig")
    if c_prev is not None:
        c = u.emit(Add, (u.emit(Gate, (c_prev, f), d, t, "fc"), c), d, t, "c")
    h_t = u.emit(Gate, (u.act(c, "tanh", d, t, "tanh_c"), o), d, t, "h")
    return h_t, c


def _gru_step(u: Unroller, layer: Layer, d: int, t: int, x: str, state, before_reset: bool):
    h = u.hidden
    h_prev = None if state is None else state[0]
    both = u.with_state(x, h_prev, d, t, "in")
    gates = u.dense(both, u.stacked(layer.w[: 2 * h], layer.r[: 2 * h], h_prev),
                    layer.bw[: 2 * h] + layer.br[: 2 * h], d, t, "gates")
    gates = u.act(gates, "sigmoid", d, t, "sigmoid")
    z, r = (u.slice(gates, k * h, (k + 1) * h, d, t, name) for k, name in enumerate("zr"))
    w_h, r_h, bw_h, br_h = layer.w[2 * h :], layer.r[2 * h :], layer.bw[2 * h :], layer.br[2 * h :]
    if h_prev is None and before_reset:
        a = u.emit(GatedBiasDense, (x, r), d, t, "a", weight=w_h.T.copy(), bias=bw_h.copy(),
                   gated_bias=br_h.copy())
    elif h_prev is None:
        a = u.dense(x, w_h, bw_h + br_h, d, t, "a")
    elif before_reset:
        reset = u.emit(Gate, (u.dense(h_prev, r_h, br_h, d, t, "rh"), r), d, t, "reset")
        a = u.emit(Add, (u.dense(x, w_h, bw_h, d, t, "wx"), reset), d, t, "a")
    else:
        reset = u.emit(Gate, (h_prev, r), d, t, "reset")
        a = u.dense(u.with_state(x, reset, d, t, "in_reset"), np.concatenate([w_h, r_h], 1),
                    bw_h + br_h, d, t, "a")
    n = u.act(a, "tanh", d, t, "n")
    keep = u.emit(Affine, (z,), d, t, "1-z", scale=np.array(-1.0), shift=np.array(1.0))
    h_t = u.emit(Gate, (n, keep), d, t, "new")
    if h_prev is not None:
        h_t = u.emit(Add, (h_t, u.emit(Gate, (h_prev, z), d, t, "kept")), d, t, "h")
    return (h_t,)


def _rnn_step(u: Unroller, layer: Layer, d: int, t: int, x: str, state):
    h_prev = None if state is None else state[0]
    both = u.with_state(x, h_prev, d, t, "in")
    a = u.dense(both, u.stacked(layer.w, layer.r, h_prev), layer.bw + layer.br, d, t, "a")
    return (u.act(a, "tanh", d, t, "h"),)


@register("LSTM", since=7)
def convert_lstm(node: OnnxNode, ctx: ConversionContext) -> None:
    u = Unroller(node, ctx)
    u.run(lambda layer, d, t, x, s: _lstm_step(u, layer, d, t, x, s))


@register("GRU", since=7)
def convert_gru(node: OnnxNode, ctx: ConversionContext) -> None:
    u = Unroller(node, ctx)
    before_reset = bool(node.attr("linear_before_reset", 0))
    u.run(lambda layer, d, t, x, s: _gru_step(u, layer, d, t, x, s, before_reset))


@register("RNN", since=7)
def convert_rnn(node: OnnxNode, ctx: ConversionContext) -> None:
    u = Unroller(node, ctx)
    u.run(lambda layer, d, t, x, s: _rnn_step(u, layer, d, t, x, s))
