"""The weights the fused numba kernels read, in the kernels' layouts, prepared once per op.

A convolution's kernel reads its modified weights ``v_t(w)`` in two channels-last layouts
(:mod:`~provgraph.backends.numba_window`): ``(C_out, K, C_in/groups)`` (rows of input channels,
for the contraction) and ``(groups, K, C_in/groups, C_out/groups)`` (rows of output channels, for
max-norm denominators). A dense op reads ``(n_out, n_in)``, which is how an ONNX ``Gemm`` stores
its weight (the network holds the transposed view): no copy at all for ``v(w) = w``.

The weights stay in the network's own dtype (float32 for most models) whenever ``v`` is exact
there (``w``, ``−w``, ``|w|``, ``−|w|``: a sign, never a rounding); the kernels
convert each weight to float64 in registers, which is exact, so every edge weight equals the
float64 reference. Any other ``v`` (``w⁺``, whose ``(w + |w|)/2`` could overflow in float32,
``w + γw⁺``, ``w²``, …) is evaluated in float64.

A prepared layout is cached on its op (a weak reference: it goes with the network) when it has at
most :data:`CACHED_BYTES`; larger ones are rebuilt on use, so host memory holds at most one
extra copy of each convolution's weights per layout in use. A dense op's ``v(w)`` that is exact
in storage (``|w|`` of the max-norm rules of Viterbi, tropical and fuzzy) is cached whatever its
size: rebuilding it per call would cost a pass over the largest weights of the network (0.4 GB
for VGG-16's first classifier layer) on every explanation. A dense op's second layout,
``(n_in, n_out)`` (rows of output channels, for the max-norm denominators of a batch), is only
built within :data:`CACHED_BYTES`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import fields

import numpy as np

from provgraph.algebra.rule_form import Weights
from provgraph.model.ops import Conv, Dense, Op

#: the share of each input channel's weights :func:`small_weights` keeps sorted
SMALL_SHARE = 8
#: the largest layout kept between calls (VGG-16's largest convolution: 9.4 MB in float32)
CACHED_BYTES = 2**26

_LAYOUTS: weakref.WeakKeyDictionary[Op, dict[tuple, np.ndarray]] = weakref.WeakKeyDictionary()


def exact_in_storage(weights: Weights) -> bool:
    """Whether ``v(w)`` is exact in any float dtype: one of ``±w, ±|w|``."""
    used = [getattr(weights, f.name) for f in fields(weights) if getattr(weights, f.name)]
    return len(used) == 1 and used[0] in (1.0, -1.0) and bool(weights.w or weights.abs)


def modified(w: np.ndarray, weights: Weights) -> np.ndarray:
    """``v(w)`` in ``w``'s dtype when exact there (:func:`exact_in_storage`), else in float64."""
    if weights.is_identity:
        return w
    return weights(w if exact_in_storage(weights) else w.astype(np.float64))


