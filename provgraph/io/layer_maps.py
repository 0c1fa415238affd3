"""Per-layer relevance maps: the relevance arriving at each linear layer's input, as an image.

Layer ``i`` is the network's ``i``-th linear op (dense, convolution, pooling, …); its map is the
relevance of the tensor it reads, as the seed draws "Layer 0 (Conv2d), Counting – sum over 3
channels": a ``(C, H, W)`` tensor is ⊕-summed over its ``C`` channels in the semiring (a sum of
path counts, an OR of Booleans, a max of best paths), a flat tensor of ``n`` neurons is laid out
row by row on a ``⌈√n⌉``-wide grid (blank cells after the last neuron).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from provgraph.engine.relevance import Relevance
from provgraph.io.atomic import atomic_save_npz
from provgraph.io.heatmaps import save_figure
from provgraph.io.inputs import image_layout


def layer_map(rel: Relevance, tensor: str, target_index: int = 0) -> tuple[np.ndarray, int]:
    """``(map in K, channels summed)``: a ``(C, H, W)`` tensor's channels ⊕-summed (a flat
    input that is an image is read as one), a 2-d one as it is, anything else as one row of its
    neurons."""
    values = rel.layer(tensor, target_index)
    layout = image_layout(rel.network.input_shape)
    if tensor == rel.network.input_name and values.ndim == 1 and layout is not None:
        values = values.reshape(layout)
    if values.ndim == 3:
        return rel.semiring.sum(values, axis=0), values.shape[0]
    if values.ndim == 2:
        return values, 1
    return values.reshape(1, -1), 1


def _grid(floats: np.ndarray) -> np.ndarray:
    if floats.shape[0] != 1 or floats.shape[1] < 16:
        return floats
    n = floats.shape[1]
    width = math.ceil(math.sqrt(n))
    out = np.full(width * math.ceil(n / width), np.nan)
    out[:n] = floats[0]
    return out.reshape(-1, width)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "tensor"


def save_layer_maps(rel: Relevance, folder: str | Path, target_index: int = 0) -> list[Path]:
    """One PNG per linear layer (with a colour bar) and ``layers.npz`` of the maps in K (as
    float64; exact path counts as int64 where they fit); return the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    k = rel.semiring
    written, arrays = [], {}
    for i, op in enumerate(rel.network.linear_ops):
        tensor = op.inputs[0]
        values, channels = layer_map(rel, tensor, target_index)
        floats, label = k.display(values)
        fig, ax = plt.subplots(figsize=(4.2, 3.6))
        limits = {}
        if k.symmetric_colors:
            finite = np.abs(floats[np.isfinite(floats)])
            lim = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
            limits = {"vmin": -lim, "vmax": lim}
        im = ax.imshow(_grid(floats), cmap=k.colormap, interpolation="nearest", **limits)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
        ax.set_xticks([])
        ax.set_yticks([])
        summed = f" – ⊕ over {channels} channels" if channels > 1 else ""
        ax.set_title(f"Layer {i} ({op.type_name}), {k.name}{summed}\ninput {tensor}, class "
                     f"{rel.targets[target_index]}", fontsize=8)
        path = folder / f"layer{i:02d}_{_safe(op.name)}.png"
        save_figure(fig, path)
        written.append(path)
        arrays[f"layer{i:02d}"] = _exact(values, k)
        arrays[f"layer{i:02d}_tensor"] = np.asarray(tensor)
    arrays["info"] = np.asarray(json.dumps({"semiring": k.name, **{
        key: str(rel.info[key]) for key in ("rule", "theta", "init") if key in rel.info}}))
    npz = folder / "layers.npz"
    atomic_save_npz(npz, arrays)
    return written + [npz]


def _exact(values: np.ndarray, semiring: object) -> np.ndarray:
    if values.dtype == object:
        try:
            ints = [int(v) for v in values.reshape(-1)]
        except (TypeError, ValueError):
            return semiring.to_float(values)  # type: ignore[attr-defined]
        if all(abs(v) < 2**63 for v in ints):
            return np.asarray(ints, dtype=np.int64).reshape(values.shape)
        return semiring.to_float(values)  # type: ignore[attr-defined]
    return values
