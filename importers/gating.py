"""``Mul`` of two computed tensors: a gate, whose relevance follows one operand, the signal.

Which operand is the signal (the other, the gate, receives no relevance):

1. the operand the other one is computed from elementwise: in ``x · clip(x + 3, 0, 6)``
   (HardSwish), ``x · sigmoid(x)`` (SiLU) and ``x · (1 + erf(x / √2))`` (GELU) the signal is ``x``,
   so relevance passes through the whole pattern as through an activation;
2. otherwise the operand that is not a gate, a gate being the output of a Sigmoid, HardSigmoid or
   Clip, possibly reshaped or scaled after it (squeeze-excitation);
3. otherwise the operand with the output's shape when the other one broadcasts (a per-channel
   or per-sample factor);
4. otherwise the first operand.

The signal must have the output's shape: each output element has exactly one edge, from the same
element of the signal.
"""

from __future__ import annotations

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.model.ops import Activation, Affine, Gate, Identity, Op, PassthroughOp, Reshape

GATE_FUNCTIONS = frozenset({"sigmoid", "hard_sigmoid", "clip"})
MAX_DEPTH = 64


def _elementwise_parent(op: Op | None) -> str | None:
    """The input an elementwise op computes from (a gate's signal), else ``None``."""
    if isinstance(op, (PassthroughOp, Affine, Identity)):
        return op.inputs[0]
    return None


def computed_elementwise_from(ctx: ConversionContext, tensor: str, root: str) -> bool:
    """Whether ``tensor`` is ``root`` or is computed from it by elementwise ops only."""
    for _ in range(MAX_DEPTH):
        if tensor == root:
            return True
        parent = _elementwise_parent(ctx.producer.get(tensor))
        if parent is None:
            return False
        tensor = parent
    return False


def is_gate(ctx: ConversionContext, tensor: str) -> bool:
    """Whether ``tensor`` comes from a Sigmoid, HardSigmoid or Clip through reshapes and scales."""
    for _ in range(MAX_DEPTH):
        op = ctx.producer.get(tensor)
        if isinstance(op, Activation):
            return op.function in GATE_FUNCTIONS
        if not isinstance(op, (Affine, Identity, Reshape)):
            return False
        tensor = op.inputs[0]
    return False


def choose_signal(ctx: ConversionContext, a: str, b: str, out_shape: tuple) -> tuple[str, str]:
    """``(signal, gate)`` of ``a · b`` by the rules of this module's docstring."""
    if computed_elementwise_from(ctx, b, a):
        return a, b
    if computed_elementwise_from(ctx, a, b):
        return b, a
    gate_a, gate_b = is_gate(ctx, a), is_gate(ctx, b)
    if gate_a != gate_b:
        return (b, a) if gate_a else (a, b)
    full_a, full_b = ctx.full_shape(a) == out_shape, ctx.full_shape(b) == out_shape
    if full_a != full_b:
        return (a, b) if full_a else (b, a)
    return a, b


def convert_gate(node: OnnxNode, ctx: ConversionContext) -> None:
    """Emit a :class:`~provgraph.model.ops.Gate` for ``Mul`` of two computed tensors."""
    a, b = ctx.computed(node, 0), ctx.computed(node, 1)
    out_shape = ctx.broadcast_shape(node, a, b)
    signal, gate = choose_signal(ctx, a, b, out_shape)
    if ctx.full_shape(signal) != out_shape:
        raise ctx.unsupported(
            node,
            f"the signal {signal!r} of shape {ctx.sample_shape(signal)} would be broadcast to "
            f"{out_shape[1:]}; gating needs a signal of the output's shape",
        )
    ctx.emit(Gate(node.name, (signal, gate), node.outputs[0], source="Mul"))
