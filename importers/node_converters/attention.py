"""Attention: the softmax of the attention weights and products of two computed tensors.

``Softmax`` inside the network (the head is stripped before conversion,
:mod:`provgraph.importers.heads`) becomes an :class:`~provgraph.model.ops.AttentionSoftmax` when
its output is an operand of a product of computed tensors (through Cast, Identity or Dropout):
the attention weights ``A = softmax(Q Kᵀ / √d + M)``. ``MatMul`` of two computed tensors becomes
a :class:`~provgraph.model.ops.MatProduct`, whose attention-weights operand is the one computed
by such a softmax. The scale and the mask before the softmax are ``Mul``/``Div``/``Add`` by
constants (an attention mask given as a graph input is a constant, see
:mod:`provgraph.importers.graph_inputs`). Path semantics: :mod:`provgraph.model.ops.attention`.
"""

from __future__ import annotations

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.registry import register
from provgraph.model.ops import AttentionSoftmax, MatProduct, Op, RouteOp, Transpose

#: ops a softmax's output may pass through on its way to the product it weights
TRANSPARENT = frozenset({"Cast", "Identity", "Dropout"})
MAX_DEPTH = 16


def _feeds_product(ctx: ConversionContext, tensor: str, depth: int = 0) -> bool:
    """Whether ``tensor`` is an operand of a ``MatMul`` (directly or through transparent ops)."""
    for node in ctx.readers_of.get(tensor, []):
        if node.op_type in ("MatMul", "Einsum"):
            return True
        if node.op_type in TRANSPARENT and depth < MAX_DEPTH and node.outputs:
            if _feeds_product(ctx, node.outputs[0], depth + 1):
                return True
    return False


def _from_softmax(ctx: ConversionContext, tensor: str) -> bool:
    """Whether ``tensor`` is an :class:`AttentionSoftmax`'s output, possibly routed."""
    for _ in range(MAX_DEPTH):
        op: Op | None = ctx.producer.get(tensor)
        if isinstance(op, AttentionSoftmax):
            return True
        if not isinstance(op, RouteOp) or len(op.inputs) != 1:
            return False
        tensor = op.inputs[0]
    return False


@register("Softmax")
def convert_softmax(node: OnnxNode, ctx: ConversionContext) -> None:
    """The attention weights' softmax over the last axis."""
    x = ctx.computed(node, 0)
    rank = len(ctx.full_shape(x))
    default = -1 if ctx.opset >= 13 else 1
    axis = int(node.attr("axis", default))
    axis = axis + rank if axis < 0 else axis
    if axis != rank - 1:
        raise ctx.unsupported(
            node, f"softmax over axis {axis} of a rank-{rank} tensor; only the last axis is "
            "supported inside the network"
        )
    if node.outputs[0] in ctx.protected:  # the requested logits: a classifier head
        raise ctx.unsupported(
            node, "a softmax is the classifier's head, not its logits (explanations start from "
            "the logits: pass output= the softmax input)"
        )
    if not _feeds_product(ctx, node.outputs[0]):
        raise ctx.unsupported(
            node, "a softmax inside the network is supported only as attention weights (an "
            "operand of a product of computed tensors)"
        )
    ctx.emit(AttentionSoftmax(node.name, (x,), node.outputs[0], source="Softmax"))


def convert_product(node: OnnxNode, ctx: ConversionContext) -> None:
    """``MatMul`` of two computed tensors with the same leading axes: a :class:`MatProduct`."""
    a, b = ctx.computed(node, 0), ctx.computed(node, 1)
    sa, sb = ctx.full_shape(a), ctx.full_shape(b)
    if len(sa) < 3 or len(sa) != len(sb) or sa[:-2] != sb[:-2] or sa[-1] != sb[-2]:
        raise ctx.unsupported(
            node, f"a product of computed tensors of shapes {ctx.sample_shape(a)} and "
            f"{ctx.sample_shape(b)}; supported: (…, m, n) @ (…, n, p) with equal leading axes"
        )
    weights = 1 if _from_softmax(ctx, b) and not _from_softmax(ctx, a) else 0
    ctx.emit(MatProduct(node.name, (a, b), node.outputs[0], weights_operand=weights,
                        source="MatMul"))


def _transposed(ctx: ConversionContext, node: OnnxNode, x: str, axes: str, order: str,
                suffix: str) -> str:
    """``x`` (axes named by the letters ``axes``, batch first) permuted to ``order``."""
    if axes == order:
        return x
    out = f"{node.outputs[0]}:{suffix}"
    perm = tuple(axes.index(c) - 1 for c in order[1:])
    ctx.emit(Transpose(f"{node.name}:{suffix}", (x,), out, perm=perm, source="Einsum"))
    return out


def convert_einsum_product(node: OnnxNode, ctx: ConversionContext, equation: str) -> None:
    """Einsum of two computed tensors that is a batched matrix product, as Keras's
    ``MultiHeadAttention`` writes ``Q Kᵀ`` (``'btnh,bsnh->bnts'``) and ``A V``
    (``'bnts,bsnh->btnh'``): the operands are transposed to ``(…, m, n)`` and ``(…, n, p)``,
    multiplied as a :class:`MatProduct`, and the product transposed to the output's axes.

    The equation needs the batch letter first everywhere, one contracted letter, one free letter
    per operand, and every other letter in both operands and the output (the leading axes).
    """
    spec = equation.replace(" ", "")
    terms, _, out = spec.partition("->")
    parts = terms.split(",")
    ok = len(parts) == 2 and out and "." not in spec
    a, b = parts if ok else ("", "")
    shared = set(a) & set(b)
    contracted = [c for c in a if c in shared and c not in out]
    free_a = [c for c in a if c not in shared]
    free_b = [c for c in b if c not in shared]
    leading = [c for c in out if c in shared]
    ok = (ok and all(len(set(t)) == len(t) for t in (a, b, out)) and len(contracted) == 1
          and len(free_a) == 1 and len(free_b) == 1 and a[0] == b[0] == out[0]
          and set(out) == set(leading) | {free_a[0], free_b[0]} and len(out) == len(leading) + 2)
    if not ok:
        raise ctx.unsupported(
            node, f"Einsum {equation!r} of two computed tensors; supported: a batched matrix "
            "product with the batch letter first (as 'btnh,bsnh->bnts')"
        )
    lead = "".join(leading)
    x = _transposed(ctx, node, ctx.computed(node, 0), a, lead + free_a[0] + contracted[0], "a")
    y = _transposed(ctx, node, ctx.computed(node, 1), b, lead + contracted[0] + free_b[0], "b")
    product_axes = lead + free_a[0] + free_b[0]
    product = node.outputs[0] if product_axes == out else f"{node.outputs[0]}:product"
    weights = 1 if _from_softmax(ctx, y) and not _from_softmax(ctx, x) else 0
    ctx.emit(MatProduct(node.name, (x, y), product, weights_operand=weights, source="Einsum"))
    if product != node.outputs[0]:
        perm = tuple(product_axes.index(c) - 1 for c in out[1:])
        ctx.emit(Transpose(f"{node.name}:out", (product,), node.outputs[0], perm=perm,
                           source="Einsum"))
