"""The trace's finiteness check tests few tensors, and still finds every non-finite value.

``provgraph.model.trace.tested_outputs`` sums only the outputs whose consumers may hide a
NaN or ±∞. The oracle here is brute force over a real export (a small Hugging Face ViT and
BERT): for every op, one element of its output is set to ±∞ or NaN, the ops after it are rerun,
and the check must refuse the trace naming exactly that op.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformer_models import exported

from provgraph.errors import InputError
from provgraph.importers.onnx_loader import load_onnx
from provgraph.model import trace
from provgraph.model.trace import check_activations, forward_trace


def network(name: str) -> tuple:
    e = exported(name)
    return load_onnx(e.onnx, inputs=e.inputs if e.text else None), e


@pytest.mark.parametrize("name", ["vit", "bert"])
def test_fewer_tensors_are_summed(name: str) -> None:
    net, _ = network(name)
    tested = trace.tested_outputs(net)
    assert net.output_name in tested
    assert 0 < len(tested) < len(net.ops) / 2


@pytest.mark.parametrize("name", ["vit", "bert"])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_a_non_finite_value_after_any_op_is_found(name: str, bad: float) -> None:
    net, e = network(name)
    x = net.token_input.embeddings() if net.token_input else e.inputs["pixel_values"][0]
    clean = forward_trace(net, x).values
    check_activations(net, net.ops, clean)  # the clean trace passes
    for index, op in enumerate(net.ops):
        if not torch.is_floating_point(clean[op.output]) or clean[op.output].numel() == 0:
            continue
        values = dict(clean)
        broken = values[op.output].clone(memory_format=torch.contiguous_format)
        broken.view(-1)[broken.numel() // 2] = bad
        values[op.output] = broken
        with torch.no_grad():
            for later in net.ops[index + 1:]:
                values[later.output] = later.forward(*(values[t] for t in later.inputs))
        first = next(o for o in net.ops if not bool(torch.isfinite(values[o.output]).all()))
        with pytest.raises(InputError, match="not finite for sample 0") as info:
            check_activations(net, net.ops, values)
        assert first is op and op.describe() in str(info.value)
