"""Tensors whose batch axis the graph has folded into windows or moved: the per-sample layout.

provgraph builds the provenance graph of one sample, and every tensor of the network is
``(batch, …sample axes)``. Some exporters write graphs in which the ONNX tensor's batch axis is
not first, or holds more than the batch:

- *window partitions* fold windows or patches into axis 0: Swin's
  ``(B, H, W, C) → (B·nW, ws, ws, C)`` (Liu et al., ICCV 2021), MobileViT's unfolding
  ``(B, C, H, W) → (B·P, N, C)`` (Mehta and Rastegari, ICLR 2022), undone later by the reverse
  reshape;
- *batch-moving permutations*: timm's attention writes ``qkv.permute(2, 0, 3, 1, 4)`` and then
  splits and squeezes axis 0, which puts the batch axis back in front.

Because ONNX tensors are stored row-major, the elements of one sample stay together in a tensor
of shape ``(B·F, …)``: it is the tensor ``(B, F, …)``. A :class:`BatchLayout` records, for one
ONNX tensor, the ONNX axis that holds the batch (``axis``) and how many windows it folds with it
(``fold`` = F). The imported network holds the same values as a sample-first tensor
``(B, [F,] the other ONNX axes in order)``: the fold is one more sample axis and the moved batch
axis is put back in front. Such a reshape or permutation is therefore a route of neurons within
one sample, with edges annotated one like every other route; no value of one sample reaches
another.

:func:`provgraph.importers.layout_rules.translate` runs before each node is folded or converted.
For a node that reads a tensor in a non-standard layout (or creates one: a reshape that merges
the batch axis, a permutation that moves it) it writes the equivalent node over the
sample-first tensors, with axes, permutations, target shapes and broadcast constants rewritten,
and records the layout of the node's outputs.
``Shape`` of such a tensor folds to its ONNX shape, so the exporters' shape computations see the
shapes they were written for. The op rules are in :mod:`provgraph.importers.layout_rules`.
"""

from __future__ import annotations

from dataclasses import dataclass

from provgraph.importers.context import ConversionContext, Shape

STANDARD_AXIS = 0


@dataclass(frozen=True)
class BatchLayout:
    """Where an ONNX tensor of rank ``rank`` keeps its batch: axis ``axis``, of extent
    ``B·fold``. The imported tensor is ``(B, [fold,] the other ONNX axes in order)``, with the
    ``fold`` axis present when ``fold > 1``."""

    axis: int
    fold: int
    rank: int

    @property
    def standard(self) -> bool:
        return self.axis == STANDARD_AXIS and self.fold == 1

    @property
    def leading(self) -> int:
        """Axes of the imported tensor before the first of the other ONNX axes."""
        return 2 if self.fold > 1 else 1

    def position(self, onnx_axis: int) -> int:
        """The imported tensor's axis holding ONNX axis ``onnx_axis`` (not the batch axis)."""
        a = onnx_axis + self.rank if onnx_axis < 0 else onnx_axis
        if a == self.axis or not 0 <= a < self.rank:
            raise ValueError(onnx_axis)
        return self.leading + (a if a < self.axis else a - 1)

    def onnx_shape(self, full: Shape) -> Shape:
        """The ONNX shape (batch 1) of an imported tensor of shape ``full``."""
        rest = list(full[self.leading :])
        rest.insert(self.axis, self.fold)
        return tuple(rest)

    def full_shape(self, onnx_shape: Shape) -> Shape:
        """The imported tensor's shape for an ONNX shape with batch 1."""
        rest = [d for i, d in enumerate(onnx_shape) if i != self.axis]
        return (1, *((self.fold,) if self.fold > 1 else ()), *rest)

    def describe(self) -> str:
        """What the layout does, as a clause (``"… which {describe}"``)."""
        if self.fold > 1 and self.axis == 0:
            return f"folds {self.fold} windows into its batch axis"
        if self.fold > 1:
            return f"has its batch axis, folded with {self.fold} windows, on axis {self.axis}"
        return f"has its batch axis on axis {self.axis}"


def standard(rank: int) -> BatchLayout:
    return BatchLayout(STANDARD_AXIS, 1, rank)


def layout_of(ctx: ConversionContext, tensor: str) -> BatchLayout:
    """The layout of a computed tensor (sample-first unless a translated node recorded one)."""
    found = ctx.layouts.get(tensor)
    if found is not None:
        return found
    return standard(len(ctx.full_shape(tensor)))


def onnx_shape_of(ctx: ConversionContext, tensor: str) -> Shape:
    """The ONNX shape (batch 1) of a computed tensor."""
    return layout_of(ctx, tensor).onnx_shape(ctx.full_shape(tensor))


def record(ctx: ConversionContext, tensor: str, layout: BatchLayout) -> None:
    if layout.standard:
        ctx.layouts.pop(tensor, None)
    else:
        ctx.layouts[tensor] = layout
