r"""Normalisation with per-sample statistics: LayerNorm, InstanceNorm, GroupNorm, RMSNorm.

The op computes

.. math::

    y_k = \gamma_k \frac{x_k - \mu}{\sigma} + \beta_k, \qquad
    \mu = \frac{1}{n} \sum_{i \in G(k)} x_i, \qquad
    \sigma = \sqrt{\frac{1}{n} \sum_{i \in G(k)} (x_i - \mu)^2 + \varepsilon},

where ``G(k)`` is the block of ``n`` elements that ``k`` is normalised with (the trailing axes of
LayerNorm, the spatial positions of a channel for InstanceNorm, the channels and positions of a
group for GroupNorm). RMSNorm has no centring (``μ = 0``).

Provenance semantics: the identity rule on the normalisation (Ali et al., "XAI for Transformers:
Better explanations through conservative propagation", ICML 2022; Achtibat et al., "AttnLRP",
ICML 2024). The statistics ``μ`` and ``σ`` are constants of the sample's forward pass, so the op is
the elementwise affine map

.. math::

    y_k = s_k x_k + t_k, \qquad s_k = \gamma_k / \sigma, \qquad
    t_k = \beta_k - \gamma_k \mu / \sigma,

with **one edge k → k** of weight ``w_kk = s_k`` from the input and one edge from the op's bias
source with ``b_k = t_k``. Every rule then reads the edge as it reads an elementwise
:class:`~provgraph.model.ops.Affine` edge (``a = x_k``, ``w = s_k``, ``b = t_k``):

=========  ==========================================================  =========================
rule       ``r_kk``                                                    ``r_0k``
=========  ==========================================================  =========================
LRP-0      ``s_k x_k / y_k``                                           ``t_k / y_k``
LRP-ε      ``s_k x_k / (y_k + ε·sign(y_k))``                           ``t_k / (y_k + ε·sign)``
LRP-γ      ``x_k (s_k + γ s_k⁺) / d_k``, ``d_k = x_k (s_k + γ s_k⁺)``   ``(t_k + γ t_k⁺) / d_k``
           ``+ t_k + γ t_k⁺``
z^B        ``(x_k s_k − l s_k⁺ − h s_k⁻) / (same)`` (= 1 where ≠ 0)      0
max-norm   ``|s_k x_k| / (max(|s_k x_k|, |t_k|) + ε)``                 ``|t_k| / (same)``
flat, w²   1 (one input edge)                                          0
=========  ==========================================================  =========================

(``y_k = s_k x_k + t_k``; a zero denominator gives 0.) Under LRP-0 ``r_kk + r_0k = 1`` for every
``k``, so the relevance the input keeps plus what the bias source absorbs equals the output
relevance (conservation). No relevance moves between the elements of a block (``μ`` and ``σ`` get
none). The edges carry real numbers, so Θ maps them into every semiring like any other edge.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from provgraph.errors import ProvgraphError
from provgraph.model.ops.base import LinearOp, Shape, csr_from_edges
from provgraph.model.ops.linear import constant_tensor

#: γ and β of each normalisation as vectors over its block (:meth:`Normalization.forward`)
_BLOCK_VECTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class SampleAffineOp(LinearOp):
    """Base of elementwise linear ops ``y = s ⊙ x + t`` whose ``s`` and ``t`` are computed from
    the sample's own input (constants of its forward pass, not of the model).

    A subclass implements :meth:`scale_shift`; the edges (one ``k → k`` of weight ``s_k``, and
    ``t_k`` from the bias source) follow from it for one sample (:meth:`sample_structure`), and the
    torch backend evaluates them for a whole batch with its elementwise kernel.
    """

    def scale_shift(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(s, t)`` shaped like ``x`` (batch first); ``t`` is ``None`` when there is no shift."""
        raise NotImplementedError

    @property
    def has_shift(self) -> bool:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, t = self.scale_shift(x)
        return x * s if t is None else x * s + t

    def weight_matrices(self, in_shapes: list[Shape], out_shape: Shape) -> list[sp.csr_array]:
        raise ProvgraphError(
            f"{self.describe()}: its weights are computed from each sample; use sample_structure"
        )

    def bias_vector(self, out_shape: Shape) -> np.ndarray | None:
        """Zeros of the output's size when the op has a bias source (its values depend on the
        sample: :meth:`sample_structure`), else ``None``."""
        return np.zeros(int(np.prod(out_shape))) if self.has_shift else None

    def sample_structure(
        self, in_shapes: list[Shape], out_shape: Shape, inputs: Sequence[torch.Tensor]
    ) -> tuple[list[sp.csr_array], np.ndarray | None]:
        with torch.no_grad():
            x = inputs[0].detach().to(torch.float64)
            s, t = self.scale_shift(x)
        n = int(np.prod(out_shape))
        idx = np.arange(n)
        w = s.reshape(-1).cpu().numpy()
        bias = None if t is None else t.reshape(-1).cpu().numpy()
        return [csr_from_edges(idx, idx, w, (n, n))], bias

    def num_edges(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return int(np.prod(out_shape)) * (1 + self.has_shift)


@dataclass(eq=False)
class Normalization(SampleAffineOp):
    r"""``y = γ (x − μ) / σ + β`` with ``μ``, ``σ`` per block of one sample (see the module).

    Attributes
    ----------
    start : first axis (batch axis 0 counted) of the normalised block: the sample is viewed as
        ``(m, n)`` with ``m`` the product of the axes before ``start`` (LayerNorm ``axis``;
        2 for InstanceNorm)
    groups : when positive, ``m = groups`` instead (GroupNorm: the channels split into groups)
    epsilon : ``ε`` added to the variance
    center : subtract the mean (``False``: RMSNorm, ``μ = 0``)
    scaled : divide by ``σ`` (``False``: centring only, ``x − μ``)
    weight, bias : ``γ`` and ``β``, broadcast against one sample, or ``None``
    """

    propagates_non_finite = True

    start: int = field(kw_only=True)
    groups: int = field(default=0, kw_only=True)
    epsilon: float = field(default=1e-5, kw_only=True)
    center: bool = field(default=True, kw_only=True)
    scaled: bool = field(default=True, kw_only=True)
    weight: np.ndarray | None = field(default=None, kw_only=True)
    bias: np.ndarray | None = field(default=None, kw_only=True)

    @property
    def has_shift(self) -> bool:
        return self.center or self.bias is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """LayerNorm (a centred, scaled block of trailing axes) as one fused kernel; the other
        forms as ``x ⊙ s + t`` from :meth:`scale_shift`."""
        if self.center and self.scaled and not self.groups:
            try:
                gamma = self._block_parameter(self.weight, x)
                beta = self._block_parameter(self.bias, x)
            except ValueError:
                return super().forward(x)
            n = math.prod(x.shape[self.start:])
            v = x.reshape(x.shape[:self.start] + (n,))
            return F.layer_norm(v, (n,), gamma, beta, self.epsilon).reshape(x.shape)
        return super().forward(x)

    def _block_parameter(self, value: np.ndarray | None, x: torch.Tensor) -> torch.Tensor | None:
        """``γ`` or ``β`` as one vector over the normalised block, when it is one (it varies
        along the block's axes only and covers all of them); kept per op, block and dtype."""
        if value is None:
            return None
        block = tuple(x.shape[self.start:])
        key = (id(value), block, x.dtype, str(x.device))
        kept = _BLOCK_VECTORS.setdefault(self, {})
        if key not in kept or kept[key][0] is not value:
            if np.ndim(value) > len(block) or np.broadcast_shapes(np.shape(value), block) != block:
                raise ValueError("not a vector over the block")
            vector = np.ascontiguousarray(np.broadcast_to(value, block)).reshape(-1)
            kept[key] = (value, constant_tensor(vector, x))
        return kept[key][1]

    def _blocks(self, x: torch.Tensor) -> torch.Tensor:
        m = self.groups or math.prod(x.shape[1 : self.start])
        return x.reshape(x.shape[0], m, -1)

    def _spread(self, stat: torch.Tensor, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """A per-block statistic ``(B, m, 1)`` broadcastable against ``x`` (a view when the
        blocks are trailing axes)."""
        if not self.groups:
            return stat.reshape(tuple(x.shape[: self.start]) + (1,) * (x.dim() - self.start))
        return stat.expand_as(v).reshape(x.shape)

    def scale_shift(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        v = self._blocks(x)
        mu = None
        if self.center:
            mu = v.mean(dim=-1, keepdim=True)
        if self.scaled:
            centred = v if mu is None else v - mu
            inv = torch.rsqrt((centred * centred).mean(dim=-1, keepdim=True) + self.epsilon)
        else:
            inv = torch.ones_like(v[..., :1])
        inv = self._spread(inv, v, x)
        shift = None if mu is None else -self._spread(mu, v, x) * inv  # −μ/σ, per block
        if self.weight is None:
            s = inv.expand(x.shape)
        else:
            gamma = constant_tensor(self.weight, x)
            s = (inv * gamma).expand(x.shape)
            shift = None if shift is None else shift * gamma
        if self.bias is not None:
            beta = constant_tensor(self.bias, x)
            shift = beta.expand(x.shape) if shift is None else shift + beta
        t = None if shift is None else shift.expand(x.shape)
        return s, t


@dataclass(eq=False)
class L2Weighting(SampleAffineOp):
    r"""``u_k = x_k · (x_k / ‖x‖)``, the first half of ``ReduceL2``: ``‖x‖ = Σ_k u_k``.

    With the norm a constant of the sample's forward pass (the identity rule, as for the
    normalisations above), ``‖x‖ = Σ_k w_k x_k`` with ``w_k = x_k / ‖x‖`` is linear in ``x``;
    this op carries the weights ``w_k`` (one edge ``k → k``, no bias) and a sum over the same
    axes follows it. Under LRP-0 the two give ``r_k = x_k² / ‖x‖²``. A zero norm gives
    ``w = 0``.

    Attributes
    ----------
    axes : the reduced axes (batch axis 0 counted, so all ≥ 1)
    """

    axes: tuple[int, ...] = field(kw_only=True)

    @property
    def has_shift(self) -> bool:
        return False

    def scale_shift(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        norm = torch.sqrt((x * x).sum(dim=self.axes, keepdim=True))
        safe = torch.where(norm > 0, norm, torch.ones_like(norm))
        return torch.where(norm > 0, x / safe, torch.zeros_like(x)), None
