"""Models with token inputs or several graph inputs: bind the given inputs, explain the embeddings.

A text classifier reads integer token ids and looks them up in a constant table (``Gather(table,
input_ids)``); the ids carry no relevance, the vectors they select do. :func:`bind_inputs`
rewrites the model before import:

- every graph input other than the explained one becomes a constant with the value given
  (``attention_mask`` defaults to all ones, ``token_type_ids`` and ``position_ids`` to their
  defaults), so the mask and position-id computations fold (:mod:`provgraph.importers.folding`);
- the word-embedding ``Gather`` is cut out: its output becomes the explained float input, of
  shape ``(1, tokens, hidden)``, and the ids are bound as a constant for every other reader
  (position ids computed from the ids, as in RoBERTa).

Position and token-type embeddings are then constants added to the explained input: bias
sources. The network is specific to the bound values (one import per text); :class:`TokenInput`
says how to build the explained input from the ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from provgraph.errors import InputError, ModelLoadError

#: defaults of inputs a user may leave out, by name
DEFAULTS = {"attention_mask": 1, "token_type_ids": 0}


@dataclass(frozen=True)
class TokenInput:
    """How the explained input is computed from the token ids: ``table[ids]``.

    Attributes
    ----------
    ids_name : the graph input holding the ids
    ids : the bound ids, ``(1, tokens)``
    table : the embedding table, ``(vocabulary, hidden)``
    input_name : the explained tensor (the lookup's output)
    """

    ids_name: str
    ids: np.ndarray
    table: np.ndarray
    input_name: str

    def embeddings(self) -> np.ndarray:
        """One sample of the explained input: ``(tokens, hidden)``, float64."""
        return self.table[self.ids[0]].astype(np.float64)


def _graph_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in graph.initializer}
    return [v for v in graph.input if v.name not in inits]


def _is_integer(value: onnx.ValueInfoProto) -> bool:
    if not value.type.HasField("tensor_type") or value.type.tensor_type.elem_type == 0:
        return False  # a sequence, optional or untyped input: never token ids
    dtype = helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
    return np.dtype(dtype).kind in "iu"


def token_inputs(proto: onnx.ModelProto) -> list[str]:
    """The integer graph inputs looked up in a constant embedding table (token ids)."""
    graph = proto.graph
    return [v.name for v in _graph_inputs(graph)
            if _is_integer(v) and _lookup(graph, v.name) is not None]


def _lookup(graph: onnx.GraphProto, ids: str) -> onnx.NodeProto | None:
    """The ``Gather`` of rows of a constant 2-d table at ``ids`` (the word embedding)."""
    tables = {t.name: t for t in graph.initializer if len(t.dims) == 2}
    for node in graph.node:
        if node.op_type == "Gather" and node.input[1] == ids and node.input[0] in tables:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            if axis == 0:
                return node
    return None


def bind_inputs(
    proto: onnx.ModelProto, values: Mapping[str, np.ndarray], name: str
) -> tuple[onnx.ModelProto, TokenInput | None]:
    """The model with the given (and defaulted) inputs bound as constants; see the module."""
    graph = proto.graph
    inputs = _graph_inputs(graph)
    known = {v.name for v in inputs}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"{name}: no graph input named {unknown[0]!r}; inputs: {sorted(known)}")
    tokens = token_inputs(proto)
    if tokens and not any(t in values for t in tokens):
        raise InputError(
            f"{name}: input {tokens[0]!r} holds token ids: give them (inputs={{{tokens[0]!r}: "
            "ids}, or a mapping of inputs to explain())"
        )
    token = next((v for v in inputs if v.name in tokens and v.name in values), None)
    floats = [v for v in inputs if not _is_integer(v) and v.name not in values]
    if token is None and len(floats) != 1:
        raise InputError(
            f"{name}: cannot tell which input to explain among {sorted(known)}: give the token "
            "ids of the embedding lookup, or values for all inputs but one float input"
        )
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    bound: dict[str, np.ndarray] = {}
    for v in _graph_inputs(graph):
        if v.name in values:
            dtype = helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)
            bound[v.name] = np.asarray(values[v.name]).astype(dtype)
    ids = None if token is None else bound[token.name]
    if ids is not None and ids.ndim == 1:
        ids = bound[token.name] = ids[None]
    for v in _graph_inputs(graph):
        if v.name in bound or (token is None and v.name == floats[0].name):
            continue
        if v.name not in DEFAULTS or ids is None:
            raise InputError(f"{name}: give a value for the graph input {v.name!r}")
        dtype = helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)
        bound[v.name] = np.full(ids.shape, DEFAULTS[v.name], dtype=dtype)
    keep = [v for v in graph.input if v.name not in bound]
    del graph.input[:]
    graph.input.extend(keep)
    graph.initializer.extend(numpy_helper.from_array(a, n) for n, a in bound.items())
    if token is None:
        return model, None
    lookup = _lookup(graph, token.name)
    assert lookup is not None
    table = next(numpy_helper.to_array(t) for t in graph.initializer if t.name == lookup.input[0])
    if ids.min() < 0 or ids.max() >= len(table):
        raise InputError(
            f"{name}: token ids must lie in [0, {len(table)}), the vocabulary of the embedding "
            f"table {lookup.input[0]!r}"
        )
    out = lookup.output[0]
    graph.node.remove(lookup)
    elem = helper.np_dtype_to_tensor_dtype(table.dtype)
    graph.input.append(helper.make_tensor_value_info(out, elem, [1, ids.shape[1], table.shape[1]]))
    if any(o.name == out for o in graph.output):
        raise ModelLoadError(f"{name}: the embedding lookup's output {out!r} is a graph output")
    return model, TokenInput(token.name, ids, np.asarray(table), out)
