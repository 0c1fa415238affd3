"""Torch kernels of the sliding-window linear ops: Conv (N-d, stride, padding, dilation, groups),
AveragePool and GlobalAveragePool, without ever materialising the op's edge matrix.

A window op is described by :class:`Window`: an edge ``j → k`` joins input ``(c_in, o·s − p + κ·d)``
to output ``(c_out, o)`` for every kernel offset ``κ`` with weight ``W[c_out, c_in, κ] · scale[o]``
(pooling: ``W = 1`` and ``scale = 1/n``). Windows reaching into padding read zeros there, and what
they would send to padding is cropped, so padding never adds an edge.

Real semiring with Θ = identity: ``R_in = Σ_t s_t(a) ⊙ convᵀ(R / den, v_t(W))``, one transposed
convolution per rule term. Other semirings: for each kernel offset and band of output rows, the
edges ``(sample, c_out, c_in, position)`` of that band are evaluated (at most ``budget`` values),
mapped by Θ, ⊗-combined with ``R`` and ⊕-reduced over ``c_out``; the result lands on the input
positions of that offset with one strided ⊕-update.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from provgraph.algebra.rule_form import Weights
from provgraph.backends.torch_linear import LinearStep, absorbed, bias_numerator, gradient_ratio
from provgraph.backends.torch_semiring import TorchSemiring
from provgraph.backends.torch_theta import factored

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@dataclass
class Window:
    """Geometry and weights of a window op; ``pad_end`` may be negative (unused input rows)."""

    weight: torch.Tensor  # (C_out, C_in / groups, *kernel)
    scale: torch.Tensor | None  # (*out) per output position, with weight ≡ 1
    bias: torch.Tensor | None  # (C_out, 1, …, 1)
    groups: int
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pad_begin: tuple[int, ...]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(self.weight.shape[2:])

    @property
    def padded(self) -> tuple[int, ...]:
        """Extent of the padded input the windows read (exactly, no unused tail)."""
        return tuple(
            (o - 1) * s + (k - 1) * d + 1
            for o, s, k, d in zip(self.out_shape[1:], self.strides, self.kernel, self.dilations)
        )

    def pad(self, a: torch.Tensor) -> torch.Tensor:
        """Zero-pad (or crop) ``(N, C, *in)`` to ``(N, C, *padded)``."""
        pads: list[int] = []
        for n, pb, p in reversed(list(zip(self.in_shape[1:], self.pad_begin, self.padded))):
            pads += [pb, p - n - pb]
        return F.pad(a, pads)

    def conv(self, x_padded: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        d = len(self.strides)
        return _CONV[d](x_padded, weight, None, self.strides, 0, self.dilations, self.groups)

    def adjoint(self, s: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The transposed convolution of ``s (N, C_out, *out)``: ``(N, C_in, *in)``."""
        d = len(self.strides)
        in_sp, out_sp = self.in_shape[1:], self.out_shape[1:]
        symmetric = all(
            (n + 2 * p - dl * (k - 1) - 1) // st + 1 == o
            for n, p, dl, k, st, o in zip(
                in_sp, self.pad_begin, self.dilations, self.kernel, self.strides, out_sp
            )
        )
        if symmetric and self.patches:  # disjoint windows tiling the input: a matrix product
            return self._patch_adjoint(s, weight)
        if symmetric:  # the convolution's own backward (the fastest kernel on CPU)
            shape = (s.shape[0], self.in_shape[0]) + tuple(in_sp)
            return torch.ops.aten.convolution_backward(
                s, torch.empty(shape, dtype=s.dtype, device=s.device), weight, None,
                list(self.strides), list(self.pad_begin), list(self.dilations), False,
                [0] * d, self.groups, [True, False, False],
            )[0]
        extra = [
            pb - (p - n - pb)  # output padding that lands a cropped transpose on the input
            for n, pb, p in zip(self.in_shape[1:], self.pad_begin, self.padded)
        ]
        if all(0 <= e < max(s_, d_) for e, s_, d_ in zip(extra, self.strides, self.dilations)):
            return _CONV_T[d](
                s, weight, None, self.strides, self.pad_begin, extra, self.groups, self.dilations
            )
        full = _CONV_T[d](s, weight, None, self.strides, 0, 0, self.groups, self.dilations)
        return unpad(full, self, 0.0)


    @property
    def patches(self) -> bool:
        """Whether the windows are disjoint 2-d patches that tile the input exactly (a ViT's
        patch embedding: stride = kernel, no padding, dilation or groups)."""
        return (
            len(self.strides) == 2 and self.groups == 1 and tuple(self.strides) == self.kernel
            and not any(self.pad_begin) and all(d == 1 for d in self.dilations)
            and all(o * k == n for o, k, n in
                    zip(self.out_shape[1:], self.kernel, self.in_shape[1:]))
        )

    def _patch_adjoint(self, s: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """:meth:`adjoint` for :attr:`patches`: every output position's ``sᵀ W`` is one patch."""
        n, c_out, oh, ow = s.shape
        kh, kw = self.kernel
        c_in = self.in_shape[0]
        rows = s.permute(0, 2, 3, 1).reshape(n * oh * ow, c_out) @ weight.reshape(c_out, -1)
        patches = rows.reshape(n, oh, ow, c_in, kh, kw).permute(0, 3, 1, 4, 2, 5)
        return patches.reshape((n, c_in) + tuple(self.in_shape[1:]))


def unpad(t: torch.Tensor, win: Window, fill: object) -> torch.Tensor:
    """``(…, C, *padded)`` back to ``(…, C, *in)``; input rows no window reads get ``fill``."""
    lead = tuple(t.shape[: t.dim() - len(win.strides)])
    out = torch.full(lead + tuple(win.in_shape[1:]), fill, dtype=t.dtype, device=t.device)
    src, dst = [], []
    for n, pb, p in zip(win.in_shape[1:], win.pad_begin, win.padded):
        m = min(n, p - pb)
        src.append(slice(pb, pb + m))
        dst.append(slice(0, m))
    out[(..., *dst)] = t[(..., *src)]
    return out


def _channel_term(win: Window, v: Weights) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Kernel and per-position factor of a term with modified weights ``v`` (pooling: the
    edge weight is ``scale``, so ``v`` maps the scale and the kernel stays 1)."""
    if win.scale is None:
        return v(win.weight), None
    return win.weight, v(win.scale)


def window_denominator(
    step: LinearStep, a: torch.Tensor, z: torch.Tensor, win: Window
) -> torch.Tensor:
    form = step.form
    if form.direct:
        return form.stabilize(z)
    if form.maxnorm:
        den = bias_numerator(form, win.bias, z).abs()
        srcs = [win.pad(form.source(t, a, win.in_shape)) for t in form.terms]
        for b, _, rows, num in _edge_bands(step, win, srcs, 1):
            top = num.abs_().amax(dim=3).permute(0, 1, 3, 2)  # (B, G, cout_g, L)
            band = den[b, :, rows]
            band.copy_(torch.maximum(band, top.reshape(band.shape)))
        return form.stabilize(den)
    den = bias_numerator(form, win.bias, z).clone()
    for t in form.terms:
        kernel, factor = _channel_term(win, t.weight)
        part = win.conv(win.pad(form.source(t, a, win.in_shape)), kernel)
        den = den + (part if factor is None else part * factor)
    return form.stabilize(den)


def window_step(
    step: LinearStep, a: torch.Tensor, z: torch.Tensor, win: Window, r_out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Relevance of a window op's input ``(B, T, *in)`` and of its bias source."""
    form = step.form
    den = window_denominator(step, a, z, win)
    n_b, n_t = r_out.shape[:2]
    c = step.carrier
    if step.gradient:
        s = gradient_ratio(form, r_out, den, z)
        flat = s.reshape((n_b * n_t,) + tuple(win.out_shape))
        r_in = None
        for t in form.terms:
            kernel, factor = _channel_term(win, t.weight)
            back = win.adjoint(flat if factor is None else flat * factor, kernel)
            term = back.reshape((n_b, n_t) + tuple(win.in_shape))
            term.mul_(form.source(t, a, win.in_shape).unsqueeze(1))  # a fresh tensor: in place
            r_in = term if r_in is None else r_in.add_(term)
        return r_in, absorbed(step, win.bias, den, s)

    c_out, c_in = win.out_shape[0], win.in_shape[0]
    g = win.groups
    cout_g, cin_g = c_out // g, c_in // g
    r_in = c.blank((n_b, n_t, c_in) + win.padded)
    factor = n_t if step.broadcasts else 1
    source = form.source(form.terms[0], a, win.in_shape)
    fast = None if win.scale is not None else factored(form, step.theta, source, den, r_out)
    if fast is not None:
        w = grouped(win, fast.inner(form.terms[0].weight(win.weight)))
        for b, ki, kappa, rows in bands(win, n_b, factor, step.budget):
            t = band_outputs(fast.t, win, b, rows).contiguous().unsqueeze(-2)
            wk = w[:, ki].reshape(1, g, 1, 1, cin_g, cout_g)
            scatter_band(c, r_in, c.reduce(c.mul(wk, t), (-1,)), win, b, kappa, rows)
        r_in = unpad(c.settle(r_in), win, c.zero)
        return c.mul(fast.outer(source).unsqueeze(1), r_in), absorbed(step, win.bias, den, r_out)
    srcs = [win.pad(form.source(t, a, win.in_shape)) for t in form.terms]
    nonzero = form.nonzero(den)
    for b, kappa, rows, num in _edge_bands(step, win, srcs, factor):
        nb, length = num.shape[0], num.shape[2]
        den_band = den[b, :, rows].reshape(nb, g, cout_g, length).permute(0, 1, 3, 2)
        r = form.divide_(num, den_band.unsqueeze(3), nonzero)
        m = step.theta(r).reshape(nb * g * length, cin_g, cout_g)
        r_band = band_outputs(r_out, win, b, rows).reshape(nb * g * length, n_t, cout_g)
        part = c.contract(m, r_band).reshape(nb, g, length, n_t, cin_g)
        scatter_band(c, r_in, part, win, b, kappa, rows)
    r_in = unpad(c.settle(r_in), win, c.zero)
    return r_in, absorbed(step, win.bias, den, r_out)


def _input_slices(win: Window, kappa: tuple[int, ...], rows: slice) -> tuple[slice, ...]:
    """Channel and spatial slices of the padded input read at offset ``kappa`` by ``rows``."""
    out: list[slice] = [slice(None)]
    starts = [rows.start] + [0] * (len(kappa) - 1)
    stops = [rows.stop] + list(win.out_shape[2:])
    for k, d, s, o0, o1 in zip(kappa, win.dilations, win.strides, starts, stops):
        out.append(slice(k * d + o0 * s, k * d + (o1 - 1) * s + 1, s))
    return tuple(out)


def bands(win: Window, n_b: int, factor: int, budget: int):
    """Yield ``(samples, κ index, κ, rows)``: kernel offsets and bands of output rows whose
    edges number at most ``budget / factor`` (at least one row of one sample)."""
    cin_g = win.in_shape[0] // win.groups
    out_sp = tuple(win.out_shape[1:])
    row_len = int(np.prod(out_sp[1:])) if len(out_sp) > 1 else 1
    per_row = win.out_shape[0] * cin_g * row_len * factor
    rows_per_band = max(1, budget // max(1, per_row * n_b))
    b_size = n_b if rows_per_band > 1 else max(1, budget // max(1, per_row))
    for b0 in range(0, n_b, b_size):
        b = slice(b0, b0 + b_size)
        for ki, kappa in enumerate(itertools.product(*(range(k) for k in win.kernel))):
            for r0 in range(0, out_sp[0], rows_per_band):
                yield b, ki, kappa, slice(r0, min(r0 + rows_per_band, out_sp[0]))


def grouped(win: Window, weight: torch.Tensor) -> torch.Tensor:
    """``(C_out, cin_g, *kernel)`` as ``(G, K, cin_g, cout_g)`` (K: flat kernel offset)."""
    g = win.groups
    cout_g, cin_g = win.out_shape[0] // g, win.in_shape[0] // g
    return weight.reshape(g, cout_g, cin_g, -1).permute(0, 3, 2, 1).contiguous()


def band_inputs(win: Window, src: torch.Tensor, b: slice, kappa: tuple, rows: slice):
    """The padded input read by a band, as ``(nb, G, L, cin_g)``."""
    x = src[(b,) + _input_slices(win, kappa, rows)]  # (nb, C_in, rows, …)
    cin_g = win.in_shape[0] // win.groups
    return x.reshape(x.shape[0], win.groups, cin_g, -1).permute(0, 1, 3, 2)


def band_outputs(t: torch.Tensor, win: Window, b: slice, rows: slice) -> torch.Tensor:
    """``(B, T, C_out, *out)`` restricted to a band, as ``(nb, G, L, T, cout_g)``."""
    band = t[b, :, :, rows]
    nb, n_t = band.shape[:2]
    g = win.groups
    band = band.reshape(nb, n_t, g, win.out_shape[0] // g, -1)
    return band.permute(0, 2, 4, 1, 3)


def scatter_band(
    c: TorchSemiring, r_in: torch.Tensor, part: torch.Tensor, win: Window, b: slice,
    kappa: tuple, rows: slice,
) -> None:
    """⊕-add ``part (nb, G, L, T, cin_g)`` onto the padded input positions of the band."""
    target = r_in[(b, slice(None)) + _input_slices(win, kappa, rows)]
    part = part.permute(0, 3, 1, 4, 2).reshape(target.shape)
    target.copy_(c.add(target, part))


def _edge_bands(step: LinearStep, win: Window, srcs: list[torch.Tensor], factor: int):
    """Yield ``(samples, κ, rows, z)``: the numerators ``z (b, G, L, cin_g, cout_g)`` of the
    edges from kernel offset ``κ`` into a band of output rows, at most ``budget`` per band."""
    kernels = []
    for t in step.form.terms:
        weight, scale = _channel_term(win, t.weight)
        kernels.append((grouped(win, weight), scale))
    for b, ki, kappa, rows in bands(win, srcs[0].shape[0], factor, step.budget):
        num = None
        for src, (w, scale) in zip(srcs, kernels):
            x = band_inputs(win, src, b, kappa, rows).unsqueeze(4)
            wk = w[:, ki].unsqueeze(0).unsqueeze(2)  # (1, G, 1, cin_g, cout_g)
            if scale is not None:
                wk = wk * scale[rows].reshape(1, 1, -1, 1, 1)
            term = x.contiguous() * wk
            num = term if num is None else num + term
        yield b, kappa, rows, num
