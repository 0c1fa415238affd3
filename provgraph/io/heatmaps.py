"""Heatmaps of input relevance, drawn as each semiring says (colour map, label, scale)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from provgraph.engine.relevance import Relevance
from provgraph.io.atomic import atomic_write
from provgraph.io.inputs import image_layout


def input_map(rel: Relevance, target_index: int = 0) -> np.ndarray:
    """The input relevance as a 2-d float image (channels ⊕-combined in the semiring)."""
    return _input_display(rel, target_index)[0]


def _input_display(rel: Relevance, target_index: int) -> tuple[np.ndarray, str]:
    """``(2-d float image, colour-bar label)`` of the input relevance, as the semiring shows it."""
    k = rel.semiring
    r = rel.layer(rel.network.input_name, target_index)
    layout = image_layout(rel.network.input_shape)
    if layout is not None:
        c, h, w = layout
        r = r.reshape(c, h, w)
        r = k.sum(r, axis=0) if c > 1 else r[0]
    elif r.ndim != 2:
        r = r.reshape(1, -1)
    return k.display(r)


def draw(ax, rel: Relevance, target_index: int = 0, colorbar: bool = True):
    """Draw ``rel``'s input map on a matplotlib axis, in the semiring's colours."""
    k = rel.semiring
    values, label = _input_display(rel, target_index)
    limits = {}
    if k.symmetric_colors:
        finite = np.abs(values[np.isfinite(values)])
        lim = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        limits = {"vmin": -lim, "vmax": lim}
    im = ax.imshow(values, cmap=k.colormap, interpolation="nearest", **limits)
    ax.set_xticks([])
    ax.set_yticks([])
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
    return im


def save_figure(fig, path: str | Path, metadata: dict | None = None) -> None:
    """Save a matplotlib figure atomically (format from the suffix); ``metadata`` is stored as
    JSON in a PNG's ``Description`` text chunk (what the picture shows travels with it)."""
    import json

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fmt = Path(path).suffix.lstrip(".") or "png"
    extra = {}
    if metadata is not None and fmt == "png":
        extra["metadata"] = {"Software": "provgraph",
                             "Description": json.dumps(metadata, default=float)}
    fig.savefig(buf, format=fmt, dpi=120, bbox_inches="tight", **extra)
    plt.close(fig)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))


def save_heatmap(rel: Relevance, path: str | Path, sample: np.ndarray | None = None) -> None:
    """Write the input relevance map (beside the sample itself, when given) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = 2 if sample is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(4 * ncols, 3.6), squeeze=False)
    if sample is not None:
        _draw_sample(axes[0, 0], rel, sample)
    draw(axes[0, -1], rel)
    axes[0, -1].set_title(f"{rel.semiring.name}, class {rel.target}")
    save_figure(fig, path)


def save_grid(
    rows: Sequence[Sequence[Relevance]],
    samples: Sequence[np.ndarray],
    path: str | Path,
    row_labels: Sequence[str] | None = None,
) -> None:
    """One row per sample: the sample, then one heatmap per relevance in that row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = 1 + max(len(r) for r in rows)
    fig, axes = plt.subplots(
        len(rows), ncols, figsize=(3.5 * ncols, 2.5 * len(rows)), squeeze=False
    )
    for i, (rels, sample) in enumerate(zip(rows, samples)):
        _draw_sample(axes[i, 0], rels[0], sample)
        if row_labels:
            axes[i, 0].set_ylabel(row_labels[i])
        for j, rel in enumerate(rels, start=1):
            draw(axes[i, j], rel, colorbar=True)  # every map has its own scale
            if i == 0:
                axes[i, j].set_title(rel.semiring.name)
    save_figure(fig, path)


def _draw_sample(ax, rel: Relevance, sample: np.ndarray) -> None:
    layout = image_layout(rel.network.input_shape)
    arr = np.asarray(sample, dtype=np.float64)
    if layout is not None:
        c, h, w = layout
        arr = arr.reshape(c, h, w)
        arr = arr[0] if c == 1 else np.clip(arr.transpose(1, 2, 0), 0, 1)
    else:
        arr = arr.reshape(1, -1)
    ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
