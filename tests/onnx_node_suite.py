"""The ONNX package's own node tests (``onnx.backend.test.case.node``) run through provgraph.

Each case is one ONNX node with inputs and expected outputs computed by ONNX's reference
implementation. A case is run on provgraph as a classifier graph: its first input is the
explained input with a dynamic batch axis (axis 0 of the case's data, so every row of the data is
one sample; a time-major recurrent case is given batch-first behind a ``Transpose``, as exporters
write it), its other inputs become constants (initialisers with the case's values), and each
float output is taken as the logits in turn (``output=``). The outcome is ``passed`` (the
forward equals the expected output for at least one output, and no output differs), ``refused``
(provgraph raised one of its own errors: the reason is kept), ``mismatch`` or ``crash`` (anything
else: a bug).

Run as a script to print the outcome of every case of every supported op::

    .venv/bin/python tests/onnx_node_suite.py
"""

from __future__ import annotations

import functools
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from provgraph.errors import ProvgraphError
from provgraph.importers import load_onnx
from provgraph.importers.registry import lookup
from provgraph.model.trace import forward_trace

FLOAT_KINDS = "f"


@dataclass(frozen=True)
class Outcome:
    case: str
    op_type: str
    status: str  # passed, refused, mismatch, crash
    detail: str = ""


@functools.lru_cache(maxsize=1)
def node_cases() -> tuple:
    """Every single-node case of the ONNX node tests (function expansions left out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases

        cases = collect_testcases(None)
    single = [c for c in cases if c.kind == "node" and "_expanded" not in c.name
              and c.model is not None and len(c.model.graph.node) == 1]
    return tuple({c.name: c for c in single}.values())


def _opset(model: onnx.ModelProto, domain: str) -> int:
    key = "" if domain == "ai.onnx" else domain
    return next((e.version for e in model.opset_import
                 if ("" if e.domain == "ai.onnx" else e.domain) == key), 1)


def supported_cases() -> list:
    """The cases whose op provgraph has a converter for, at the case's opset."""
    out = []
    for case in node_cases():
        node = case.model.graph.node[0]
        if lookup(node.op_type, node.domain, _opset(case.model, node.domain)) is not None:
            out.append(case)
    return out


def classifier_model(case) -> tuple[onnx.ModelProto, np.ndarray]:
    """The case as a one-input model with a dynamic batch axis, and its input batch."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    inputs = case.data_sets[0][0]
    graph = model.graph
    values = list(graph.input)
    for value, array in zip(values[1:], inputs[1:]):
        graph.initializer.append(numpy_helper.from_array(np.asarray(array), value.name))
        graph.input.remove(value)
    dims = graph.input[0].type.tensor_type.shape.dim if values else []
    if len(dims):
        dims[0].Clear()
        dims[0].dim_param = "N"
    return model, np.asarray(inputs[0])


RECURRENT = {"LSTM", "GRU", "RNN"}
# time-major outputs of a recurrent node → the batch-first order: Y, then Y_h / Y_c
BATCH_FIRST = [(2, 0, 1, 3), (1, 0, 2), (1, 0, 2)]


def batch_first_recurrence(model: onnx.ModelProto, x: np.ndarray, expected: list) -> tuple:
    """A time-major recurrent case as an exporter writes a batch-first layer: the input batch
    first, then ``Transpose(perm=[1, 0, 2])`` into the node; expected outputs batch-first."""
    graph = model.graph
    value = graph.input[0]
    source = f"{value.name}_batch_first"
    dims = value.type.tensor_type.shape.dim
    seq = x.shape[0]
    value.name = source
    del dims[:]
    for d in ("N", seq, x.shape[2]):
        dim = dims.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d
    graph.node.insert(0, onnx.helper.make_node("Transpose", [source], [graph.node[0].input[0]],
                                               perm=[1, 0, 2]))
    node = graph.node[1]
    outs = [np.transpose(np.asarray(e), BATCH_FIRST[list(node.output).index(v.name)])
            for e, v in zip(expected, graph.output)]
    return model, np.transpose(x, (1, 0, 2)), outs


def run_case(case) -> Outcome:
    node = case.model.graph.node[0]
    name = case.name
    try:
        model, x = classifier_model(case)
    except (ValueError, TypeError) as exc:
        return Outcome(name, node.op_type, "refused", f"inputs cannot be constants: {exc}")
    if x.dtype.kind not in FLOAT_KINDS:
        return Outcome(name, node.op_type, "refused", f"input 0 is {x.dtype}, not float")
    expected = case.data_sets[0][1]
    layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
    if node.op_type in RECURRENT and layout == 0:
        model, x, expected = batch_first_recurrence(model, x, expected)
    compared, refusals = 0, []
    for output, want in zip(case.model.graph.output, expected):
        want = np.asarray(want)
        if want.dtype.kind not in FLOAT_KINDS:
            continue
        single = onnx.ModelProto()
        single.CopyFrom(model)  # a classifier graph outputs its logits only
        del single.graph.output[:]
        single.graph.output.append(output)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                net = load_onnx(single, output=output.name)
                got = forward_trace(net, x).logits
        except ProvgraphError as exc:
            refusals.append(str(exc).splitlines()[0])
            continue
        except Exception as exc:  # a bug: reported as such
            return Outcome(name, node.op_type, "crash", f"{type(exc).__name__}: {exc}")
        want = want.reshape(got.shape) if want.size == got.size else want
        if got.shape != want.shape or not np.allclose(
            got, want, rtol=max(case.rtol, 1e-4), atol=max(case.atol, 1e-6), equal_nan=True
        ):
            return Outcome(name, node.op_type, "mismatch",
                           f"output {output.name!r}: shapes {got.shape} / {want.shape}")
        compared += 1
    if not compared:
        reason = refusals[0] if refusals else "no float output to compare"
        return Outcome(name, node.op_type, "refused", reason)
    # other outputs of the node (LayerNormalization's Mean, …) may be refused as logits
    return Outcome(name, node.op_type, "passed", "; ".join(refusals))


def run_all() -> list[Outcome]:
    return [run_case(case) for case in supported_cases()]


if __name__ == "__main__":
    outcomes = run_all()
    for outcome in outcomes:
        print(f"{outcome.status:8} {outcome.case}: {outcome.detail}")
    print(Counter(o.status for o in outcomes))
