"""Triton kernels of the ⊕⊗-contraction primitive (imported only by the Triton backend).

One program contracts a tile of rows ``j`` of a CSR block against a tile of relevance columns:

    out[j, c] = ⊕_{p ∈ row j} Θ(r_p) ⊗ R[cols[p], c]

The edge annotation ``Θ(r_p)`` is computed in registers from the edge's real weight (Θ is a
compile-time constant: identity, ≡ 1, threshold, −log or log) and never stored. Every semiring
is a pair of compile-time operations on float64 values:

========  ===========  ========  =========================================
code      ⊕            ⊗         carrier
========  ===========  ========  =========================================
SUM_PROD  +            ×         real; Boolean and counting as 0/1 and integer floats
MAX_PROD  max          ×         Viterbi, Boolean (0/1)
MIN_SUM   min          +         tropical
MAX_MIN   max          min       fuzzy
LSE_SUM   logaddexp    +         log-domain counts
========  ===========  ========  =========================================

Counting runs in SUM_PROD on integer-valued float64, exact while every partial sum stays below
2⁵³; the backend checks each result against that bound.
"""

from __future__ import annotations

import triton
import triton.language as tl

#: semiring operation pairs and Θs by name, the compile-time codes the kernels take
CODES = {name: code for code, name in enumerate(
    ("SUM_PROD", "MAX_PROD", "MIN_SUM", "MAX_MIN", "LSE_SUM"))}
CODES.update({name: code for code, name in enumerate(
    ("THETA_VALUES", "THETA_IDENTITY", "THETA_ONE", "THETA_THRESHOLD", "THETA_NEGLOG",
     "THETA_LOG"))})
SUM_PROD, MAX_PROD, MIN_SUM, MAX_MIN, LSE_SUM = (tl.constexpr(i) for i in range(5))
#: Θ codes: the value an edge carries in K, computed from its real weight r
THETA_VALUES, THETA_IDENTITY, THETA_ONE, THETA_THRESHOLD, THETA_NEGLOG, THETA_LOG = (
    tl.constexpr(i) for i in range(6))


@triton.jit
def _times(a, b, OPS: tl.constexpr):
    if OPS == SUM_PROD or OPS == MAX_PROD:
        out = a * b
    elif OPS == MAX_MIN:
        out = tl.minimum(a, b)
    else:  # MIN_SUM, LSE_SUM: ⊗ is +
        out = a + b
    return out


@triton.jit
def _plus(a, b, OPS: tl.constexpr):
    if OPS == SUM_PROD:
        out = a + b
    elif OPS == MIN_SUM:
        out = tl.minimum(a, b)
    elif OPS == LSE_SUM:
        hi = tl.maximum(a, b)
        lo = tl.minimum(a, b)
        safe = tl.where(hi == float("-inf"), 0.0, hi)
        out = tl.where(hi == float("-inf"), hi, hi + tl.log(1.0 + tl.exp(lo - safe)))
    else:
        out = tl.maximum(a, b)
    return out


@triton.jit
def _reduce(x, OPS: tl.constexpr):
    """⊕ over axis 1 (the edges) of a (rows, edges, columns) tile."""
    if OPS == SUM_PROD:
        out = tl.sum(x, axis=1)
    elif OPS == MIN_SUM:
        out = tl.min(x, axis=1)
    elif OPS == LSE_SUM:
        hi = tl.max(x, axis=1)
        safe = tl.where(hi == float("-inf"), 0.0, hi)
        total = tl.sum(tl.exp(x - tl.expand_dims(safe, 1)), axis=1)
        out = tl.where(hi == float("-inf"), hi, safe + tl.log(total))
    else:
        out = tl.max(x, axis=1)
    return out


@triton.jit
def _theta(r, threshold, zero, one, THETA: tl.constexpr, INTEGRAL: tl.constexpr):
    """Θ(r) in K, elementwise (``INTEGRAL``: the carrier holds integers, as numpy's cast)."""
    if THETA == THETA_ONE:
        out = tl.zeros_like(r) + one
    elif THETA == THETA_THRESHOLD:
        out = tl.where(r >= threshold, one, zero)
    elif THETA == THETA_NEGLOG:
        out = tl.where(r > 0, -tl.log(tl.where(r > 0, r, 1.0)), zero)
    elif THETA == THETA_LOG:
        out = tl.where(r > 0, tl.log(tl.where(r > 0, r, 1.0)), zero)
    elif INTEGRAL:  # identity into an integer carrier truncates toward zero, as astype
        out = tl.where(r >= 0, tl.floor(r), tl.ceil(r))
    else:  # identity (or values already in K)
        out = r
    return out


@triton.jit
def contract_rows(
    indptr, cols, weights, r_out, out, n_rows, n_cols, max_len, THRESHOLD, zero, one,
    OPS: tl.constexpr, THETA: tl.constexpr, INTEGRAL: tl.constexpr, BOOLEAN: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``out[j, c] = ⊕_p Θ(weights[p]) ⊗ r_out[cols[p], c]`` for the ``BLOCK_R`` rows of tile
    ``program_id(0)`` and the ``BLOCK_C`` columns of tile ``program_id(1)``, over the edges in
    steps of ``BLOCK_E`` (``max_len``: the longest row); ``r_out``, ``out`` are row-major.
    ``THRESHOLD`` points to θ as float64 (a float argument would reach the kernel as
    float32)."""
    threshold = tl.load(THRESHOLD)
    j = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    j_ok = j < n_rows
    c_ok = c < n_cols
    start = tl.load(indptr + j, mask=j_ok, other=0)
    end = tl.load(indptr + j + 1, mask=j_ok, other=0)
    acc = tl.zeros((BLOCK_R, BLOCK_C), dtype=tl.float64) + zero
    for offset in range(0, max_len, BLOCK_E):
        p = start[:, None] + offset + tl.arange(0, BLOCK_E)[None, :]  # (rows, edges)
        p_ok = p < end[:, None]
        k = tl.load(cols + p, mask=p_ok, other=0)
        tile_ok = p_ok[:, :, None] & c_ok[None, None, :]
        src = tl.load(r_out + k[:, :, None] * n_cols + c[None, None, :], mask=tile_ok,
                      other=zero)
        if THETA != THETA_ONE:
            r = tl.load(weights + p, mask=p_ok, other=0.0)
            ann = _theta(r, threshold, zero, one, THETA, INTEGRAL)
            if BOOLEAN:
                ann = tl.where(ann != 0, one, zero)
            src = _times(ann[:, :, None], src, OPS)
        src = tl.where(tile_ok, src, zero)
        acc = _plus(acc, _reduce(src, OPS), OPS)
    tl.store(out + j[:, None] * n_cols + c[None, :], acc, mask=j_ok[:, None] & c_ok[None, :])


@triton.jit
def combine(a, b, out, n, OPS: tl.constexpr, BLOCK: tl.constexpr):
    """``out = a ⊕ b`` elementwise over ``n`` values (fan-in of relevance)."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = i < n
    x = tl.load(a + i, mask=ok)
    y = tl.load(b + i, mask=ok)
    tl.store(out + i, _plus(x, y, OPS), mask=ok)


def grid(rows: int, n_cols: int, block_r: int, block_c: int) -> tuple[int, int]:
    return triton.cdiv(rows, block_r), triton.cdiv(n_cols, block_c)
