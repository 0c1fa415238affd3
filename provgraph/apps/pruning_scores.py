"""What pruning ranks by: mean relevance over a dataset (a streaming reduction), and baselines.

For a unit u (a neuron, or a filter with its ``P`` positions) and samples ``i = 1..N`` explained
for their own labels ``y_i`` in a semiring K::

    score_rel(u) = (1/N) Σ_i Σ_{p ∈ u} float(R_p^{(i)})        (seed 000: LRP pruning)
    score_abs(u) = (1/N) Σ_i |Σ_{p ∈ u} float(R_p^{(i)})|      (signed semirings: real)
    score_act(u) = (1/N) Σ_i (1/P) Σ_{p ∈ u} a_p^{(i)}           (mean activation)

and for a single weight ``w_jk`` of a dense layer the edge relevance ``Θ(r_jk) ⊗ R_k`` (DESIGN
§1, one factor of every path through the edge), averaged in the same way. ``float`` is the
semiring's :meth:`~provgraph.algebra.semirings.Semiring.to_float` (path counts, the strength of
the best path, ``exp(−cost)`` for tropical). The weight baselines are the ℓ1 and ℓ2 norms of a
unit's incoming weights (Molchanov et al. 2017).

:class:`UnitRelevance` and :class:`EdgeRelevance` are
:class:`~provgraph.apps.streaming.Reduction` s: ``map`` per chunk, ``combine`` adds, ``finish``
divides, so they run chunk by chunk or partition by partition. The model travels as ONNX bytes
or a path (a :class:`~provgraph.apps.model_handle.ModelHandle`: pickled as its sha256, the bytes
sent once per worker), the network is loaded once per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from provgraph.apps.datasets import Chunk
from provgraph.apps.model_handle import ModelHandle
from provgraph.apps.onnx_pruning import OnnxGraph, PrunableLayer
from provgraph.apps.relevance_job import torch_threads
from provgraph.model.network import Network


def unit_tensors(network: Network, layer: PrunableLayer) -> tuple[str, str]:
    """(relevance tensor, activation tensor) of a layer's units in the explained network: the
    first of its tensors the network knows, and the last one that still has one row per unit."""
    known = [t for t in layer.tensors if t in network.shapes]
    per_unit = [t for t in known if network.shapes[t][0] == layer.size]
    if not per_unit:
        raise ValueError(f"{network.name}: none of {layer.tensors} holds {layer.node}'s units")
    return per_unit[0], per_unit[-1]


def weight_norms(model: onnx.ModelProto, layer: PrunableLayer, order: int) -> np.ndarray:
    """ℓ1 (``order=1``) or ℓ2 norm of each unit's incoming weights (bias excluded)."""
    graph = OnnxGraph(model)
    init, axis, _ = graph.edit(layer.node).producer[0]
    w = np.moveaxis(graph.init[init].astype(np.float64), axis, 0).reshape(layer.size, -1)
    return np.linalg.norm(w, ord=order, axis=1)


