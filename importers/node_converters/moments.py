"""Normalisation written out node by node, as older exporters write LayerNorm and RMSNorm.

``torch.onnx.export(nn.LayerNorm(d), …, opset_version=14)`` writes::

    μ = ReduceMean(x);  d = Sub(x, μ);  v = ReduceMean(Pow(d, 2));  y = Div(d, Sqrt(Add(v, ε)))

and a hand-written RMSNorm ``x / sqrt(mean(x²) + ε)`` the same without the centring. The pattern
is matched one node at a time:

- ``Sub(x, μ)`` with ``μ`` the mean of ``x`` over its trailing axes becomes a centring
  :class:`~provgraph.model.ops.Normalization` (``x − μ``, ``μ`` a constant of the sample);
- ``Pow(t, 2)`` (or ``Mul(t, t)``, also a gate for other readers), the ``ReduceMean`` of that
  square, ``Add`` of a constant ``ε`` and ``Sqrt`` are recorded as :class:`Moment` statistics of
  ``t`` and emit nothing;
- ``Div(t, σ)`` with ``σ`` the recorded standard deviation of ``t`` (or ``Mul(t, 1/σ)``, with
  ``1/σ`` written as ``Div(1, σ)`` or ``Reciprocal(σ)`` as ``x * torch.rsqrt(…)`` exports) emits
  one :class:`~provgraph.model.ops.Normalization` ``t / σ``, merged with the centring that computed
  ``t`` when nothing else reads it (then LayerNorm is one op from ``x``, exactly as the
  ``LayerNormalization`` node gives).

A statistic read anywhere else is refused with a message that names it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.registry import register
from provgraph.model.ops import Gate, Normalization

#: what each step of the pattern turns a statistic of ``t`` into
_NEXT = {
    "square": "mean square",
    "mean square": "variance",
    "variance": "deviation",
    "deviation": "inverse deviation",
}


@dataclass(frozen=True)
class Moment:
    """A per-sample statistic of tensor ``source`` over its axes from ``start`` on.

    ``kind`` is ``"mean"`` (an emitted ReduceMean: a real tensor) or one of the pending kinds
    ``"square"``, ``"mean square"``, ``"variance"`` (mean square plus ``ε``), ``"deviation"``
    (its square root), ``"inverse deviation"`` (``1/σ``, as ``torch.rsqrt`` is exported), which
    exist only inside a pattern.
    """

    kind: str
    source: str
    start: int = 0
    epsilon: float = 0.0
    #: the statistic is also a tensor of the network (``x * x``, emitted as a gate for readers
    #: outside the pattern, and removed when the pattern is its only reader)
    emitted: bool = False

    @property
    def pending(self) -> bool:
        return self.kind != "mean" and not self.emitted

    def describe(self) -> str:
        return f"the {self.kind} of {self.source!r}"


def moment(ctx: ConversionContext, tensor: str) -> Moment | None:
    return ctx.statistics.get(tensor)


def _record(ctx: ConversionContext, node: OnnxNode, m: Moment, like: str) -> None:
    ctx.statistics[node.outputs[0]] = m
    ctx.shapes[node.outputs[0]] = ctx.full_shape(like)


def trailing_start(axes: list[int], rank: int) -> int | None:
    """The first axis when ``axes`` are the trailing axes ``start..rank-1`` (batch excluded)."""
    if not axes or axes != list(range(axes[0], rank)) or axes[0] < 1:
        return None
    return axes[0]


def record_mean(ctx: ConversionContext, node: OnnxNode, x: str, axes: list[int]) -> bool:
    """Called by ReduceMean: a mean of a pending square is recorded (``True``: nothing to emit);
    a mean of a computed tensor over trailing axes is noted, to be recognised by ``Sub``."""
    full = ctx.full_shape(x)
    start = trailing_start(axes, len(full))
    m = moment(ctx, x)
    keep = bool(node.attr("keepdims", 1))
    if m is not None and m.kind == "square" and m.emitted and (start is None or not keep):
        return False  # the mean of the gate x ⊙ x, not of a normalisation
    if m is not None and m.kind == "square":
        if m.emitted and ctx.consumers.get(x, 0) <= 1:
            ctx.remove_unread(x, keep=m.source)
        if start is None or not keep:
            raise ctx.unsupported(
                node, f"the mean of a square over axes {axes} (keepdims={int(keep)}); only over "
                "trailing axes with keepdims=1, as in a normalisation"
            )
        ctx.statistics[node.outputs[0]] = Moment("mean square", m.source, start)
        ctx.shapes[node.outputs[0]] = tuple(1 if a >= start else d for a, d in enumerate(full))
        return True
    if start is not None and keep:
        ctx.statistics[node.outputs[0]] = Moment("mean", x, start)
    return False


@register("Pow")
def convert_pow(node: OnnxNode, ctx: ConversionContext) -> None:
    """``t²`` of a computed ``t``, as the start of the variance of a normalisation."""
    if not ctx.is_computed(node.input(0)) or ctx.is_computed(node.input(1)):
        raise ctx.unsupported(node, "only a computed tensor to a constant power is supported")
    power = np.asarray(ctx.constant(node, 1, "the exponent"))
    if power.size != 1 or float(power.reshape(-1)[0]) != 2.0:
        raise ctx.unsupported(node, "only the square of a normalisation pattern is supported")
    t = ctx.computed(node, 0)
    _record(ctx, node, Moment("square", t), t)


def square(ctx: ConversionContext, node: OnnxNode) -> bool:
    """Called by Mul of two computed tensors: ``t · t`` (``True`` when it is that).

    It is emitted as the gate ``t ⊙ t`` (relevance follows one factor) for readers outside a
    normalisation, and noted as the square ``Pow(t, 2)`` of a pattern: a ReduceMean that reads it
    as the mean square of a normalisation removes the gate when it is its only reader.
    """
    t = node.input(0)
    if node.input(1) != t or moment(ctx, t) is not None:
        return False
    ctx.emit(Gate(node.name, (t, t), node.outputs[0], source=node.op_type))
    ctx.statistics[node.outputs[0]] = Moment("square", t, emitted=True)
    return True


def _advance(ctx: ConversionContext, node: OnnxNode, kind: str, epsilon: float = 0.0) -> bool:
    """Move the pending statistic read by ``node`` one step on; ``False`` if it reads none."""
    m = next((moment(ctx, t) for t in node.inputs if moment(ctx, t) is not None), None)
    if m is None or not m.pending:
        return False
    if _NEXT.get(m.kind) != kind and not (m.kind == "mean square" and kind == "deviation"):
        raise ctx.unsupported(node, f"reads {m.describe()}; a normalisation needs its {kind}")
    ctx.statistics[node.outputs[0]] = Moment(kind, m.source, m.start, m.epsilon + epsilon)
    ctx.shapes[node.outputs[0]] = ctx.full_shape(next(t for t in node.inputs if moment(ctx, t)))
    return True


def add_epsilon(ctx: ConversionContext, node: OnnxNode) -> bool:
    """Called by Add: ``mean square + ε`` (``True`` when ``node`` is that step)."""
    pending = [t for t in node.inputs if (m := moment(ctx, t)) is not None and m.pending]
    if not pending:
        return False
    other = next((t for t in node.inputs if t not in pending), "")
    value = ctx.constants.get(other)
    if value is None or np.asarray(value).size != 1:
        raise ctx.unsupported(node, "only a scalar constant ε may be added to a mean square")
    epsilon = float(np.asarray(value).reshape(-1)[0])
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ctx.invalid(node, f"ε = {epsilon} must be a finite number ≥ 0")
    return _advance(ctx, node, "variance", epsilon)


@register("Sqrt")
def convert_sqrt(node: OnnxNode, ctx: ConversionContext) -> None:
    """The standard deviation of a normalisation pattern."""
    if not _advance(ctx, node, "deviation"):
        raise ctx.unsupported(
            node, "the square root of a computed tensor is supported only in a normalisation"
        )


def center(ctx: ConversionContext, node: OnnxNode) -> bool:
    """Called by Sub of two computed tensors: ``x − mean(x)`` (``True`` when it is that)."""
    x, mu = node.input(0), node.input(1)
    m = moment(ctx, mu)
    if m is None or m.kind != "mean" or m.source != x:
        return False
    ctx.emit(
        Normalization(
            node.name, (x,), node.outputs[0], start=m.start, scaled=False, source="Sub"
        )
    )
    if ctx.consumers.get(mu, 0) <= 1:
        ctx.remove_unread(mu, keep=x)
    return True


@register("Reciprocal")
def convert_reciprocal(node: OnnxNode, ctx: ConversionContext) -> None:
    """``1/σ`` of a normalisation pattern."""
    if not _advance(ctx, node, "inverse deviation"):
        raise ctx.unsupported(
            node, "the reciprocal of a computed tensor is supported only in a normalisation"
        )


def invert(ctx: ConversionContext, node: OnnxNode) -> bool:
    """Called by Div of a constant by a computed tensor: ``1 / σ`` (``True`` when it is that)."""
    m = moment(ctx, node.input(1))
    if m is None or not m.pending:
        return False
    value = ctx.constants.get(node.input(0))
    if value is None or np.asarray(value).size != 1 or float(np.asarray(value).reshape(-1)[0]) != 1:
        raise ctx.unsupported(node, f"divides by {m.describe()}; a normalisation needs 1 / σ")
    return _advance(ctx, node, "inverse deviation")


def multiply(ctx: ConversionContext, node: OnnxNode) -> bool:
    """Called by Mul of two computed tensors: ``t · (1/σ(t))`` (``True`` when it is that)."""
    for t, inverse in (node.inputs[:2], node.inputs[1::-1]):
        m = moment(ctx, inverse)
        if m is not None and m.kind == "inverse deviation" and m.source == t:
            _normalise(ctx, node, t, m)
            return True
    return False


def divide(ctx: ConversionContext, node: OnnxNode) -> bool:
    """Called by Div of two computed tensors: ``t / σ(t)`` (``True`` when it is that)."""
    t, sigma = node.input(0), node.input(1)
    m = moment(ctx, sigma)
    if m is None or m.kind != "deviation" or m.source != t:
        return False
    _normalise(ctx, node, t, m)
    return True


def _normalise(ctx: ConversionContext, node: OnnxNode, t: str, m: Moment) -> None:
    """Emit ``t / σ(t)``; a centring that computed ``t`` for this alone is merged into it."""
    for name in [s for s, v in ctx.statistics.items() if v.pending and v.source == t]:
        del ctx.statistics[name]
        ctx.shapes.pop(name, None)
    producer = ctx.producer.get(t)
    centred = (
        isinstance(producer, Normalization)
        and t not in ctx.protected
        and producer.start == m.start
        and not producer.scaled
        and producer.weight is None
        and producer.bias is None
        and ctx.consumers.get(t, 0) <= 2  # the square and this division
    )
    if centred:
        x = producer.inputs[0]
        ctx.emit(Normalization(node.name, (x,), node.outputs[0], start=m.start,
                               epsilon=m.epsilon, source="LayerNormalization"))
        ctx.remove_unread(t, keep=x)
    else:
        ctx.emit(Normalization(node.name, (t,), node.outputs[0], start=m.start, center=False,
                               epsilon=m.epsilon, source="RMSNormalization"))
