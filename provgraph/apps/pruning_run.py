"""One pruning run: statistics over the training set, curves on the test set, smaller model.

:func:`run_pruning` is what ``provgraph prune`` calls; :func:`write_pruning` writes its
outputs (all atomically): ``curves.csv``, ``curves.png`` (neurons/filters: loss and accuracy
per method), ``inputs_weights.png`` (input pixels and single weights), ``rankings.npz``,
``pruned.onnx`` (the genuinely smaller network at ``export_fraction``, relevance ranking) and
``summary.json`` (provenance: model sha256, semiring, rule, Θ, preprocessing, datasets, the
onnxruntime check of the smaller model against the masked original, wall times).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from provgraph.apps.datasets import Dataset
from provgraph.apps.job_steps import JobSteps
from provgraph.apps.onnx_pruning import OnnxGraph, PrunableLayer, mask_model, shrink_model
from provgraph.apps.pruning import (
    INPUT_METHODS,
    UNIT_METHODS,
    WEIGHT_METHODS,
    PruningResult,
    Ranking,
    check_fractions,
    input_curves,
    labelled_arrays,
    unit_curves,
    unit_rankings,
    units_to_remove,
    weight_curves,
    weight_rankings,
)
from provgraph.apps.pruning_scores import EdgeRelevance, UnitRelevance, random_scores
from provgraph.errors import InputError
from provgraph.io.atomic import atomic_write


def describe_method(semiring: str, rule: Any, theta: Any) -> dict[str, str]:
    """The semiring, rule (composite) and Θ as they are resolved, for the provenance record."""
    from provgraph.algebra.composites import get_composite
    from provgraph.algebra.semirings import get_semiring
    from provgraph.algebra.theta import get_theta

    k = get_semiring(semiring)
    return {"semiring": k.name, "rule": get_composite(rule, k).describe(),
            "theta": repr(get_theta(theta, k))}


def compare_with_onnxruntime(masked: onnx.ModelProto, smaller: onnx.ModelProto,
                             x: np.ndarray) -> dict[str, Any]:
    """``max |logits(smaller) − logits(masked)|`` under onnxruntime on ``x``."""
    try:
        import onnxruntime as ort
    except ImportError:
        return {"checked": False, "reason": "onnxruntime is not installed (pip install "
                                            "'provgraph[ort]')"}
    outs = []
    for m in (masked, smaller):
        session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        feed = session.get_inputs()[0]
        shape = [len(x)] + [d if isinstance(d, int) else -1 for d in feed.shape[1:]]
        outs.append(session.run(None, {feed.name: x.reshape(shape).astype(np.float32)})[0])
    diff = float(np.abs(outs[0] - outs[1]).max())
    scale = float(np.abs(outs[0]).max()) or 1.0
    return {"checked": True, "max_abs_difference": diff, "max_abs_logit": scale,
            "equal": bool(diff <= 1e-4 * scale), "samples": len(x)}


def run_pruning(model: str | Path | bytes, train: Dataset, test: Dataset, *,
                semiring: str = "real", rule: Any = None, theta: Any = None,
                scope: str = "layer", fractions: Any = None, samples: int | None = None,
                test_samples: int | None = None, weights: str | None = "auto",
                weight_samples: int = 100, export_fraction: float = 0.5, seed: int = 0,
                chunk_size: int = 256, backend: str = "torch", progress: bool = True,
                cluster: Any = None, resume: str | Path | None = None, strict: bool = False
                ) -> tuple[PruningResult, onnx.ModelProto]:
    """Rank, prune and measure; return the result and the smaller model at
    ``export_fraction``.

    ``samples`` training samples (default all) give the relevance statistics;
    ``weights`` is a dense node whose single weights are also pruned (``"auto"``: the last
    prunable dense layer, ``None``: none), ranked over ``weight_samples`` training samples.
    The statistics run through :func:`~provgraph.apps.distributed.run_job`: in-process
    (``cluster=None``), on ``"local:N"`` workers, a ``"tcp://HOST:PORT"`` scheduler or a
    ``distributed.Client``, with the same result; ``resume`` and ``strict`` as there.
    """
    from tqdm.auto import tqdm

    from provgraph.apps.pruning import DEFAULT_FRACTIONS

    fractions = check_fractions(DEFAULT_FRACTIONS if fractions is None else fractions)
    export_fraction = check_fractions([export_fraction])[0]
    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    proto = onnx.load_from_string(data)
    layers = OnnxGraph(proto).layers()
    if not layers:
        raise InputError("the model has no prunable layer (a Gemm, MatMul or Conv whose units "
                         "reach another one through unit-wise ops)")
    for name, d in (("training", train), ("test", test)):
        if d.labels is None:
            raise InputError(f"{d.source}: the {name} set needs labels")
    n_train = len(train) if samples is None else min(int(samples), len(train))
    timings: dict[str, float] = {}
    start = time.perf_counter()
    with JobSteps(cluster, resume, strict, progress) as steps:
        stats = steps.run("units", train,
                          UnitRelevance(data, layers, semiring, rule, theta, backend),
                          chunk_size, stop=n_train)
        timings["relevance statistics"] = time.perf_counter() - start
        weight_node = _weight_node(proto, layers, weights)
        edges = None
        if weight_node is not None:
            start = time.perf_counter()
            edges = steps.run("edges", train,
                              EdgeRelevance(data, weight_node, semiring, rule, theta),
                              min(chunk_size, 32), stop=min(weight_samples, len(train)))
            timings["edge relevance"] = time.perf_counter() - start
    rankings = unit_rankings(proto, layers, stats, seed)
    n_inputs = stats["relevance/input"].size
    rankings += [
        Ranking("relevance", "input", "input", stats["relevance/input"]),
        Ranking("activation", "input", "input", train.read(0, n_train).reshape(
            n_train, -1).astype(np.float64).mean(axis=0)),
        Ranking("random", "input", "input", random_scores(n_inputs, seed, 999)),
    ]
    if weight_node is not None and edges is not None:
        rankings += weight_rankings(proto, weight_node, edges["edges"], edges["|edges|"],
                                    seed)
    x, y = labelled_arrays(test, test_samples)
    curves = len(fractions) * (len(UNIT_METHODS) + len(INPUT_METHODS)
                               + (len(WEIGHT_METHODS) if weight_node else 0))
    start = time.perf_counter()
    with tqdm(total=curves, desc="pruning", unit="model", disable=not progress) as bar:
        points = unit_curves(proto, rankings, layers, x, y, fractions, scope, bar)
        points += input_curves(proto, [r for r in rankings if r.what == "input"], x, y,
                               fractions, bar)
        if weight_node is not None:
            points += weight_curves(proto, [r for r in rankings if r.what == "weight"], x, y,
                                    fractions, bar)
    timings["curves"] = time.perf_counter() - start
    by_layer = {r.layer: r for r in rankings
                if r.method == "relevance" and r.what in ("neuron", "filter")}
    removed = units_to_remove(by_layer, {la.node: la.size for la in layers}, export_fraction,
                              scope)
    smaller = shrink_model(proto, removed)
    check = compare_with_onnxruntime(mask_model(proto, removed), smaller, x)
    info = {
        "model_sha256": hashlib.sha256(data).hexdigest(),
        **describe_method(semiring, rule, theta),
        "preprocessing": {"train": train.preprocessing.as_dict(),
                          "test": test.preprocessing.as_dict()},
        "train": {"source": train.source, "samples": n_train},
        "test": {"source": test.source, "samples": len(x)},
        "scope": scope, "fractions": list(fractions), "seed": seed,
        "layers": [asdict(la) for la in layers],
        "weights": weight_node, "weight_samples": weight_samples if weight_node else 0,
        "export": {"fraction": export_fraction, "ranking": "relevance",
                   "removed": {n: v.tolist() for n, v in removed.items()},
                   "onnxruntime_check": check},
        "seconds": timings,
        "bad_samples": [str(b) for b in steps.bad_samples],
    }
    return PruningResult(rankings, points, info), smaller


def _weight_node(model: onnx.ModelProto, layers: list[PrunableLayer], weights: str | None
                 ) -> str | None:
    graph = OnnxGraph(model)
    if weights is None:
        return None
    if weights != "auto":
        if weights not in graph.nodes or graph.nodes[weights].op_type not in ("Gemm", "MatMul"):
            raise InputError(f"--weights {weights!r}: the model has no Gemm or MatMul node of "
                             f"that name")
        return weights
    dense = [la.node for la in layers if la.kind == "neuron"]
    return dense[-1] if dense else None


def write_pruning(result: PruningResult, smaller: onnx.ModelProto, out: str | Path) -> list[Path]:
    """Write the run's outputs to the folder ``out``; return their paths."""
    from provgraph.apps.pruning_plots import plot_inputs_weights, plot_units

    out = Path(out)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["what", "method", "scope", "fraction", "removed", "total", "loss",
                     "accuracy"])
    for p in result.points:
        writer.writerow([p.what, p.method, p.scope, f"{p.fraction:g}", p.removed, p.total,
                         f"{p.loss:.6f}", f"{p.accuracy:.6f}"])
    paths = [out / n for n in ("curves.csv", "curves.png", "inputs_weights.png",
                               "rankings.npz", "pruned.onnx", "summary.json")]
    atomic_write(paths[0], lambda fh: fh.write(buf.getvalue().encode()))
    plot_units(result, paths[1])
    plot_inputs_weights(result, paths[2])
    arrays = {f"{r.method}/{r.layer}": r.scores for r in result.rankings}
    from provgraph.io.atomic import atomic_save_npz

    atomic_save_npz(paths[3], arrays)
    atomic_write(paths[4], lambda fh: fh.write(smaller.SerializeToString()))
    text = json.dumps(result.info, indent=2, default=str) + "\n"
    atomic_write(paths[5], lambda fh: fh.write(text.encode()))
    return paths