class _ModelReduction:
    """Shared state of the reductions: the model (bytes or path), explained lazily."""

    threads = 1
    """Torch threads of ``map``: fixed, so float sums do not depend on the process."""

    def __init__(self, model: bytes | str | Path, semiring: str, rule: Any, theta: Any,
                 backend: str) -> None:
        # pickled as its sha256: the bytes reach each worker once (model_handle)
        self.model = ModelHandle(model)
        self.semiring, self.rule, self.theta, self.backend = semiring, rule, theta, backend

    @property
    def network(self) -> Network:
        """The explained network, imported once per process."""
        return self.model.network()

    def map(self, chunk: Chunk) -> dict[str, Any]:
        """The chunk's sums (:meth:`sums`), computed on :attr:`threads` torch threads."""
        with torch_threads(self.threads):
            return self.sums(chunk)

    def sums(self, chunk: Chunk) -> dict[str, Any]:
        """The chunk's partial (each subclass's own statistics)."""
        raise NotImplementedError

    def samples(self, chunk: Chunk) -> np.ndarray:
        return chunk.x.reshape((len(chunk.indices),) + self.network.input_shape)

    def combine(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        """Sums of both partials."""
        return {k: a[k] + b[k] for k in a}

    def finish(self, partial: dict[str, Any]) -> dict[str, Any]:
        """Every sum divided by the number of samples."""
        n = partial["count"]
        return {k: (v / n if k != "count" else v) for k, v in partial.items()}


class UnitRelevance(_ModelReduction):
    """Mean relevance and mean activation of every unit of ``layers`` and of every input.

    ``map`` explains the chunk's samples for their labels (``explain_batched``, keeping only
    the units' tensors; ``dtype`` is the torch backend's, by default float32 for the real
    semiring) and returns float64 sums: ``relevance/<node>``, ``|relevance|/<node>`` and
    ``activation/<node>`` (one value per unit), ``relevance/input`` (one per input element)
    and ``count``.
    """

    def __init__(self, model: bytes | str | Path, layers: list[PrunableLayer],
                 semiring: str = "real", rule: Any = None, theta: Any = None,
                 backend: str = "torch", dtype: str | None = None) -> None:
        super().__init__(model, semiring, rule, theta, backend)
        self.layers = list(layers)
        self.dtype = dtype

    def sums(self, chunk: Chunk) -> dict[str, Any]:
        """Sums over the chunk's samples of each unit's relevance and activation."""
        from provgraph.api import explain_batched
        from provgraph.model.trace import forward_trace

        net = self.network
        x = self.samples(chunk)
        tensors = {layer.node: unit_tensors(net, layer) for layer in self.layers}
        batch = explain_batched(net, x, self.semiring, backend=self.backend,
                                target=chunk.targets(), rule=self.rule, theta=self.theta,
                                keep=[t for t, _ in tensors.values()], dtype=self.dtype)
        k = batch.semiring
        trace = forward_trace(net, x, dtype=torch.float64)
        out: dict[str, Any] = {"count": len(x)}
        for layer in self.layers:
            rel_t, act_t = tensors[layer.node]
            rel = k.to_float(batch.layer(rel_t)).reshape(len(x), layer.size, -1)
            out[f"relevance/{layer.node}"] = rel.sum(axis=(0, 2))
            out[f"|relevance|/{layer.node}"] = np.abs(rel.sum(axis=2)).sum(axis=0)
            act = trace[act_t].detach().cpu().numpy().reshape(len(x), layer.size, -1)
            out[f"activation/{layer.node}"] = act.mean(axis=2).sum(axis=0)
        out["relevance/input"] = k.to_float(batch.input).reshape(len(x), -1).sum(axis=0)
        return out


class EdgeRelevance(_ModelReduction):
    """Mean edge relevance ``float(Θ(r_jk) ⊗ R_k)`` of every weight of one dense op.

    ``op`` is the provgraph op name of a Dense layer (the ONNX node name); the result's
    ``edges`` is ``(n_in, n_out)``. Each sample is annotated and aggregated on its own (the
    edge weights ``r_jk`` are those of that sample's forward pass).
    """

    def __init__(self, model: bytes | str | Path, op: str, semiring: str = "real",
                 rule: Any = None, theta: Any = None, backend: str = "scipy") -> None:
        super().__init__(model, semiring, rule, theta, backend)
        self.op = op

    def sums(self, chunk: Chunk) -> dict[str, Any]:
        """Sums over the chunk's samples of each edge's relevance."""
        from provgraph.algebra.composites import get_composite
        from provgraph.algebra.theta import get_theta
        from provgraph.engine.explainer import Explainer

        net = self.network
        op = net.op(self.op)
        explainer = Explainer(net)
        total: np.ndarray | None = None
        for x, y in zip(self.samples(chunk), chunk.targets()):
            graph = explainer.annotate(x)
            rel = graph.aggregate(self.semiring, rule=self.rule, theta=self.theta,
                                  target=int(y), backend=self.backend, keep=[op.output])
            k, layer = rel.semiring, graph.layers[op.name]
            composite = get_composite(self.rule, k)
            theta = composite.theta_for(layer, get_theta(self.theta, k))
            (r,), _ = graph.edge_weights(op, composite.rule_for(layer))
            rows = np.repeat(np.arange(r.shape[0]), np.diff(r.indptr))
            r_out = rel.tensors[op.output][:, 0]
            values = k.to_float(k.mul(theta(np.asarray(r.data), k, layer), r_out[r.indices]))
            dense = np.zeros((2,) + r.shape)
            np.add.at(dense[0], (rows, r.indices), values)
            np.add.at(dense[1], (rows, r.indices), np.abs(values))
            total = dense if total is None else total + dense
        return {"count": len(chunk.indices), "edges": total[0], "|edges|": total[1]}


@dataclass(frozen=True)
class Ranking:
    """Scores of the units of one layer (or of single weights, or of inputs): larger is kept
    longer. ``what`` names the scored things (``neuron``, ``filter``, ``weight``, ``input``)."""

    method: str
    layer: str
    what: str
    scores: np.ndarray

    def order(self) -> np.ndarray:
        """Indices from least to most important (ties broken by index, stably)."""
        return np.argsort(self.scores.reshape(-1), kind="stable")


def random_scores(size: int, seed: int, salt: int = 0) -> np.ndarray:
    """A seeded random ranking (uniform scores)."""
    return np.random.default_rng([seed, salt]).random(size)
