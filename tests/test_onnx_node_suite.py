"""The ONNX package's node tests as a forward oracle for every op provgraph supports.

Every single-node case of ``onnx.backend.test.case.node`` whose op has a converter runs through
:mod:`onnx_node_suite`: it either equals ONNX's expected outputs, or provgraph refuses it with
one of its own errors and a reason (an integer input, a constant with a batch axis, a reshape
across the batch axis, …). A mismatch or any other exception fails.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
from onnx_node_suite import Outcome, run_all, supported_cases

from provgraph.importers.op_table import decide

#: ops whose every node test lies outside what a classifier graph needs, and why
NO_PASSING_CASE = {
    "Concat": "the node tests join the input with constants",
    "Pow": "a power of a computed tensor is supported only as the square in a normalisation",
    "Sqrt": "supported only as the deviation in a normalisation",
    "Reciprocal": "supported only as 1/σ in a normalisation",
    "Reshape": "the node tests reshape across the batch axis",
    "Einsum": "the node tests' equations (transpose, sum, diagonal, products of two computed "
    "tensors) are not x @ W",
    "Pad": "the node tests pad with a non-zero constant or pad integer inputs",
    "Cast": "the node tests cast to or from non-float types",
    "Expand": "the node tests broadcast the first (batch) axis or add axes before it",
    "GatherElements": "the node tests gather along or across the first (batch) axis",
    "Where": "the node tests' condition is a graph input (provgraph needs a constant mask)",
    "Softmax": "supported inside the network only as attention weights (an operand of a product "
    "of computed tensors); the node tests' softmax writes the graph output",
}


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    return run_all()


def test_no_node_test_of_a_supported_op_mismatches_or_crashes(outcomes) -> None:
    bad = [o for o in outcomes if o.status in ("mismatch", "crash")]
    assert not bad, "\n".join(f"{o.status} {o.case}: {o.detail}" for o in bad)
    assert len(outcomes) == len(supported_cases()) >= 300


def test_every_refusal_gives_a_reason(outcomes) -> None:
    for o in outcomes:
        if o.status == "refused":
            assert o.detail and ("node" in o.detail or "input" in o.detail
                                 or "output" in o.detail), (o.case, o.detail)


def test_every_supported_op_passes_a_node_test_or_says_why_not(outcomes) -> None:
    by_op: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_op[o.op_type].append(o)
    passing = {op for op, cases in by_op.items() if any(c.status == "passed" for c in cases)}
    without = set(by_op) - passing
    assert without == set(NO_PASSING_CASE) & set(by_op), without
    assert len(passing) >= 40
    supported = {d.op_type for d in decide() if d.status == "supported"}
    assert set(by_op) <= supported


def test_recurrent_layers_match_onnx_in_every_direction(outcomes) -> None:
    """Forward, reverse and bidirectional LSTM/GRU/RNN, time-major as exported and batch-first."""
    passed = {o.case for o in outcomes if o.status == "passed"}
    for case in ("test_lstm_bidirectional", "test_lstm_reverse", "test_gru_bidirectional",
                 "test_gru_with_initial_bias", "test_simple_rnn_bidirectional",
                 "test_lstm_batchwise", "test_gru_batchwise"):
        assert case in passed, case
