"""Provenance variables: one per edge of a linear op (bias edges included), one per hidden neuron.

Every variable has a global integer id and a stable name that maps back to the network:

``x{L}_{j}_{k}``
    the edge from neuron ``j`` of the input tensor to neuron ``k`` of the output of the ``L``-th
    linear op (in network order, 0 on the input side);
``x{L}i{i}_{j}_{k}``
    the same for an op with several inputs (``i`` is the input's position, e.g. a residual sum);
``b{L}_{k}``
    the edge from the ``L``-th linear op's bias source to its output neuron ``k``;
``n{L}_{k}``
    hidden neuron ``k`` of the ``L``-th linear op's output (never the logits).

``j`` and ``k`` are flat indices into the tensors (row-major, no batch axis). Edges of activations
and routing ops carry K's one in every semiring and get no variable. Edge ids come first, in
network order and, within an op, in the CSR order of its weight matrix, so that the Θ-values of
an op are a contiguous slice of a valuation; neuron ids follow.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from provgraph.engine.annotation import AnnotatedGraph
from provgraph.errors import ProvgraphError

_NAME = re.compile(r"^(?:x(\d+)(?:i(\d+))?_(\d+)_(\d+)|b(\d+)_(\d+)|n(\d+)_(\d+))$")


@dataclass(frozen=True)
class VariableRecord:
    """Where a variable lives: ``kind`` is ``"edge"``, ``"bias"`` or ``"neuron"``.

    ``source``/``j`` are the tensor and flat index the edge leaves (``"bias"`` and ``None`` for a
    bias edge, ``None`` for a neuron); ``target``/``k`` the tensor and flat index it enters (the
    neuron itself for a neuron variable).
    """

    id: int
    name: str
    kind: str
    op: str
    layer: int
    source: str | None
    j: int | None
    target: str
    k: int

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class _Block:
    """A contiguous range of variable ids: one input of a linear op, its bias, or its neurons."""

    kind: str
    start: int
    count: int
    layer: int
    op: str
    source: str | None
    input_index: int
    target: str
    indptr: np.ndarray | None = None
    indices: np.ndarray | None = None
    multi: bool = False
    _rows: list[int] | None = field(default=None, init=False, repr=False, compare=False)
    _cols: list[int] | None = field(default=None, init=False, repr=False, compare=False)

    def name(self, pos: int) -> str:
        j, k = self.endpoints(pos)
        if self.kind == "bias":
            return f"b{self.layer}_{k}"
        if self.kind == "neuron":
            return f"n{self.layer}_{k}"
        tag = f"i{self.input_index}" if self.multi else ""
        return f"x{self.layer}{tag}_{j}_{k}"

    def latex(self, pos: int) -> str:
        j, k = self.endpoints(pos)
        if self.kind == "bias":
            return f"b^{{({self.layer})}}_{{{k}}}"
        if self.kind == "neuron":
            return f"n^{{({self.layer})}}_{{{k}}}"
        tag = f",{self.input_index}" if self.multi else ""
        return f"x^{{({self.layer}{tag})}}_{{{j},{k}}}"

    def endpoints(self, pos: int) -> tuple[int | None, int]:
        if self.kind != "edge":
            return None, pos
        assert self.indptr is not None and self.indices is not None
        if self._rows is None:  # Python lists: one lookup per name, called per printed variable
            self._rows, self._cols = self.indptr.tolist(), self.indices.tolist()
        return bisect_right(self._rows, pos) - 1, self._cols[pos]


class Variables:
    """The variable table of an annotated graph (structure only: independent of the input).

    Parameters
    ----------
    graph
        The annotated graph; its cached weight matrices give the edges.
    """

    def __init__(self, graph: AnnotatedGraph) -> None:
        net = graph.network
        self.network = net
        self._blocks: list[_Block] = []
        self.edge_blocks: dict[str, list[_Block]] = {}
        self.bias_blocks: dict[str, _Block] = {}
        self.neuron_blocks: dict[str, _Block] = {}
        start = 0
        for layer, op in enumerate(net.linear_ops):
            matrices, bias = graph.structure(op)
            multi = len(op.inputs) > 1
            blocks = []
            for i, (tensor, m) in enumerate(zip(op.inputs, matrices)):
                b = _Block("edge", start, int(m.nnz), layer, op.name, tensor, i, op.output,
                           m.indptr, m.indices, multi)
                blocks.append(b)
                start += b.count
            self.edge_blocks[op.name] = blocks
            self._blocks.extend(blocks)
            if bias is not None:
                b = _Block("bias", start, len(bias), layer, op.name, "bias", 0, op.output)
                self.bias_blocks[op.name] = b
                self._blocks.append(b)
                start += b.count
        self.n_edges = start
        for layer, op in enumerate(net.linear_ops):
            if op.output == net.output_name:
                continue
            b = _Block("neuron", start, net.size(op.output), layer, op.name, None, 0, op.output)
            self.neuron_blocks[op.output] = b
            self._blocks.append(b)
            start += b.count
        self.size = start
        self._starts = [b.start for b in self._blocks]
        self._by_layer = {op.name: layer for layer, op in enumerate(net.linear_ops)}

    @property
    def n_neurons(self) -> int:
        return self.size - self.n_edges

    def _locate(self, var: int) -> tuple[_Block, int]:
        var = int(var)
        if not 0 <= var < self.size:
            raise ProvgraphError(f"variable id {var} is out of range (0..{self.size - 1})")
        block = self._blocks[bisect_right(self._starts, var) - 1]
        return block, var - block.start

    def name(self, var: int) -> str:
        """The stable name of variable ``var``."""
        block, pos = self._locate(var)
        return block.name(pos)

    def latex(self, var: int) -> str:
        """LaTeX of variable ``var``: ``x^{(L)}_{j,k}``, ``b^{(L)}_{k}`` or ``n^{(L)}_{k}``."""
        block, pos = self._locate(var)
        return block.latex(pos)

    def names(self, start: int, stop: int) -> list[str]:
        """Names of the ids ``start .. stop-1`` (vectorised over whole blocks)."""
        out: list[str] = []
        for b in self._blocks:
            lo, hi = max(start, b.start), min(stop, b.start + b.count)
            if lo >= hi:
                continue
            pos = np.arange(lo - b.start, hi - b.start)
            if b.kind != "edge":
                prefix = "b" if b.kind == "bias" else "n"
                out.extend(f"{prefix}{b.layer}_{k}" for k in pos.tolist())
                continue
            assert b.indptr is not None and b.indices is not None
            rows = (np.searchsorted(b.indptr, pos, side="right") - 1).tolist()
            cols = b.indices[pos].tolist()
            head = f"x{b.layer}" + (f"i{b.input_index}" if b.multi else "")
            out.extend(f"{head}_{j}_{k}" for j, k in zip(rows, cols))
        return out

    def labels(self, ids: list[int], latex: bool = False) -> list[str]:
        """Names (or LaTeX names) of the sorted ids ``ids``, computed block by block."""
        out: list[str] = []
        array = np.asarray(ids, dtype=np.int64)
        if len(array) and (array[0] < 0 or array[-1] >= self.size):
            self._locate(int(array[0] if array[0] < 0 else array[-1]))  # raises, naming the id
        cuts = np.searchsorted(array, [b.start for b in self._blocks] + [self.size])
        for b, lo, hi in zip(self._blocks, cuts[:-1], cuts[1:]):
            if lo == hi:
                continue
            pos = array[lo:hi] - b.start
            if b.kind != "edge":
                prefix = "b" if b.kind == "bias" else "n"
                if latex:
                    out.extend(f"{prefix}^{{({b.layer})}}_{{{k}}}" for k in pos.tolist())
                else:
                    out.extend(f"{prefix}{b.layer}_{k}" for k in pos.tolist())
                continue
            assert b.indptr is not None and b.indices is not None
            rows = (np.searchsorted(b.indptr, pos, side="right") - 1).tolist()
            cols = b.indices[pos].tolist()
            if latex:
                tag = f",{b.input_index}" if b.multi else ""
                head = f"x^{{({b.layer}{tag})}}"
                out.extend(f"{head}_{{{j},{k}}}" for j, k in zip(rows, cols))
            else:
                head = f"x{b.layer}" + (f"i{b.input_index}" if b.multi else "")
                out.extend(f"{head}_{j}_{k}" for j, k in zip(rows, cols))
        return out

    def record(self, var: int) -> VariableRecord:
        block, pos = self._locate(var)
        j, k = block.endpoints(pos)
        return VariableRecord(
            int(var), block.name(pos), block.kind, block.op, block.layer,
            None if block.kind == "neuron" else block.source, j, block.target, k,
        )

    def is_neuron(self, var: int) -> bool:
        return int(var) >= self.n_edges

    def id_of(self, name: str) -> int:
        """The id of a variable given its name (inverse of :meth:`name`)."""
        match = _NAME.match(name.strip())
        if match is None:
            raise ProvgraphError(
                f"{name!r} is not a variable name (x<L>_<j>_<k>, b<L>_<k>, n<L>_<k>)"
            )
        g = match.groups()
        layer = int(g[0] if g[0] is not None else g[4] if g[4] is not None else g[6])
        ops = self.network.linear_ops
        if layer >= len(ops):
            raise ProvgraphError(f"{name!r}: the network has {len(ops)} linear ops")
        op = ops[layer]
        if g[0] is not None:
            return self.edge_id(op.name, int(g[1] or 0), int(g[2]), int(g[3]))
        if g[4] is not None:
            return self.bias_id(op.name, int(g[5]))
        return self.neuron_id(op.name, int(g[7]))

    def edge_id(self, op: str, input_index: int, j: int, k: int) -> int:
        """Id of the edge ``j → k`` of linear op ``op`` from its input number ``input_index``."""
        blocks = self.edge_blocks.get(op)
        if blocks is None or not 0 <= input_index < len(blocks):
            raise ProvgraphError(f"no linear op {op!r} with input {input_index}")
        b = blocks[input_index]
        assert b.indptr is not None and b.indices is not None
        if not 0 <= j < len(b.indptr) - 1:
            raise ProvgraphError(f"{op}: input neuron {j} is out of range")
        lo, hi = int(b.indptr[j]), int(b.indptr[j + 1])
        pos = lo + int(np.searchsorted(b.indices[lo:hi], k))
        if pos >= hi or int(b.indices[pos]) != k:
            raise ProvgraphError(f"{op}: there is no edge {j} → {k}")
        return b.start + pos

    def bias_id(self, op: str, k: int) -> int:
        b = self.bias_blocks.get(op)
        if b is None or not 0 <= k < b.count:
            raise ProvgraphError(f"{op!r} has no bias edge into neuron {k}")
        return b.start + k

    def neuron_id(self, op: str, k: int) -> int:
        """Id of the variable of hidden neuron ``k`` of linear op ``op``'s output."""
        output = self.network.op(op).output if op not in self.neuron_blocks else op
        b = self.neuron_blocks.get(output)
        if b is None:
            raise ProvgraphError(f"{op!r} has no neuron variables (the logits have none)")
        if not 0 <= k < b.count:
            raise ProvgraphError(f"{op!r} has {b.count} neurons; {k} is out of range")
        return b.start + k

    def neuron_range(self, tensor: str) -> range | None:
        """Ids of the neuron variables of ``tensor`` (``None`` when it has none)."""
        b = self.neuron_blocks.get(tensor)
        return None if b is None else range(b.start, b.start + b.count)

    def records(self, ids: Any = None) -> list[dict[str, Any]]:
        """Plain records (dicts) of the given ids (all variables by default)."""
        ids = range(self.size) if ids is None else ids
        return [self.record(v).as_dict() for v in ids]

    def table(self, ids: Any = None, limit: int | None = 200) -> str:
        """A plain-text table of the variables (name → op, tensors, indices and positions)."""
        ids = list(range(self.size) if ids is None else ids)
        shown = ids if limit is None else ids[:limit]
        shapes = self.network.shapes
        header = ("name", "kind", "op", "from", "j", "to", "k")
        rows = []
        for v in shown:
            r = self.record(v)
            src = "" if r.source is None else r.source
            j = "" if r.j is None else _position(r.j, shapes.get(r.source or "", ()))
            rows.append((r.name, r.kind, r.op, src, j, r.target, _position(r.k, shapes[r.target])))
        widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)] if rows else None
        if widths is None:
            return "(no variables)"
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip()
                 for line in (header, *rows)]
        if len(shown) < len(ids):
            lines.append(f"... {len(ids) - len(shown)} more")
        return "\n".join(lines)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"Variables({self.n_edges} edge, {self.n_neurons} neuron variables)"


def _position(flat: int, shape: tuple[int, ...]) -> str:
    """``"j"`` for a 1-d tensor, ``"j (c, h, w)"`` otherwise."""
    if len(shape) <= 1:
        return str(flat)
    pos = tuple(int(i) for i in np.unravel_index(flat, shape))
    return f"{flat} {pos}"
