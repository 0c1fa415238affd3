"""Pruning by relevance ranking: rank units by their mean relevance, remove them, measure.

The units of every prunable layer (hidden neurons of dense layers, filters of convolutions;
:mod:`provgraph.apps.onnx_pruning`) are ranked over a training set by

- ``relevance``: their mean relevance for each sample's label in a semiring K under a rule and
  Θ (:class:`~provgraph.apps.pruning_scores.UnitRelevance`; seed 000, after Yeom et al. 2021);
  ``|relevance|``: the mean of its absolute value per sample (the same for semirings without
  negative values; for the real semiring a unit of large negative relevance is kept);
- ``l1``, ``l2``: the norm of their incoming weights (Molchanov et al. 2017);
- ``activation``: their mean activation;
- ``random``: a seeded random order;

and removed least important first, per layer (the same fraction of every layer) or globally
(scores divided by their layer's ℓ2 norm, as Molchanov et al. 2017 do, then pooled). At each
fraction the test set's cross-entropy and accuracy are measured on the masked network.
Input pixels are pruned in the same way (set to zero), and single weights of one dense layer
by their mean edge relevance ``Θ(r_jk) ⊗ R_k`` against ``|w_jk|`` and random.

References
----------
Molchanov, Tyree, Karras, Aila, Kautz. "Pruning convolutional neural networks for resource
efficient inference". ICLR 2017.
Yeom, Seegerer, Lapuschkin, Binder, Wiedemann, Müller, Samek. "Pruning by explaining: a novel
criterion for deep neural network pruning". Pattern Recognition 115, 2021.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import torch

from provgraph.apps.datasets import Dataset
from provgraph.apps.onnx_pruning import OnnxGraph, PrunableLayer, PruningError, mask_model
from provgraph.apps.pruning_scores import Ranking, random_scores, weight_norms
from provgraph.errors import InputError
from provgraph.model.network import Network

UNIT_METHODS = ("relevance", "|relevance|", "l1", "l2", "activation", "random")
INPUT_METHODS = ("relevance", "activation", "random")
WEIGHT_METHODS = ("relevance", "|relevance|", "magnitude", "random")
SCOPES = ("layer", "global")
DEFAULT_FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class CurvePoint:
    """One measurement: ``removed`` of ``total`` things pruned by ``method``."""

    what: str  # "unit", "input" or "weight"
    method: str
    scope: str
    fraction: float
    removed: int
    total: int
    loss: float
    accuracy: float


@dataclass
class PruningResult:
    """The rankings, the curves, and what was checked."""

    rankings: list[Ranking]
    points: list[CurvePoint] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def curve(self, what: str, method: str) -> list[CurvePoint]:
        return [p for p in self.points if p.what == what and p.method == method]

    def ranking(self, method: str, layer: str) -> Ranking:
        for r in self.rankings:
            if r.method == method and r.layer == layer:
                return r
        raise KeyError((method, layer))


def check_fractions(fractions: Iterable[float]) -> tuple[float, ...]:
    """Fractions in [0, 1), sorted; anything else is an :class:`InputError`."""
    out = tuple(sorted({float(f) for f in fractions}))
    if not out or any(not math.isfinite(f) or f < 0 or f >= 1 for f in out):
        raise InputError(f"pruning fractions must lie in [0, 1), got {list(fractions)}")
    return out


def unit_rankings(model: onnx.ModelProto, layers: Sequence[PrunableLayer],
                  stats: Mapping[str, Any], seed: int) -> list[Ranking]:
    """Every method's scores for every layer, from the dataset statistics of
    :class:`~provgraph.apps.pruning_scores.UnitRelevance`."""
    out = []
    for salt, layer in enumerate(layers):
        scores = {
            "relevance": stats[f"relevance/{layer.node}"],
            "|relevance|": stats[f"|relevance|/{layer.node}"],
            "l1": weight_norms(model, layer, 1),
            "l2": weight_norms(model, layer, 2),
            "activation": stats[f"activation/{layer.node}"],
            "random": random_scores(layer.size, seed, salt),
        }
        out += [Ranking(m, layer.node, layer.kind, np.asarray(scores[m], dtype=np.float64))
                for m in UNIT_METHODS]
    return out


def units_to_remove(rankings: Mapping[str, Ranking], sizes: Mapping[str, int], fraction: float,
                    scope: str) -> dict[str, np.ndarray]:
    """The units each layer loses at ``fraction``: the lowest-scored ``⌊fraction·size⌋`` of each
    layer (``layer``), or the lowest ``⌊fraction·Σ size⌋`` of all layers pooled after dividing
    every layer's scores by their ℓ2 norm (``global``); a layer keeps at least one unit."""
    if scope not in SCOPES:
        raise InputError(f"unknown pruning scope {scope!r}; use one of {', '.join(SCOPES)}")
    if scope == "layer":
        return {n: r.order()[: min(int(fraction * sizes[n]), sizes[n] - 1)]
                for n, r in rankings.items()}
    pooled = []
    for n, r in rankings.items():
        norm = float(np.linalg.norm(r.scores)) or 1.0
        pooled += [(s / norm, i, n, u) for i, (u, s) in enumerate(enumerate(r.scores))]
    pooled.sort(key=lambda t: (t[0], t[2], t[1]))
    budget = int(fraction * sum(sizes.values()))
    chosen: dict[str, list[int]] = {n: [] for n in rankings}
    for _, _, n, u in pooled:
        if budget == 0:
            break
        if len(chosen[n]) < sizes[n] - 1:
            chosen[n].append(u)
            budget -= 1
    return {n: np.asarray(v, dtype=np.int64) for n, v in chosen.items()}


