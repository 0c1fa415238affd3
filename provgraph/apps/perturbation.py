"""Perturbing inputs in relevance order: the curves and scores of faithfulness tests.

Everything here works on flat samples ``x`` (B, F) with a per-sample order of the F inputs
(most relevant first) and a ``predict(x) → probabilities`` function; it knows nothing of
semirings. Names follow Quantus (Hedström et al. 2023) where it has the concept:
``features_in_step``, ``patch_size``, ``regions_evaluation``, ``perturb_baseline``, orders
``"morf"``, ``"lerf"``, ``"random"``.

- **pixel flipping** (Bach et al. 2015; Quantus ``PixelFlipping``): replace the inputs in order,
  ``features_in_step`` at a time, and record ``f_k``, the probability of the explained class
  after ``k`` steps (``f_0``: unperturbed);
- **region perturbation** (Samek et al. 2016; Quantus ``RegionPerturbation``): the same over
  non-overlapping ``patch_size × patch_size`` patches (placed as Quantus places them, the grid
  centred when the image is not a multiple of the patch), ranked by the sum of their inputs'
  scores; ``regions_evaluation`` patches;
- **AOPC** (Samek et al. 2016): ``1/(L+1) Σ_{k=0}^{L} (f_0 − f_k)``;
- **AUC**: the trapezoidal area under ``f_k`` against the fraction perturbed (in [0, 1]);
- **SRG** (Blücher et al. 2024): ``AUC(LeRF) − AUC(MoRF)``, large when the most relevant inputs
  matter and the least relevant do not.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from provgraph.errors import InputError

Predict = Callable[[np.ndarray], np.ndarray]
BASELINES = ("zero", "mean", "blur")


def replacement_values(x: np.ndarray, baseline: str | float, layout: tuple[int, int, int],
                       blur_sigma: float = 2.0) -> np.ndarray:
    """What a perturbed input becomes, ``(B, F)``.

    ``"zero"``: 0; ``"mean"``: the sample's own mean over all its inputs; ``"blur"``: the sample
    blurred by a Gaussian of ``blur_sigma`` pixels per channel (``scipy.ndimage``); a number:
    that value.
    """
    x = np.asarray(x, dtype=np.float64)
    if isinstance(baseline, (int, float, np.number)) and not isinstance(baseline, bool):
        if not math.isfinite(float(baseline)):
            raise InputError(f"the perturbation baseline must be finite, got {baseline}")
        return np.full_like(x, float(baseline))
    if baseline == "zero":
        return np.zeros_like(x)
    if baseline == "mean":
        return np.broadcast_to(x.mean(axis=1, keepdims=True), x.shape).copy()
    if baseline == "blur":
        from scipy.ndimage import gaussian_filter

        images = x.reshape((len(x), *layout))
        blurred = gaussian_filter(images, sigma=(0, 0, blur_sigma, blur_sigma), mode="nearest")
        return blurred.reshape(x.shape)
    raise InputError(f"unknown perturbation baseline {baseline!r}; use a number or one of "
                     f"{', '.join(BASELINES)}")


def random_orders(indices: np.ndarray, n_features: int, seed: int) -> np.ndarray:
    """A random order per sample, drawn from ``default_rng([seed, index])`` of its dataset
    index (the same for any chunking)."""
    return np.stack([np.random.default_rng([seed, int(i)]).permutation(n_features)
                     for i in indices])


def positions(order: np.ndarray) -> np.ndarray:
    """``positions[b, j]`` = where input ``j`` comes in sample ``b``'s order."""
    pos = np.empty_like(order)
    rows = np.arange(order.shape[0])[:, None]
    pos[rows, order] = np.arange(order.shape[1])[None, :]
    return pos


def _curve(predict: Predict, x: np.ndarray, replacement: np.ndarray, targets: np.ndarray,
           rank: np.ndarray, cuts: np.ndarray, shape: tuple[int, ...],
           block: int = 16) -> np.ndarray:
    """``f_k`` for ``k = 0..len(cuts)``: inputs with ``rank < cuts[k-1]`` replaced."""
    rows = np.arange(len(x))
    curve = [predict(x.reshape((len(x), *shape)))[rows, targets]]
    for start in range(0, len(cuts), block):
        part = cuts[start : start + block]
        perturbed = np.where(rank[None] < part[:, None, None], replacement[None], x[None])
        p = predict(perturbed.reshape((len(part) * len(x), *shape)))
        curve += list(p.reshape(len(part), len(x), -1)[:, rows, targets])
    return np.stack(curve, axis=1)


