"""Torch carriers: ⊕, ⊗, ⊕-reductions, contraction and scatter of a semiring on tensors.

Every kernel of the torch backend is written against :class:`TorchSemiring`, so the same code
runs for every semiring and on every device. A semiring names its carrier itself
(:attr:`~provgraph.algebra.semirings.Semiring.torch_carrier`;
:func:`~provgraph.backends.torch_carriers.torch_semiring` builds it). The carriers:

- real, counting (float64): float storage, batched matmul (:class:`SumSemiring`);
- boolean: bool storage, float32 batched matmul, then ``> 0`` (exact);
- counting (int64): int64 storage, float64 matmul on 21-bit limbs, exact; overflow raises;
- viterbi, fuzzy, tropical, counting (log) and user-defined semirings: float storage, an
  ⊕-reduction over the broadcast ⊗-product
  (:class:`~provgraph.backends.torch_generic.GenericCarrier`, built from the semiring's own ⊕
  and ⊗).

Integer sums are exact: a float64 matmul of integers is exact while every partial sum stays below
2⁵³, which the limb split guarantees; limbs are recombined in int64 with overflow checks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from provgraph.algebra.counting_carriers import CountOverflowError
from provgraph.errors import ProvgraphError

INT_MAX = 2**63 - 1
_LIMB_BITS = 21
_OVERFLOW_HINT = (
    "path counts exceed the int64 range; use TorchBackend(counting='float64') or "
    "counting='log', or the scipy backend's exact integers"
)


class TorchSemiring:
    """A semiring on torch tensors: the interface every torch kernel uses.

    Parameters
    ----------
    semiring
        The (numpy) semiring the results are reported in
        (:class:`~provgraph.algebra.semirings.Semiring`).
    dtype
        Floating-point dtype of the float carriers.
    device
        Where tensors are created.
    """

    #: value of a position nothing has been ⊕-accumulated into yet (see :meth:`settle`)
    empty: Any = None
    #: whether :meth:`contract` is a matrix product (no broadcast over a target axis)
    matmul_contraction: bool = False

    def __init__(self, semiring: Any, dtype: torch.dtype, device: torch.device) -> None:
        self.semiring = semiring
        self.dtype = dtype
        self.device = device
        self.zero = semiring.zero
        self.one = semiring.one

    @property
    def storage(self) -> torch.dtype:
        return self.dtype

    # --- creation and conversion ---
    def full(self, shape: tuple[int, ...], value: Any) -> torch.Tensor:
        return torch.full(shape, value, dtype=self.storage, device=self.device)

    def zeros(self, shape: tuple[int, ...]) -> torch.Tensor:
        return self.full(shape, self.zero)

    def blank(self, shape: tuple[int, ...]) -> torch.Tensor:
        """A tensor to ⊕-accumulate into; :meth:`settle` turns untouched entries into zero."""
        return self.full(shape, self.zero if self.empty is None else self.empty)

    def settle(self, t: torch.Tensor) -> torch.Tensor:
        if self.empty is None or self.empty == self.zero:
            return t
        return torch.where(t == self.empty, torch.full_like(t, self.zero), t)

    def from_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """K's one where ``mask`` holds, zero elsewhere.

        Where one and zero are 1 and 0 the bool mask itself is returned: every operation of the
        carriers promotes it (saving a pass over the edges).
        """
        if self.one == 1 and self.zero == 0:
            return mask
        one = torch.tensor(self.one, dtype=self.storage, device=mask.device)
        zero = torch.tensor(self.zero, dtype=self.storage, device=mask.device)
        return torch.where(mask, one, zero)

    def encode(self, values: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Semiring values (as the numpy semiring holds them) in this carrier."""
        if isinstance(values, torch.Tensor):
            return values.to(self.device, self.storage)
        arr = np.asarray(values, dtype=np.float64)
        return torch.as_tensor(arr).to(self.device, self.storage)

    def decode(self, t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().numpy()

    def check(self, t: torch.Tensor) -> None:
        """Raise when ``t`` holds values the carrier cannot represent (overflow)."""

    # --- algebra ---
    def add(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mul(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reduce(self, x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        """⊕ over ``dims`` (non-empty)."""
        raise NotImplementedError

    def contract(self, m: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """``out[p, t, j] = ⊕_k m[p, j, k] ⊗ r[p, t, k]`` for ``m (P, J, K)``, ``r (P, T, K)``."""
        return self.reduce(self.mul(m.unsqueeze(1), r.unsqueeze(2)), (-1,))

    def scatter(self, src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
        """``out[..., i] = ⊕_{n : index[..., n] = i} src[..., n]`` (zero where none)."""
        raise NotImplementedError


class SumSemiring(TorchSemiring):
    """⊕ = +, ⊗ = × in floating point: real, and counting in float64."""

    matmul_contraction = True

    def add(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b

    def mul(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a * b

    def reduce(self, x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        return x.sum(dim=dims)

    def contract(self, m: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return torch.matmul(m.to(r.dtype), r.transpose(1, 2)).transpose(1, 2)

    def scatter(self, src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
        out = self.zeros(src.shape[:-1] + (size,))
        return out.scatter_add_(-1, index.expand_as(src), src)

    def check(self, t: torch.Tensor) -> None:
        if self.semiring.counting_mode == "float64" and bool(torch.isinf(t).any()):
            raise CountOverflowError(
                "path counts exceed the float64 range; use TorchBackend(counting='log')"
            )


class BooleanCarrier(TorchSemiring):
    """({⊥, ⊤}, ∨, ∧) on bool tensors."""

    matmul_contraction = True

    @property
    def storage(self) -> torch.dtype:
        return torch.bool

    def encode(self, values: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(values, torch.Tensor):
            return (values != 0).to(self.device)
        return torch.as_tensor(np.asarray(values, dtype=bool)).to(self.device)

    def add(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a | b

    def mul(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a & b

    def reduce(self, x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        return x.any(dim=dims)

    def contract(self, m: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        # a sum of zeros and ones is positive exactly when one term is one, rounding or not
        counts = torch.matmul(m.to(torch.float32), r.transpose(1, 2).to(torch.float32))
        return (counts > 0).transpose(1, 2)

    def scatter(self, src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
        out = torch.zeros(src.shape[:-1] + (size,), dtype=torch.uint8, device=src.device)
        out.scatter_reduce_(-1, index.expand_as(src), src.to(torch.uint8), "amax")
        return out > 0


class IntegerCarrier(TorchSemiring):
    """Exact counting in int64; every ⊕ and ⊗ checks for overflow instead of wrapping."""

    matmul_contraction = True

    @property
    def storage(self) -> torch.dtype:
        return torch.int64

    def encode(self, values: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(values, torch.Tensor):
            if values.is_floating_point():
                raise ProvgraphError("Counting semiring values must be integers, got floats")
            out = values.to(self.device, torch.int64)
        else:
            arr = np.asarray(values)
            if arr.dtype.kind == "f":
                raise ProvgraphError("Counting semiring values must be integers, got floats")
            try:
                out = torch.as_tensor(arr.astype(np.int64)).to(self.device)
            except OverflowError:
                raise CountOverflowError(_OVERFLOW_HINT) from None
        if out.numel() and bool((out < 0).any()):
            raise ProvgraphError("Counting semiring values must be non-negative")
        return out

    def add(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if bool((a > INT_MAX - b).any()):
            raise CountOverflowError(_OVERFLOW_HINT)
        return a + b

    def mul(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = torch.broadcast_tensors(a.to(torch.int64), b.to(torch.int64))
        limit = torch.div(torch.full_like(a, INT_MAX), a.clamp(min=1), rounding_mode="floor")
        if bool(((a > 0) & (b > limit)).any()):
            raise CountOverflowError(_OVERFLOW_HINT)
        return a * b

    def reduce(self, x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        return _by_limbs(lambda part: part.sum(dim=dims), x)

    def scatter(self, src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
        idx = index.expand_as(src)

        def scatter_add(part: torch.Tensor) -> torch.Tensor:
            out = torch.zeros(part.shape[:-1] + (size,), dtype=torch.int64, device=part.device)
            return out.scatter_add_(-1, idx, part)

        return _by_limbs(scatter_add, src)

    def contract(self, m: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        p, j, k = m.shape
        t = r.shape[1]
        if m.numel() == 0 or r.numel() == 0:
            return torch.zeros((p, t, j), dtype=torch.int64, device=m.device)
        m_max, r_max = int(m.amax()), int(r.amax())
        if m_max == 0 or r_max == 0:
            return torch.zeros((p, t, j), dtype=torch.int64, device=m.device)
        row_bound = m_max * k  # bounds every Σ_k m_jk
        full_fp32 = torch.get_float32_matmul_precision() == "highest"  # no TF32 rounding
        if full_fp32 and row_bound * r_max < 2**24:  # float32 holds every partial sum exactly
            exact = torch.matmul(m.to(torch.float32), r.transpose(1, 2).to(torch.float32))
            return exact.round().to(torch.int64).transpose(1, 2)
        mf = m.to(torch.float64)
        if row_bound * r_max < 2**53:
            exact = torch.matmul(mf, r.transpose(1, 2).to(torch.float64))
            return exact.round().to(torch.int64).transpose(1, 2)
        if row_bound >= 2 ** (53 - _LIMB_BITS):
            raise CountOverflowError("edge annotations too large for exact int64 counting")
        n_limbs = -(-r_max.bit_length() // _LIMB_BITS)
        mask = (1 << _LIMB_BITS) - 1
        limbs = torch.cat([(r >> (_LIMB_BITS * i)) & mask for i in range(n_limbs)], dim=1)
        sums = torch.matmul(mf, limbs.transpose(1, 2).to(torch.float64)).round().to(torch.int64)
        parts = [sums[:, :, i * t : (i + 1) * t].transpose(1, 2) for i in range(n_limbs)]
        return _combine(parts, _LIMB_BITS)


def _by_limbs(linear_sum: Any, x: torch.Tensor) -> torch.Tensor:
    """An exact int64 sum-like reduction of non-negative ``x``: 31-bit halves summed apart."""
    low = linear_sum(x & ((1 << 31) - 1))
    high = linear_sum(x >> 31)
    return _combine([low, high], 31)


def _combine(parts: list[torch.Tensor], bits: int) -> torch.Tensor:
    """``Σ_i parts[i] · 2^(bits·i)`` in int64, raising on overflow."""
    total = parts[0]
    for i, part in enumerate(parts[1:], start=1):
        shift = bits * i
        if bool((part >= (1 << (63 - shift))).any()):
            raise CountOverflowError(_OVERFLOW_HINT)
        term = part << shift
        if bool((total > INT_MAX - term).any()):
            raise CountOverflowError(_OVERFLOW_HINT)
        total = total + term
    return total