def logits_of(network: Network, x: np.ndarray, batch: int = 500) -> np.ndarray:
    """The network's logits on ``x`` (float32 torch, in batches)."""
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), batch):
            values = {network.input_name: torch.as_tensor(x[start:start + batch],
                                                          dtype=torch.float32)}
            for op in network.ops:
                values[op.output] = op.forward(*(values[t] for t in op.inputs))
            outs.append(values[network.output_name].reshape(len(values[network.input_name]), -1))
    return torch.cat(outs).numpy().astype(np.float64)


def loss_and_accuracy(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy ``−log softmax(z)_y`` and accuracy."""
    z = torch.as_tensor(logits)
    labels = torch.as_tensor(np.array(y, dtype=np.int64))
    loss = float(torch.nn.functional.cross_entropy(z, labels))
    return loss, float((np.argmax(logits, axis=1) == np.asarray(y)).mean())


def evaluate(model: onnx.ModelProto, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Test loss and accuracy of an ONNX model (imported by provgraph, run in float32)."""
    from provgraph.api import load

    net = load(model.SerializeToString())
    return loss_and_accuracy(logits_of(net, x.reshape((len(x),) + net.input_shape)), y)


def labelled_arrays(dataset: Dataset, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` (default all) preprocessed samples and labels of ``dataset``."""
    stop = len(dataset) if limit is None else min(limit, len(dataset))
    return dataset.read(0, stop).astype(np.float64), dataset.targets()[:stop]


def unit_curves(model: onnx.ModelProto, rankings: Sequence[Ranking],
                layers: Sequence[PrunableLayer], x: np.ndarray, y: np.ndarray,
                fractions: Sequence[float], scope: str, progress: Any = None) -> list[CurvePoint]:
    """Loss and accuracy after pruning each method's lowest-ranked units, per fraction."""
    sizes = {layer.node: layer.size for layer in layers}
    points = []
    for method in UNIT_METHODS:
        by_layer = {r.layer: r for r in rankings
                    if r.method == method and r.what in ("neuron", "filter")}
        for f in fractions:
            removed = units_to_remove(by_layer, sizes, f, scope)
            loss, acc = evaluate(mask_model(model, removed), x, y)
            points.append(CurvePoint("unit", method, scope, f,
                                     sum(len(v) for v in removed.values()), sum(sizes.values()),
                                     loss, acc))
            if progress is not None:
                progress.update(1)
    return points


def input_curves(model: onnx.ModelProto, rankings: Sequence[Ranking], x: np.ndarray,
                 y: np.ndarray, fractions: Sequence[float], progress: Any = None
                 ) -> list[CurvePoint]:
    """Loss and accuracy with each method's least important input elements set to zero."""
    from provgraph.api import load

    net = load(model.SerializeToString())
    flat = x.reshape(len(x), -1)
    points = []
    for r in rankings:
        order = r.order()
        for f in fractions:
            kept = flat.copy()
            kept[:, order[: int(f * flat.shape[1])]] = 0.0
            loss, acc = loss_and_accuracy(
                logits_of(net, kept.reshape((len(x),) + net.input_shape)), y)
            points.append(CurvePoint("input", r.method, "input", f, int(f * flat.shape[1]),
                                     flat.shape[1], loss, acc))
            if progress is not None:
                progress.update(1)
    return points


def weight_rankings(model: onnx.ModelProto, node: str, edges: np.ndarray,
                    abs_edges: np.ndarray, seed: int) -> list[Ranking]:
    """Edge relevance (mean, and mean absolute value), ``|w|`` and random scores of the
    ``(n_in, n_out)`` weights of ``node``."""
    graph = OnnxGraph(model)
    n = graph.nodes[node]
    w = graph.weight_of(n)
    if n.op_type == "Gemm" and any(a.name == "transB" and a.i for a in n.attribute):
        w = w.T
    if w.shape != edges.shape:
        raise PruningError(f"node {node!r}: weights {w.shape} but edge relevance {edges.shape}")
    scores = {"relevance": edges, "|relevance|": abs_edges, "magnitude": np.abs(w),
              "random": random_scores(w.size, seed, 1000).reshape(w.shape)}
    return [Ranking(m, node, "weight", np.asarray(scores[m], dtype=np.float64))
            for m in WEIGHT_METHODS]


def weight_curves(model: onnx.ModelProto, rankings: Sequence[Ranking], x: np.ndarray,
                  y: np.ndarray, fractions: Sequence[float], progress: Any = None
                  ) -> list[CurvePoint]:
    """Loss and accuracy with each method's least important single weights set to zero."""
    from provgraph.apps.onnx_pruning import mask_weights

    points = []
    for r in rankings:
        order = r.order()
        for f in fractions:
            k = int(f * len(order))
            loss, acc = evaluate(mask_weights(model, r.layer, order[:k]), x, y)
            points.append(CurvePoint("weight", r.method, r.layer, f, k, len(order), loss, acc))
            if progress is not None:
                progress.update(1)
    return points