def pixel_flipping(predict: Predict, x: np.ndarray, replacement: np.ndarray,
                   targets: np.ndarray, order: np.ndarray, features_in_step: int = 1,
                   shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``(B, 1 + ⌈F / features_in_step⌉)`` probabilities of ``targets`` as the inputs are
    replaced in ``order``, ``features_in_step`` per step (column 0: unperturbed)."""
    n = x.shape[1]
    if features_in_step < 1:
        raise InputError(f"features_in_step must be at least 1, got {features_in_step}")
    cuts = np.minimum(np.arange(1, math.ceil(n / features_in_step) + 1) * features_in_step, n)
    return _curve(predict, x, replacement, targets, positions(order), cuts,
                  shape or x.shape[1:])


def patch_ids(layout: tuple[int, int, int], patch_size: int) -> np.ndarray:
    """The patch of every flat input, ``(F,)``: Quantus's grid (the image padded to a multiple
    of ``patch_size``, ``⌊pad/2⌋`` before and ``⌈pad/2⌉`` after), patches in row-major order;
    every channel of a position is in the same patch."""
    c, h, w = layout
    if patch_size < 1:
        raise InputError(f"patch_size must be at least 1, got {patch_size}")
    top, left = ((-h) % patch_size) // 2, ((-w) % patch_size) // 2
    cols = math.ceil(w / patch_size)
    r = (np.arange(h) + top) // patch_size
    q = (np.arange(w) + left) // patch_size
    ids = r[:, None] * cols + q[None, :]
    return np.broadcast_to(ids, (c, h, w)).reshape(-1)


def patch_orders(scores: np.ndarray, patches: np.ndarray, secondary: np.ndarray | None = None
                 ) -> np.ndarray:
    """Per sample the patches from highest to lowest summed score (ties: higher summed
    ``secondary``, then lower patch index), ``(B, patches)``."""
    n = int(patches.max()) + 1
    sums = np.stack([np.bincount(patches, weights=s, minlength=n) for s in scores])
    keys = [-sums]
    if secondary is not None:
        second = np.stack([np.bincount(patches, weights=s, minlength=n) for s in secondary])
        keys.insert(0, -second)
    return np.stack([np.lexsort([k[b] for k in keys]) for b in range(len(scores))])


def region_perturbation(predict: Predict, x: np.ndarray, replacement: np.ndarray,
                        targets: np.ndarray, patch_order: np.ndarray, patches: np.ndarray,
                        regions_evaluation: int, shape: tuple[int, ...]) -> np.ndarray:
    """``(B, 1 + L)`` probabilities of ``targets`` as the first ``L = regions_evaluation``
    patches of ``patch_order`` are replaced one after another (column 0: unperturbed)."""
    n_regions = min(int(regions_evaluation), patch_order.shape[1])
    if n_regions < 1:
        raise InputError(f"regions_evaluation must be at least 1, got {regions_evaluation}")
    rank = positions(patch_order)[:, patches]  # each input's patch's place in the order
    return _curve(predict, x, replacement, targets, rank, np.arange(1, n_regions + 1), shape)


def auc(curve: np.ndarray) -> np.ndarray:
    """Per row, the trapezoidal area under ``curve`` over ``[0, 1]`` (equally spaced steps)."""
    steps = curve.shape[1] - 1
    return np.trapezoid(curve, dx=1.0 / steps, axis=1) if steps else curve[:, 0]


def aopc(curve: np.ndarray) -> np.ndarray:
    """Per row, ``1/(L+1) Σ_{k=0}^{L} (f_0 − f_k)`` (Samek et al. 2016)."""
    return np.mean(curve[:, :1] - curve, axis=1)


def removal_test(predict: Predict, x: np.ndarray, replacement: np.ndarray,
                 order: np.ndarray, fraction: float,
                 shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Seed 004's test: remove the ``fraction`` least relevant inputs (``"least"``), and
    separately the ``fraction`` most relevant (``"most"``); re-classify.

    Returns per sample ``original``/``least``/``most`` probabilities ``(B, classes)``.
    """
    if not 0 < fraction < 1:
        raise InputError(f"the fraction removed must lie strictly between 0 and 1, got {fraction}")
    n = x.shape[1]
    k = int(round(fraction * n))
    rank = positions(order)
    out = {"original": predict(x.reshape((len(x), *shape)))}
    for name, removed in (("least", rank >= n - k), ("most", rank < k)):
        out[name] = predict(np.where(removed, replacement, x).reshape((len(x), *shape)))
    return out
