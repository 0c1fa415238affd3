"""Explain one bundled MNIST digit in several semirings from one annotated graph, then a batch
of digits, each for its own label, with an Explainer configured once.

Run: ``python examples/quickstart.py`` (writes ``out/quickstart.png``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from provgraph.api import annotate
from provgraph.apps.demo import bundled_model_path, bundled_samples
from provgraph.engine.explainer import Explainer
from provgraph.io.heatmaps import save_grid


def main() -> None:
    x, y = bundled_samples()
    digit = x[7]
    graph = annotate(bundled_model_path(), digit)  # one forward pass
    print(f"label {y[7]}, predicted {graph.predicted_class}")

    rels = [
        graph.aggregate("real", rule="epsilon:0.01", init="logit"),  # classic LRP-ε
        graph.aggregate("boolean", theta=0.01),  # pixels with a path of weights ≥ 0.01
        graph.aggregate("counting"),  # how many relevant paths per pixel
        graph.aggregate("viterbi"),  # strength of each pixel's best path
    ]
    for rel in rels:
        flat = np.asarray(rel.input, dtype=np.float64).reshape(-1)
        print(f"{rel.semiring.name:>9}: most relevant pixel {int(np.argmax(flat))}")
    out = Path("out/quickstart.png")
    save_grid([rels], [digit], out, [f"digit {y[7]}"])
    print(f"written {out}")

    explainer = Explainer(bundled_model_path(), "real", rule="epsilon:0.01", backend="torch")
    batch = explainer(x[:4], target=y[:4])  # one label per sample, one backward pass
    for i, rel in enumerate(batch):
        print(f"digit {i} (label {rel.target}): total input relevance {rel.input.sum():.3f}")


if __name__ == "__main__":
    main()
