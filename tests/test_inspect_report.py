"""``provgraph inspect`` reports everything at once: ops without a converter, patterns the
converters refuse, input problems; its fidelity check runs on static batch-1 exports; a Softmax
inside the network does not suggest ``output=``."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from models import onnx_model
from onnx import TensorProto, helper
from test_bad_models import weights

from provgraph.apps.inspection import inspect_report
from provgraph.errors import UnsupportedOpError
from provgraph.importers import load_onnx


def _write(tmp_path: Path, name: str, model) -> Path:
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def test_ops_without_converter_and_refused_patterns_in_one_report(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Abs", ["x"], ["a"], name="absolute"),
        helper.make_node("Pad", ["a", "p", "one"], ["b"], name="fill"),
        helper.make_node("Gemm", ["b", "W"], ["y"], transA=1, name="gemm_t"),
    ]
    w = weights(W=(1, 2)) | {"p": np.array([0, 1, 0, 1], np.int64), "one": np.float32(1.0)}
    path = _write(tmp_path, "mixed.onnx", onnx_model(nodes, [("x", [1, 3])], ["y"], w, opset=13))
    text, problem = inspect_report(path)
    assert "unsupported ops:\n  Abs ×1: absolute" in text
    assert "refused nodes" in text and "  Pad ×1: fill" in text and "  Gemm ×1: gemm_t" in text
    assert problem is not None
    for part in ("Abs (1 node: 'absolute'): no converter", "Pad (1 node: 'fill'): padding value",
                 "transA=1"):
        assert part in problem


def test_several_inputs_and_unsupported_ops_in_one_report(tmp_path: Path) -> None:
    nodes = [helper.make_node("Abs", ["x"], ["a"], name="absolute"),
             helper.make_node("Add", ["a", "z"], ["y"])]
    model = onnx_model(nodes, [("x", ["N", 3]), ("z", ["N", 3])], ["y"], opset=13)
    text, problem = inspect_report(_write(tmp_path, "two.onnx", model))
    assert problem is not None and "2 inputs" in problem and "Abs ×1 (absolute)" in problem
    assert "unsupported ops:" in text


def test_an_integer_input_and_unsupported_ops_in_one_report(tmp_path: Path) -> None:
    node = helper.make_node("Abs", ["x"], ["y"], name="absolute")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.INT64, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [None, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    _, problem = inspect_report(_write(tmp_path, "int.onnx", model))
    assert problem is not None and "INT64" in problem and "Abs ×1 (absolute)" in problem


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(8, 6), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(torch.relu(self.l1(x)))


def test_fidelity_is_checked_on_a_dynamo_export_with_a_static_batch_of_one(tmp_path) -> None:
    path = tmp_path / "dynamo.onnx"
    torch.manual_seed(0)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(Small().eval(), (torch.randn(1, 8),), str(path), dynamo=True,
                          external_data=False)
    text, problem = inspect_report(path)
    assert problem is None
    assert "fidelity vs onnxruntime (1 random input: the model's batch is 1)" in text
    assert text.rstrip().endswith("ok")


def _softmax_model(head: bool):
    nodes = [helper.make_node("Gemm", ["x", "W"], ["z"]),
             helper.make_node("Softmax", ["z"], ["p"], name="sm")]
    if not head:
        nodes.append(helper.make_node("Gemm", ["p", "V"], ["y"]))
    return onnx_model(nodes, [("x", ["N", 3])], ["p" if head else "y"],
                      weights(W=(3, 4), V=(4, 2)))


def test_a_softmax_inside_the_network_does_not_suggest_output() -> None:
    with pytest.raises(UnsupportedOpError, match="Softmax .*'sm'") as exc:
        load_onnx(_softmax_model(head=False))
    assert "output=" not in str(exc.value)


def test_a_softmax_head_that_is_asked_for_suggests_output() -> None:
    with pytest.raises(UnsupportedOpError, match="Softmax .*'sm'.*output= the softmax input"):
        load_onnx(_softmax_model(head=True), output="p")