def read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a``.

    numba compiles a kernel once per argument type, and a read-only array is another type: every
    weight array the kernels get is read-only (a network's own weights are), so that a dense op,
    whose weights are read in place, and a convolution share one compiled kernel.
    """
    view = a.view()
    view.flags.writeable = False
    return view


def _common(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The terms' arrays on a new leading axis (one array: a view), in one dtype, read-only."""
    if len(arrays) == 1:
        return read_only(np.ascontiguousarray(arrays[0])[None])
    dtype = np.result_type(*arrays)
    return read_only(np.stack([a.astype(dtype, copy=False) for a in arrays]))


def _cached(op: Op, key: tuple, build: Callable[[], np.ndarray], always: bool = False
            ) -> np.ndarray:
    store = _LAYOUTS.setdefault(op, {})
    if key in store:
        return store[key]
    value = build()
    if always or value.nbytes <= CACHED_BYTES:
        store[key] = value
    return value


def _conv_rows(op: Conv, weights: Weights) -> np.ndarray:
    def build() -> np.ndarray:
        w = np.asarray(op.weight)
        c_out, cin_g = w.shape[:2]
        v = modified(w, weights).reshape(c_out, cin_g, -1)
        return np.ascontiguousarray(v.transpose(0, 2, 1))

    return _cached(op, ("rows", weights), build)


def _conv_columns(op: Conv, weights: Weights) -> np.ndarray:
    def build() -> np.ndarray:
        w = np.asarray(op.weight)
        c_out, cin_g = w.shape[:2]
        g = op.groups
        v = modified(w, weights).reshape(g, c_out // g, cin_g, -1)
        return np.ascontiguousarray(v.transpose(0, 3, 2, 1))

    return _cached(op, ("columns", weights), build)


def conv_rows(op: Conv, terms: Sequence[Weights]) -> np.ndarray:
    """``V (n_terms, C_out, K, C_in/groups)``: each term's ``v_t(w)``, rows of input channels."""
    return _common([_conv_rows(op, t) for t in terms])


def conv_columns(op: Conv, terms: Sequence[Weights]) -> np.ndarray:
    """``VT (n_terms, groups, K, C_in/groups, C_out/groups)``: rows of output channels."""
    return _common([_conv_columns(op, t) for t in terms])


def dense_rows(op: Dense, terms: Sequence[Weights]) -> np.ndarray:
    """``V (n_terms, n_out, n_in)``: a view of a ``Gemm`` weight stored ``(n_out, n_in)``."""
    def one(weights: Weights) -> np.ndarray:
        def build() -> np.ndarray:
            return np.ascontiguousarray(modified(np.asarray(op.weight), weights).T)

        return _cached(op, ("rows", weights), build, always=exact_in_storage(weights))

    return _common([one(t) for t in terms])


def dense_columns(op: Dense, weights: Weights) -> np.ndarray | None:
    """``v(w) (n_in, n_out)`` of a one-term rule, rows of output channels, read-only.

    ``None`` when it would exceed :data:`CACHED_BYTES` (the caller then reads the rows of
    :func:`dense_rows`).
    """
    w = np.asarray(op.weight)
    itemsize = w.itemsize if exact_in_storage(weights) or weights.is_identity else 8
    if w.size * itemsize > CACHED_BYTES:
        return None

    def build() -> np.ndarray:
        return read_only(np.ascontiguousarray(modified(w, weights)))

    return _cached(op, ("columns", weights), build)


def smallest_weights(v: np.ndarray, groups: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each input channel's smallest non-zero weights, ascending in ``|v|``.

    ``v (C_out, C_in/groups, K)`` → ``values (groups, C_in/groups, m)`` (signed, float64; 0 pads a
    channel with fewer), ``index`` (same shape, ``κ · C_out/groups + c_out`` within the group) and
    ``cut (groups, C_in/groups)``: every non-zero weight outside the list has ``|v| ≥ cut``
    (``inf`` when the list holds them all).
    """
    c_out, cin_g, k = v.shape
    cout_g = c_out // groups
    # (groups, C_in/groups, K · C_out/groups): an input channel's edges, κ-major
    cols = v.reshape(groups, cout_g, cin_g, k).transpose(0, 2, 3, 1).reshape(groups, cin_g, -1)
    fan = cols.shape[2]
    m = max(1, min(fan, -(-fan // SMALL_SHARE)))
    mag = np.abs(cols).astype(np.float64)
    mag[mag == 0.0] = np.inf  # a zero weight is no edge: never in the list
    if m < fan:
        part = np.argpartition(mag, m, axis=2)
        cut = np.take_along_axis(mag, part[..., m:m + 1], axis=2)[..., 0]
        part = part[..., :m]
    else:
        part = np.broadcast_to(np.arange(fan), mag.shape).copy()
        cut = np.full(mag.shape[:2], np.inf)
    order = np.take_along_axis(part, np.argsort(np.take_along_axis(mag, part, 2), 2), 2)
    values = np.take_along_axis(cols, order, axis=2).astype(np.float64)
    values[~np.isfinite(np.take_along_axis(mag, order, 2))] = 0.0
    return np.ascontiguousarray(values), np.ascontiguousarray(order.astype(np.int64)), cut


def small_weights(op: Conv, weights: Weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`smallest_weights` of a convolution's ``v(w)``, cached on the op."""
    key = ("small", weights)
    store = _LAYOUTS.setdefault(op, {})
    if key not in store:
        w = np.asarray(op.weight)
        store[key] = smallest_weights(modified(w, weights).reshape(w.shape[0], w.shape[1], -1),
                                    op.groups)
    return store[key]


def negative_log(v: np.ndarray) -> np.ndarray:
    """``−log v`` in float64 (``+∞`` where ``v = 0``), without a float64 copy of ``v``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(v, dtype=np.float64)
    return np.negative(out, out=out)

