r"""Fused Triton kernels of the window and dense linear steps (imported only by the Triton backend).

A convolution (1-D/2-D/3-D, stride, dilation, groups, padding), an average pooling or a dense
layer (a 1×1 convolution over its positions) is never expanded into edges. All arrays are
channels-last with the spatial axes flattened and padded on the right to three axes:

- ``S (terms, P_in·C_in)``: the rule's sources ``s_t(a)``;
- ``V (terms, C_in, K, C_out/groups)``: the modified weights ``v_t(w)`` by input channel, kernel
  offset and output channel of the group (for a dense layer: the weight matrix itself), or for
  pooling ``Vpos (terms, P_out)``: ``v_t(1/n_o)`` per output position;
- ``D (P_out·C_out)``: the denominators ``d_k``; ``R (P_out·C_out, T)``: the output's relevance.

**Gather formulation.** One program computes a block of ``BLOCK_J`` input neurons for one
target. For each kernel offset ``κ`` the output position a neuron ``j`` at input position ``i``
reaches is ``o = (i + p − κ·dil) / s`` (an edge exists where that is an integer inside the
output; for strided and global windows the loop runs over the candidate outputs ``o`` instead,
which are fewer), and for that position the program loops over the output channels of ``j``'s
group in tiles of ``BLOCK_C``:

.. math::

    R_{in}[j] = \bigoplus_{κ,\,c_{out}} Θ(r_{jk}) ⊗ R_k, \qquad
    r_{jk} = \frac{\sum_t s_t(a)_j\, v_t(w_{jk})}{d_k} \quad (0 \text{ where } d_k = 0),

with ``r_jk`` and ``Θ(r_jk)`` in registers only. Each input neuron is written by exactly one
program, so no atomics are needed. That is why the gather form is used rather than a scatter
from the outputs: Triton's atomics cover add, max and min, but not log-sum-exp (log counts) or
max-min (fuzzy), and float atomic adds make real sums and float counts depend on the order in
which programs arrive, so results would not repeat bit for bit; a gather folds every neuron's
edges in a fixed order. Where K's zero is the identity of ⊕ on every contribution (``SKIP``),
outputs whose relevance is zero are masked out of the loads of ``V`` and ``D``: on a GPU a
masked lane issues no memory traffic.

**Factored steps** (``FACTORED``) take no Θ per edge: Viterbi with Θ = identity and the
max-normalised rule, ``max_k (s_j v_jk / d_k) R_k = s_j · max_k v_jk (R_k / d_k)``; tropical with
Θ = −log, ``min_k (−log s_j − log v_jk + log d_k + R_k)``, with the logarithms taken once per
neuron and weight. ``V`` then holds the inner weights, ``R`` the per-output ``t_k`` and ``S`` the
outer factor, which the kernel ⊗-multiplies onto the inner ⊕.

⊕, ⊗ and Θ are compile-time constants (the codes of :mod:`~provgraph.backends.triton_kernels`),
so each (semiring, Θ, terms, layout) combination compiles to its own branch-free kernel. A rule
form has at most :data:`~provgraph.backends.triton_fused.MAX_TERMS` numerator terms here (every
built-in rule has; z^B has three).

References
----------
Tillet, Kung, Cox. "Triton: an intermediate language and compiler for tiled neural network
computations". MAPL 2019.
"""

from __future__ import annotations

import os

import triton
import triton.language as tl

from provgraph.backends.triton_kernels import (
    THETA_ONE,
    _plus,
    _reduce,
    _theta,
    _times,
)


