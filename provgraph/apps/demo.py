"""The bundled demo: the MNIST classifier explained in four semirings, with heatmaps."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import numpy as np

from provgraph.api import annotate, load
from provgraph.engine.relevance import Relevance
from provgraph.errors import InputError
from provgraph.io.heatmaps import save_grid, save_heatmap
from provgraph.model.network import Network

DEMO_SEMIRINGS = ("real", "boolean", "counting", "viterbi")


def bundled_model_path() -> Path:
    """Path of the bundled 784-300-100-10 MNIST classifier (ONNX)."""
    return Path(str(resources.files("provgraph") / "data" / "mnist_mlp.onnx"))


def bundled_cnn_path() -> Path:
    """Path of the bundled small MNIST CNN (ONNX; input (N, 1, 28, 28), ``pixel / 255``)."""
    return Path(str(resources.files("provgraph") / "data" / "mnist_cnn.onnx"))


def bundled_samples() -> tuple[np.ndarray, np.ndarray]:
    """Ten test digits (one per class), ``x`` of shape (10, 784) in [0, 1], and labels."""
    with np.load(str(resources.files("provgraph") / "data" / "mnist_samples.npz")) as data:
        return data["x"].astype(np.float64), data["y"].astype(np.int64)


def summarize(rel: Relevance) -> str:
    """One short figure per semiring for the summary table."""
    r = rel.input.reshape(-1)
    name = rel.semiring.name
    if name == "real":
        return f"input {float(np.sum(r)):+.3f} bias {float(rel.bias_total()):+.3f}"
    if name == "boolean":
        return f"{int(np.count_nonzero(r))} px with a path"
    if name == "counting":
        return f"{sum(int(v) for v in r):,} paths"
    return f"mean best path {float(np.mean(r)):.3g}"


def run_demo(out_dir: Path, n_digits: int = 4, progress: bool = True) -> list[dict[str, object]]:
    """Explain ``n_digits`` bundled digits in real, Boolean, Counting and Viterbi semirings.

    Prints a summary table, writes one heatmap per digit and semiring and an overview grid to
    ``out_dir``, and returns the table's rows; ``progress`` shows a progress bar.
    """
    from tqdm.auto import tqdm

    if not 1 <= n_digits <= 10:
        raise InputError(f"--digits must be between 1 and 10, got {n_digits}")
    net: Network = load(bundled_model_path())
    xs, ys = bundled_samples()
    rows, table = [], []
    for i in tqdm(range(n_digits), desc="explaining digits", unit="digit", disable=not progress):
        start = time.perf_counter()
        graph = annotate(net, xs[i])
        rels, timings = [], {}
        for s in DEMO_SEMIRINGS:
            t0 = time.perf_counter()
            rels.append(graph.aggregate(s, target=int(ys[i])))
            timings[s] = time.perf_counter() - t0
        for rel in rels:
            save_heatmap(rel, out_dir / f"digit{int(ys[i])}_{rel.semiring.name}.png", xs[i])
        rows.append(rels)
        table.append(
            {
                "label": int(ys[i]),
                "predicted": graph.predicted_class,
                "summary": [summarize(r) for r in rels],
                "seconds": time.perf_counter() - start,
                "timings": timings,
            }
        )
    grid = out_dir / "demo_grid.png"
    save_grid(rows, xs[:n_digits], grid, [f"digit {int(y)}" for y in ys[:n_digits]])
    print(format_table(table))
    print(f"\nheatmaps written to {out_dir}/ (overview: {grid})")
    return table


def format_table(table: list[dict[str, object]]) -> str:
    header = ["digit", "pred"] + [s for s in DEMO_SEMIRINGS] + ["time"]
    lines = [header]
    for row in table:
        lines.append(
            [str(row["label"]), str(row["predicted"])]
            + list(row["summary"])  # type: ignore[arg-type]
            + [f"{row['seconds']:.2f} s"]
        )
    widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in lines)
