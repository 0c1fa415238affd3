"""Torch kernel of :class:`~provgraph.model.ops.tokens.ConstantConcat` (a class token joined to
computed tokens): the elementwise kernel over the output, each computed input placed at its
positions with weight 1, the constants as per-position bias."""

from __future__ import annotations

from typing import Any

import torch

from provgraph.backends.torch_linear import LinearStep, elementwise_step
from provgraph.model.ops.tokens import ConstantConcat


def constant_concat_step(
    backend: Any, op: ConstantConcat, step: LinearStep, values: dict[str, torch.Tensor],
    r_out: torch.Tensor,
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    z = values[op.output]
    axis = op.axis + 1
    spans, start, computed = [], 0, iter(op.inputs)
    inputs, covered = [], torch.zeros_like(z)
    for part in op.parts:
        if part is None:
            a = values[next(computed)]
            n = a.shape[axis]
            placed, mask = torch.zeros_like(z), torch.zeros_like(z)
            placed.narrow(axis, start, n).copy_(a)
            mask.narrow(axis, start, n).fill_(1)
            inputs.append((placed, mask))
            covered = covered + mask
            spans.append((start, n))
        else:
            n = part.shape[op.axis]
        start += n
    bias = z * (1 - covered)
    sent, absorbed = elementwise_step(step, inputs, z, bias, r_out, True)
    return [s.narrow(axis + 1, lo, n) for s, (lo, n) in zip(sent, spans)], absorbed
