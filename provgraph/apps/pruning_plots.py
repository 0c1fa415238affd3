"""Pruning curves: test loss and accuracy against the pruned fraction, one line per method."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from provgraph.apps.pruning import (
    INPUT_METHODS,
    UNIT_METHODS,
    WEIGHT_METHODS,
    CurvePoint,
    PruningResult,
)
from provgraph.io.heatmaps import save_figure

STYLES = {"relevance": ("C3", "o"), "|relevance|": ("C1", "D"), "l1": ("C0", "s"),
          "l2": ("C9", "^"), "activation": ("C2", "v"), "random": ("0.5", "x"),
          "magnitude": ("C0", "s")}


def _draw(ax_loss, ax_acc, curves: dict[str, Sequence[CurvePoint]], what: str,
          label_suffix: str = "") -> None:
    for method, points in curves.items():
        if not points:
            continue
        colour, marker = STYLES.get(method, ("k", "."))
        xs = [100 * p.fraction for p in points]
        name = method + label_suffix
        ax_loss.plot(xs, [p.loss for p in points], color=colour, marker=marker, label=name)
        ax_acc.plot(xs, [100 * p.accuracy for p in points], color=colour, marker=marker,
                    label=name)
    for ax, ylabel in ((ax_loss, "test loss (cross-entropy)"), (ax_acc, "test accuracy (%)")):
        ax.set_xlabel(f"{what} pruned (%)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)


def _figure(rows: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, 2, figsize=(10, 3.8 * rows), squeeze=False)


def plot_units(result: PruningResult, path: str | Path, title: str | None = None) -> None:
    """Loss and accuracy as neurons/filters are pruned, for every ranking method."""
    fig, axes = _figure(1)
    kinds = {r.what for r in result.rankings if r.what in ("neuron", "filter")}
    what = "/".join(sorted(kinds)) + "s" if kinds else "units"
    _draw(axes[0, 0], axes[0, 1], {m: result.curve("unit", m) for m in UNIT_METHODS}, what)
    semiring = result.info.get("semiring", "")
    fig.suptitle(title or f"pruning {what} ({result.info.get('scope', '')} scope; relevance: "
                 f"{semiring})")
    save_figure(fig, path)


def plot_inputs_weights(result: PruningResult, path: str | Path) -> None:
    """Loss and accuracy as input elements (and single weights, if ranked) are pruned."""
    has_weights = any(p.what == "weight" for p in result.points)
    fig, axes = _figure(2 if has_weights else 1)
    _draw(axes[0, 0], axes[0, 1], {m: result.curve("input", m) for m in INPUT_METHODS},
          "inputs")
    if has_weights:
        _draw(axes[1, 0], axes[1, 1], {m: result.curve("weight", m) for m in WEIGHT_METHODS},
              f"weights of {result.info.get('weights')}")
    fig.suptitle(f"pruning inputs and single weights (relevance: {result.info.get('semiring')})")
    save_figure(fig, path)
