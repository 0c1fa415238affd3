"""ONNX-ML (``ai.onnx.ml``) ops of scikit-learn pipelines converted by skl2onnx.

``Scaler``
    ``y = (x − offset) · scale`` (``StandardScaler``, ``MinMaxScaler``): an elementwise affine
    map, folded into the preceding linear op where exact, else an
    :class:`~provgraph.model.ops.Affine` whose constant part is a bias source.
``Normalizer``
    ``y = x / ‖x‖`` (max, L1 or L2 norm of the sample): a
    :class:`~provgraph.model.ops.NormScaling`, the identity rule (one edge ``k → k``).
``LinearClassifier``
    The raw class scores ``z = x Wᵀ + b`` (logistic regression, linear SVMs) as a
    :class:`~provgraph.model.ops.Dense`; its ``post_transform`` is split off beforehand
    (:mod:`~provgraph.importers.scoring_heads`). A binary classifier stored with one row of
    coefficients scores its two classes ``(−z, z)``, as onnxruntime does.
"""

from __future__ import annotations

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.fusion import apply_affine
from provgraph.importers.registry import register
from provgraph.model.ops import Dense, NormScaling

ML = "ai.onnx.ml"


def _features(ctx: ConversionContext, node: OnnxNode) -> tuple[str, int]:
    """The computed input of a ``(batch, features)`` ONNX-ML op and its number of features."""
    x = ctx.computed(node, 0)
    sample = ctx.sample_shape(x)
    if len(sample) != 1:
        raise ctx.unsupported(
            node, f"input of sample shape {sample}; ONNX-ML ops take (batch, features)"
        )
    return x, int(sample[0])


def _per_feature(
    ctx: ConversionContext, node: OnnxNode, name: str, n: int, default: float
) -> np.ndarray:
    values = np.asarray(node.attr(name, None) or [default], dtype=np.float64).reshape(-1)
    if values.size not in (1, n):
        raise ctx.invalid(node, f"{name} has {values.size} entries for {n} features")
    return np.broadcast_to(values, (n,)).copy()


@register("Scaler", domain=ML)
def convert_scaler(node: OnnxNode, ctx: ConversionContext) -> None:
    x, n = _features(ctx, node)
    sizes = [len(node.attr(a, None) or [0.0]) for a in ("offset", "scale")]
    if sizes[0] != sizes[1]:
        raise ctx.invalid(node, f"offset has {sizes[0]} entries, scale {sizes[1]}; they must match")
    scale = _per_feature(ctx, node, "scale", n, 1.0)
    offset = _per_feature(ctx, node, "offset", n, 0.0)
    apply_affine(ctx, node, x, node.outputs[0], scale=scale, shift=-offset * scale)


@register("Normalizer", domain=ML)
def convert_normalizer(node: OnnxNode, ctx: ConversionContext) -> None:
    x, _ = _features(ctx, node)
    norm = node.attr("norm", "MAX") or "MAX"
    if norm not in NormScaling.NORMS:
        raise ctx.invalid(node, f"norm {norm!r} is not one of {list(NormScaling.NORMS)}")
    ctx.emit(NormScaling(node.name, (x,), node.outputs[0], norm=norm, source=node.op_type))


@register("LinearClassifier", domain=ML)
def convert_linear_classifier(node: OnnxNode, ctx: ConversionContext) -> None:
    x, n = _features(ctx, node)
    post = node.attr("post_transform", "NONE") or "NONE"
    if post != "NONE":
        raise ctx.unsupported(node, f"post_transform {post} (only NONE, SOFTMAX and LOGISTIC)")
    labels = node.attr("classlabels_ints", None)
    if labels is None or len(labels) == 0:
        labels = node.attr("classlabels_strings", None) or []
    coefficients = np.asarray(node.attr("coefficients", None) or [], dtype=np.float64)
    if coefficients.size == 0 or coefficients.size % n:
        raise ctx.invalid(node, f"{coefficients.size} coefficients for {n} features")
    weight = coefficients.reshape(-1, n)
    rows = weight.shape[0]
    intercepts = np.asarray(node.attr("intercepts", None) or [0.0] * rows, dtype=np.float64)
    if intercepts.size != rows:
        raise ctx.invalid(node, f"{intercepts.size} intercepts for {rows} rows of coefficients")
    if rows == 1 and len(labels) == 2:
        weight, intercepts = np.concatenate([-weight, weight]), np.concatenate([-intercepts,
                                                                                 intercepts])
    elif len(labels) not in (0, weight.shape[0]):
        raise ctx.invalid(node, f"{len(labels)} class labels for {weight.shape[0]} score rows")
    if len(node.outputs) < 2 or not node.outputs[1]:
        raise ctx.unsupported(node, "the classifier writes no scores")
    ctx.emit(
        Dense(
            node.name, (x,), node.outputs[1], weight=weight.T.copy(), bias=intercepts,
            source=node.op_type,
        )
    )