@triton.jit
def _edge_axis(i, u, p, k, dil, s, n_out, MODE: tl.constexpr):
    """Step ``u`` of one spatial axis from input index ``i``: ``(output o, kernel offset q,
    whether the edge exists)``.

    ``MODE`` 1 loops over kernel offsets ``q = u`` (``o = (i + p − q·dil) / s``); 2, where
    that is fewer steps (strided and global windows), over the outputs ``o = o_first + u`` whose
    window can hold ``i`` (``q = (i + p − o·s) / dil``); 0 is an axis the window leaves alone.
    """
    if MODE == 0:
        o = i
        q = i * 0
        ok = i >= 0
    elif MODE == 1:
        n = i + p - u * dil
        nc = tl.where(n >= 0, n, 0)
        o = nc // s
        ok = (n >= 0) & (nc - o * s == 0) & (o < n_out)
        q = i * 0 + u
    else:
        first = i + p - (k - 1) * dil
        o = tl.where(first > 0, (tl.where(first > 0, first, 0) + s - 1) // s, 0) + u
        m = i + p - o * s
        q = tl.where(m >= 0, m, 0) // dil
        ok = (m >= 0) & (m - q * dil == 0) & (q < k) & (o < n_out)
    return tl.where(ok, o, 0), q, ok


@triton.jit
def window_gather(
    S, V, D, R, OUT,
    n_in, c_in, c_out, cin_g, cout_g, n_t,
    in1, in2, out0, out1, out2, k0, k1, k2, s0, s1, s2, dl0, dl1, dl2, p0, p1, p2,
    u0, u1, u2, term_s, term_v, THRESHOLD, zero, one, empty,
    OPS: tl.constexpr, THETA: tl.constexpr, INTEGRAL: tl.constexpr, BOOLEAN: tl.constexpr,
    N_TERMS: tl.constexpr, POOLED: tl.constexpr, FACTORED: tl.constexpr, SKIP: tl.constexpr,
    MODE0: tl.constexpr, MODE1: tl.constexpr, MODE2: tl.constexpr,
    BLOCK_J: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``OUT[j, t] = ⊕ Θ(r_jk) ⊗ R[k, t]`` over the edges of the ``BLOCK_J`` input neurons of
    tile ``program_id(0)`` (channels-last flat index) for target ``program_id(1)``.

    ``empty`` is the ⊕-identity the accumulator starts from (K's zero when ``SKIP``, −∞ for a
    max that must see every edge); an input no edge reaches gets K's zero.
    """
    j = tl.program_id(0) * BLOCK_J + tl.arange(0, BLOCK_J)
    t = tl.program_id(1)
    threshold = tl.load(THRESHOLD)
    j_ok = j < n_in
    ci = j % c_in
    ip = j // c_in
    i2 = ip % in2
    i1 = (ip // in2) % in1
    i0 = ip // (in1 * in2)
    g = ci // cin_g
    n_k = k0 * k1 * k2
    if FACTORED:
        outer = tl.load(S + j, mask=j_ok, other=zero)
    else:  # the rule's sources (at most three terms), in the order of the reference's sum
        src0 = tl.load(S + j, mask=j_ok, other=0.0)
        if N_TERMS > 1:
            src1 = tl.load(S + term_s + j, mask=j_ok, other=0.0)
        if N_TERMS > 2:
            src2 = tl.load(S + 2 * term_s + j, mask=j_ok, other=0.0)
    acc = tl.zeros((BLOCK_J,), dtype=tl.float64) + empty
    reached = j < 0
    for step0 in range(u0):
        o0, q0, ok0 = _edge_axis(i0, step0, p0, k0, dl0, s0, out0, MODE0)
        for step1 in range(u1):
            o1, q1, ok1 = _edge_axis(i1, step1, p1, k1, dl1, s1, out1, MODE1)
            for step2 in range(u2):
                o2, q2, ok2 = _edge_axis(i2, step2, p2, k2, dl2, s2, out2, MODE2)
                pos_ok = j_ok & ok0 & ok1 & ok2
                reached = reached | pos_ok
                o = (o0 * out1 + o1) * out2 + o2
                kap = (q0 * k1 + q1) * k2 + q2
                for c0 in range(0, cout_g, BLOCK_C):
                    cc = c0 + tl.arange(0, BLOCK_C)
                    m = pos_ok[:, None] & (cc < cout_g)[None, :]
                    k = o[:, None] * c_out + g[:, None] * cout_g + cc[None, :]
                    rk = tl.load(R + k * n_t + t, mask=m, other=zero)
                    live = m
                    if SKIP:
                        live = m & (rk != zero)
                    if POOLED:
                        w_at = o[:, None] + 0 * cc[None, :]
                    else:
                        w_at = (ci[:, None] * n_k + kap[:, None]) * cout_g + cc[None, :]
                    if FACTORED:
                        v = tl.load(V + w_at, mask=live, other=0.0)
                        x = _times(v, rk, OPS)
                    else:
                        num = src0[:, None] * tl.load(V + w_at, mask=live, other=0.0)
                        if N_TERMS > 1:
                            v1 = tl.load(V + term_v + w_at, mask=live, other=0.0)
                            num = num + src1[:, None] * v1
                        if N_TERMS > 2:
                            v2 = tl.load(V + 2 * term_v + w_at, mask=live, other=0.0)
                            num = num + src2[:, None] * v2
                        dk = tl.load(D + k, mask=live, other=0.0)
                        r = tl.where(dk != 0, num / tl.where(dk != 0, dk, 1.0), 0.0)
                        ann = _theta(r, threshold, zero, one, THETA, INTEGRAL)
                        if BOOLEAN:
                            ann = tl.where(ann != 0, one, zero)
                        x = _times(ann, rk, OPS)
                    x = tl.where(live, x, empty)
                    acc = _plus(acc, _reduce(x, OPS), OPS)
    if FACTORED:
        acc = _times(outer, acc, OPS)
    acc = tl.where(reached & (acc != empty), acc, zero)
    tl.store(OUT + j * n_t + t, acc, mask=j_ok)


@triton.jit
def window_absmax(
    S, V, TOP, n_out, c_in, c_out, cin_g, cout_g,
    in0, in1, in2, out1, out2, k0, k1, k2, s0, s1, s2, dl0, dl1, dl2, p0, p1, p2,
    term_s, term_v,
    N_TERMS: tl.constexpr, POOLED: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``TOP[k] = max(TOP[k], max_j |Σ_t s_t(a)_j v_t(w_jk)|)`` for the ``BLOCK_K`` outputs of
    tile ``program_id(0)`` (channels-last flat index): the max-norm denominators, one program
    per block of outputs (a gather over each output's window, so again no atomics)."""
    k = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    k_ok = k < n_out
    co = k % c_out
    o = k // c_out
    o2 = o % out2
    o1 = (o // out2) % out1
    o0 = o // (out1 * out2)
    g = co // cout_g
    cl = co % cout_g
    n_k = k0 * k1 * k2
    top = tl.load(TOP + k, mask=k_ok, other=0.0)
    for q0 in range(k0):
        i0 = o0 * s0 - p0 + q0 * dl0
        for q1 in range(k1):
            i1 = o1 * s1 - p1 + q1 * dl1
            for q2 in range(k2):
                i2 = o2 * s2 - p2 + q2 * dl2
                pos_ok = (k_ok & (i0 >= 0) & (i0 < in0) & (i1 >= 0) & (i1 < in1)
                          & (i2 >= 0) & (i2 < in2))
                ip = (i0 * in1 + i1) * in2 + i2
                kap = (q0 * k1 + q1) * k2 + q2
                for c0 in range(0, cin_g, BLOCK_C):
                    cc = c0 + tl.arange(0, BLOCK_C)
                    m = pos_ok[:, None] & (cc < cin_g)[None, :]
                    c = g[:, None] * cin_g + cc[None, :]
                    j = ip[:, None] * c_in + c
                    if POOLED:
                        w_at = o[:, None] + 0 * cc[None, :]
                    else:
                        w_at = (c * n_k + kap) * cout_g + cl[:, None]
                    num = tl.zeros((BLOCK_K, BLOCK_C), dtype=tl.float64)
                    for term in tl.static_range(N_TERMS):
                        src = tl.load(S + term * term_s + j, mask=m, other=0.0)
                        v = tl.load(V + term * term_v + w_at, mask=m, other=0.0)
                        num = num + src * v
                    top = tl.maximum(top, tl.max(tl.abs(num), axis=1))
    tl.store(TOP + k, top, mask=k_ok)


@triton.jit
def annotate_outputs(W, R, OUT, n, n_t, THRESHOLD, zero, one,
                     OPS: tl.constexpr, THETA: tl.constexpr, INTEGRAL: tl.constexpr,
                     BOOLEAN: tl.constexpr, BLOCK: tl.constexpr):
    """``OUT[k, t] = Θ(W[k]) ⊗ R[k, t]`` elementwise over ``n`` outputs (a bias source's edges;
    the caller ⊕-reduces over ``k``)."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = i < n * n_t
    x = tl.load(R + i, mask=ok, other=zero)
    if THETA != THETA_ONE:
        threshold = tl.load(THRESHOLD)
        w = tl.load(W + i // n_t, mask=ok, other=0.0)
        ann = _theta(w, threshold, zero, one, THETA, INTEGRAL)
        if BOOLEAN:
            ann = tl.where(ann != 0, one, zero)
        x = _times(ann, x, OPS)
    tl.store(OUT + i, x, mask=ok)


def cdiv(a: int, b: int) -> int:
    return triton.cdiv(a, b)


#: tiles (neurons, channels) of the gather kernels: small on a GPU; large in the interpreter,
#: whose cost is per program and per loop step
GPU_TILES, INTERPRETER_TILES = (128, 32), (1024, 64)


def tiles(rows: int, channels: int) -> tuple[int, int]:
    """Tiles for ``rows`` neurons and loops over ``channels`` channels, for where the kernels
    run (``TRITON_INTERPRET=1``: the interpreter), no larger than the work needs."""
    interpreted = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    block_r, block_c = INTERPRETER_TILES if interpreted else GPU_TILES
    return (min(block_r, triton.next_power_of_2(max(rows, 16))),
            min(block_c, triton.next_power_of_2(max(channels, 2))))
