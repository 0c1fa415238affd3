"""The op table: every ONNX op decided once, and the README section generated from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from provgraph.errors import UnsupportedOpError
from provgraph.importers import load_onnx, supported_ops
from provgraph.importers.op_decisions import NOT_FOLDED, REASONS
from provgraph.importers.op_table import (
    NO_REASON,
    decide,
    main,
    readme_section,
    render,
    schema_ops,
)
from provgraph.model.trace import forward_trace

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_op_table_is_generated_from_the_registry() -> None:
    section = readme_section(README.read_text(encoding="utf-8"))
    assert section is not None, "README.md has no generated op table"
    assert section == render(), (
        "README.md's op table disagrees with the registry: run "
        "python -m provgraph.importers.op_table --readme README.md"
    )


def test_every_schema_op_is_decided_once_with_a_reason() -> None:
    decisions = decide()
    keys = [(d.domain, d.op_type) for d in decisions]
    assert len(keys) == len(set(keys))
    assert set(schema_ops()) <= set(keys)
    registered = {(e.domain, e.op_type) for e in supported_ops()}
    for d in decisions:
        assert d.text and d.text != NO_REASON, d.label
        assert (d.status == "supported") == ((d.domain, d.op_type) in registered), d.label
    n = {s: sum(d.status == s for d in decisions) for s in ("supported", "folded", "refused")}
    assert n["supported"] >= 50 and n["refused"] >= 10


def test_recorded_reasons_name_real_ops() -> None:
    known = {op for _, op in schema_ops()}
    for table in (REASONS, NOT_FOLDED):
        for reason, ops in table.items():
            assert set(ops) <= known, (reason, set(ops) - known)


@pytest.mark.parametrize("op_type", ["Exp", "Neg", "Max"])
def test_a_folded_op_folds_on_constants_and_is_refused_on_the_input(op_type: str) -> None:
    """What the table says of a folded op: on constant inputs it becomes a constant (the model
    imports and computes ONNX's value); on the computed input it is refused by name."""
    c = np.array([[0.5, -1.0, 2.0]], np.float32)

    def model(reads: str):
        nodes = [
            helper.make_node("Constant", [], ["c"], value=helper.make_tensor(
                "v", TensorProto.FLOAT, [1, 3], c.ravel())),
            helper.make_node(op_type, [reads] * (2 if op_type == "Max" else 1), ["k"]),
            helper.make_node("Add", ["x", "k"], ["y"]),
        ]
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [None, 3])],
                                  [helper.make_tensor_value_info("y", 1, [None, 3])])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    x = np.zeros((1, 3), np.float32)
    expected = {"Exp": np.exp(c), "Neg": -c, "Max": c}[op_type]
    np.testing.assert_allclose(forward_trace(load_onnx(model("c")), x).logits, expected,
                               rtol=1e-6)
    with pytest.raises(UnsupportedOpError, match=f"unsupported ONNX ops: {op_type}"):
        load_onnx(model("x"))


def test_the_command_checks_and_rewrites_a_readme(tmp_path: Path, capsys) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# title\n", encoding="utf-8")
    assert main(["--readme", str(readme), "--check"]) == 1
    assert main(["--readme", str(readme)]) == 0
    assert readme_section(readme.read_text(encoding="utf-8")) == render()
    assert main(["--readme", str(readme), "--check"]) == 0
    assert main(["--readme", str(readme)]) == 0
    assert "up to date" in capsys.readouterr().out
