"""The seed's pruning and provenance-path figures, reproduced on the bundled models.

Writes to ``docs/figures/`` (or ``--out``):

- ``pruning_mlp.png``, ``pruning_cnn.png``: test loss and accuracy as the bundled MLP's hidden
  neurons / the bundled CNN's filters are pruned, relevance ranking (real semiring, LRP-0)
  against ℓ1, ℓ2, mean activation and random;
- ``pruning_semirings.png``: test accuracy with the relevance ranking of each semiring;
- ``pruning_inputs_weights_mlp.png``: input pixels and single weights of the MLP;
- ``annotated_network.png``: the seed's Figure 5 on a small MLP trained here on 4×4 digits;
- ``pruning_table.md``: loss and accuracy at 10/30/50/70 % pruned, and the wall times.

Usage::

    python examples/seed_pruning.py [--cnn-samples 1000] [--out docs/figures] [--network-only]
"""

from __future__ import annotations

import argparse
import io
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from provgraph.apps.demo import bundled_cnn_path, bundled_model_path
from provgraph.apps.path_figure import draw_annotated_network
from provgraph.apps.paths import explain_paths, format_paths
from provgraph.apps.pruning import UNIT_METHODS, WEIGHT_METHODS
from provgraph.apps.pruning_plots import plot_inputs_weights, plot_units
from provgraph.apps.pruning_run import run_pruning
from provgraph.apps.sources import bundled_mnist
from provgraph.io.atomic import atomic_write
from provgraph.io.heatmaps import save_figure

SEMIRINGS = ("real", "boolean", "counting", "viterbi")
TABLE_FRACTIONS = (0.1, 0.3, 0.5, 0.7)


def table(results: dict[str, object], what: str, methods: tuple[str, ...]) -> list[str]:
    """Markdown rows: accuracy % (loss) at the table fractions, one row per ranking."""
    head = "| model | ranking | " + " | ".join(f"{100 * f:g} %" for f in TABLE_FRACTIONS) + " |"
    rows = [head, "|---|---|" + "---|" * len(TABLE_FRACTIONS)]
    for name, result in results.items():
        model, semiring = name.split("/")
        for m in methods:
            curve = {p.fraction: p for p in result.curve(what, m)}
            if not curve or (semiring != "real" and m != "relevance"):
                continue
            label = f"{m} ({semiring})" if m in ("relevance", "|relevance|") else m
            label = label.replace("|", "\\|")  # a literal bar inside a Markdown table
            cells = [f"{100 * curve[f].accuracy:.1f} ({curve[f].loss:.2f})"
                     for f in TABLE_FRACTIONS]
            rows.append(f"| {model} | {label} | " + " | ".join(cells) + " |")
    return rows


def plot_semirings(results: dict[str, object], path: Path) -> None:
    """Accuracy of the relevance ranking in each semiring, with ℓ1 and random for reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, model in zip(axes, ("MLP neurons", "CNN filters")):
        for name, result in results.items():
            if not name.startswith(model.split()[0]):
                continue
            semiring = name.split("/")[1]
            methods = ["relevance"] + (["l1", "random"] if semiring == "real" else [])
            for m in methods:
                pts = result.curve("unit", m)
                label = f"relevance ({semiring})" if m == "relevance" else m
                style = "-o" if m == "relevance" else "--"
                ax.plot([100 * p.fraction for p in pts], [100 * p.accuracy for p in pts],
                        style, label=label, ms=4)
        ax.set_xlabel(f"{model} pruned (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("relevance ranking per semiring (mean relevance over the training split)")
    save_figure(fig, path)


def tiny_mlp() -> tuple[bytes, np.ndarray, int]:
    """A 16-12-8-10 MLP trained on the training digits average-pooled to 4×4 (seconds)."""
    def pooled(split: str) -> tuple[np.ndarray, np.ndarray]:
        d = bundled_mnist(split)
        x = d.read().reshape(-1, 4, 7, 4, 7).mean(axis=(2, 4)).reshape(-1, 16)
        return x.astype(np.float32), d.targets().astype(np.int64)

    torch.manual_seed(0)
    x, y = pooled("train")
    net = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(),
                        nn.Linear(8, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(400):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(xs), ys)
        loss.backward()
        opt.step()
    net.eval()
    tx, ty = pooled("test")
    with torch.no_grad():
        accuracy = float((net(torch.from_numpy(tx)).argmax(1).numpy() == ty).mean())
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 16),), buffer, dynamo=False,
                          input_names=["input"], output_names=["logits"], opset_version=17)
    first_three = int(np.flatnonzero(ty == 3)[0])
    print(f"tiny MLP 16-12-8-10: test accuracy {accuracy:.3f}")
    return buffer.getvalue(), tx[first_three].astype(np.float64), 3


def annotated_network(out: Path) -> None:
    """The seed's Figure 5: the small MLP's neurons, relevant edges and three best paths."""
    model, x, target = tiny_mlp()
    paths = explain_paths(model, x, target=target, k=3)
    print(format_paths(paths))
    draw_annotated_network(paths, out / "annotated_network.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    parser.add_argument("--cnn-samples", type=int, default=1000,
                        help="training samples ranking the CNN's filters (default 1000)")
    parser.add_argument("--network-only", action="store_true",
                        help="only the annotated-network figure (seconds)")
    args = parser.parse_args()
    if args.network_only:
        annotated_network(args.out)
        return
    train, test = bundled_mnist("train"), bundled_mnist("test")
    results, smaller, times = {}, {}, {}
    for model, path, samples in (("MLP", bundled_model_path(), None),
                                 ("CNN", bundled_cnn_path(), args.cnn_samples)):
        for semiring in SEMIRINGS:
            start = time.perf_counter()
            weights = "auto" if (model, semiring) == ("MLP", "real") else None
            result, small = run_pruning(path, train, test, semiring=semiring, samples=samples,
                                        weights=weights, weight_samples=100)
            name = f"{model}/{semiring}"
            results[name], smaller[name] = result, small
            times[name] = time.perf_counter() - start
            print(f"{name}: {times[name]:.1f} s; smaller model check "
                  f"{result.info['export']['onnxruntime_check']}")
    plot_units(results["MLP/real"], args.out / "pruning_mlp.png",
               "bundled MLP 784-300-100-10: hidden neurons pruned per layer")
    plot_units(results["CNN/real"], args.out / "pruning_cnn.png",
               "bundled CNN 8-16 filters: filters pruned per layer")
    plot_inputs_weights(results["MLP/real"], args.out / "pruning_inputs_weights_mlp.png")
    plot_semirings(results, args.out / "pruning_semirings.png")

    annotated_network(args.out)

    lines = ["### Neurons and filters (test accuracy %, cross-entropy in brackets)", ""]
    lines += table(results, "unit", UNIT_METHODS)
    mlp = results["MLP/real"]
    lines += ["", "### Input pixels and single weights of the MLP (real semiring)", ""]
    lines += table({"MLP inputs/real": mlp}, "input", ("relevance", "activation", "random"))
    lines += table({"MLP weights/real": mlp}, "weight",
                   WEIGHT_METHODS)[2:]
    lines += ["", "### Wall times (2 CPU cores)", "", "| run | seconds |", "|---|---|"]
    lines += [f"| {name} ({results[name].info['train']['samples']} training samples) | "
              f"{t:.0f} |" for name, t in times.items()]
    text = "\n".join(lines) + "\n"
    atomic_write(args.out / "pruning_table.md", lambda fh: fh.write(text.encode()))
    print(text)


if __name__ == "__main__":
    main()
