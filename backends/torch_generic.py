"""The generic torch carrier: a semiring's own ⊕ and ⊗, written with torch operations.

As torch-struct builds ``matmul`` from a semiring's ``sum`` and ``times``, every operation the
torch kernels need (elementwise ⊕/⊗, ⊕-reduction, contraction ``⊕_k m_jk ⊗ r_k``, ⊕-scatter) is
built here from two binary functions:

- a numpy ufunc the semiring declares (``add_ufunc``/``mul_ufunc``) is mapped to its torch
  counterpart (:data:`TORCH_UFUNCS`), with the fast ⊕-reduction and scatter torch has for it;
- or the semiring declares torch functions itself: ``torch_add(a, b)``, ``torch_mul(a, b)`` and
  optionally ``torch_sum(x, dims)``. Without ``torch_sum`` the ⊕-reduction is a pairwise fold
  (⌈log₂ n⌉ elementwise ⊕), and the scatter ⊕-folds duplicate targets level by level; both need
  only associativity and commutativity of ⊕ and that zero is its identity.

The code is device-agnostic: the same carrier runs on CPU and CUDA tensors.

References
----------
Rush. "Torch-Struct: Deep structured prediction library". ACL 2020.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from provgraph.backends.torch_semiring import TorchSemiring
from provgraph.errors import ProvgraphError

Binary = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Reduction = Callable[[torch.Tensor, tuple[int, ...]], torch.Tensor]


def _prod(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    for d in sorted((d % x.dim() for d in dims), reverse=True):
        x = x.prod(dim=d)
    return x


@dataclass(frozen=True)
class TorchOp:
    """A numpy ufunc's torch counterpart, and what torch offers for it as a ⊕.

    Attributes
    ----------
    binary : the elementwise torch function
    reduce : ``reduce(x, dims)``, the ⊕ over ``dims``, where torch has one
    scatter : the ``Tensor.scatter_reduce_`` mode of this ⊕, where torch has one
    identity : the ⊕'s identity on the extended reals (±∞ for max/min), used to mark
        positions nothing was accumulated into; ``None`` where it is K's zero anyway
    """

    binary: Binary
    reduce: Reduction | None = None
    scatter: str | None = None
    identity: float | None = None


TORCH_UFUNCS: dict[Any, TorchOp] = {
    np.add: TorchOp(torch.add, lambda x, d: x.sum(dim=d), "sum"),
    np.multiply: TorchOp(torch.mul, _prod, "prod"),
    np.maximum: TorchOp(torch.maximum, lambda x, d: x.amax(dim=d), "amax", -math.inf),
    np.minimum: TorchOp(torch.minimum, lambda x, d: x.amin(dim=d), "amin", math.inf),
    np.fmax: TorchOp(torch.fmax),
    np.fmin: TorchOp(torch.fmin),
    np.logaddexp: TorchOp(torch.logaddexp, lambda x, d: torch.logsumexp(x, dim=d)),
    np.logaddexp2: TorchOp(torch.logaddexp2),
    np.logical_or: TorchOp(torch.logical_or, lambda x, d: x.any(dim=d)),
    np.logical_and: TorchOp(torch.logical_and, lambda x, d: x.all(dim=d)),
    np.bitwise_or: TorchOp(torch.bitwise_or),
    np.bitwise_and: TorchOp(torch.bitwise_and),
    np.gcd: TorchOp(torch.gcd),
    np.lcm: TorchOp(torch.lcm),
}


def _operation(semiring: Any, torch_attr: str, ufunc_attr: str, sign: str) -> tuple[Binary, bool]:
    """``(binary torch function, whether it comes from a known ufunc)`` of ⊕ or ⊗."""
    declared = getattr(semiring, torch_attr, None)
    if declared is not None:
        return declared, False
    ufunc = getattr(semiring, ufunc_attr, None)
    if ufunc in TORCH_UFUNCS:
        return TORCH_UFUNCS[ufunc].binary, True
    known = ", ".join(f"np.{u.__name__}" for u in TORCH_UFUNCS)
    what = f"{ufunc_attr} = np.{ufunc.__name__}" if ufunc is not None else "no numpy ufunc"
    raise ProvgraphError(
        f"{type(semiring).__name__} has {what} for {sign}, which the torch backend cannot run: "
        f"set {ufunc_attr} to one of {known}, or define {torch_attr}(a, b) with torch "
        "operations (or use backend='scipy')"
    )


class GenericCarrier(TorchSemiring):
    """Any semiring on torch tensors, from its ⊕ and ⊗ (see the module notes).

    Storage: ``bool`` for a boolean :attr:`~provgraph.algebra.semirings.Semiring.dtype`,
    ``int64`` for an integer one, the backend's float dtype otherwise.
    """

    def __init__(self, semiring: Any, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(semiring, dtype, device)
        self._plus, add_known = _operation(semiring, "torch_add", "add_ufunc", "⊕")
        self._times, _ = _operation(semiring, "torch_mul", "mul_ufunc", "⊗")
        op = TORCH_UFUNCS[semiring.add_ufunc] if add_known else TorchOp(self._plus)
        self._sum: Reduction | None = getattr(semiring, "torch_sum", None) or op.reduce
        self._scatter_mode = op.scatter
        kind = np.dtype(semiring.dtype).kind
        self._storage = torch.bool if kind == "b" else torch.int64 if kind in "iu" else dtype
        if op.identity is not None and self._storage.is_floating_point:
            self.empty = op.identity

    @property
    def storage(self) -> torch.dtype:
        return self._storage

    def encode(self, values: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(values, torch.Tensor):
            return values.to(self.device, self.storage)
        numpy_type = {torch.bool: np.bool_, torch.int64: np.int64}.get(self.storage, np.float64)
        return torch.as_tensor(np.asarray(values, dtype=numpy_type)).to(self.device, self.storage)

    def decode(self, t: torch.Tensor) -> np.ndarray:
        return self.semiring.asarray(t.detach().cpu().numpy())

    def from_mask(self, mask: torch.Tensor) -> torch.Tensor:
        one = torch.tensor(self.one, dtype=self.storage, device=mask.device)
        zero = torch.tensor(self.zero, dtype=self.storage, device=mask.device)
        return torch.where(mask, one, zero)

    def add(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self._plus(a, b)

    def mul(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self._times(a, b)

    def reduce(self, x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        if self._sum is not None:
            return self._sum(x, dims)
        return self._fold(x, dims)

    def _fold(self, x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        """⊕ over ``dims`` as a pairwise tree of elementwise ⊕."""
        axes = sorted({d % x.dim() for d in dims})
        rest = [d for d in range(x.dim()) if d not in axes]
        kept = tuple(x.shape[d] for d in rest)
        n = math.prod(x.shape[d] for d in axes)
        if n == 0:
            return self.zeros(kept)
        x = x.permute(rest + axes).reshape(kept + (n,))
        while x.shape[-1] > 1:
            half = x.shape[-1] // 2
            paired = self._plus(x[..., :half], x[..., half : 2 * half])
            x = torch.cat([paired, x[..., 2 * half :]], dim=-1) if x.shape[-1] % 2 else paired
        return x[..., 0]

    def scatter(self, src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
        idx = index.expand_as(src)
        if self._scatter_mode is not None and self.storage != torch.bool:
            out = self.zeros(src.shape[:-1] + (size,))
            return out.scatter_reduce_(-1, idx, src, self._scatter_mode, include_self=False)
        return self._scatter_fold(src, idx, size)

    def _scatter_fold(self, src: torch.Tensor, idx: torch.Tensor, size: int) -> torch.Tensor:
        """⊕-scatter by levels: the ``l``-th occurrence of every target index is placed in
        level ``l`` (no duplicates within a level), and the levels are ⊕-combined."""
        lead, n = src.shape[:-1], src.shape[-1]
        values = src.reshape(-1, n)
        targets = idx.reshape(-1, n)
        out = self.zeros((values.shape[0], size))
        if n == 0:
            return out.reshape(lead + (size,))
        ordered, order = torch.sort(targets, dim=-1, stable=True)
        pos = torch.arange(n, device=src.device).expand_as(targets)
        starts = torch.ones_like(ordered, dtype=torch.bool)
        starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        run_start = torch.where(starts, pos, torch.zeros_like(pos)).cummax(dim=-1).values
        level = torch.empty_like(pos).scatter_(-1, order, pos - run_start)
        for lvl in range(int(level.max()) + 1):
            slot = torch.where(level == lvl, targets, torch.full_like(targets, size))
            placed = self.zeros((values.shape[0], size + 1)).scatter_(-1, slot, values)
            out = self._plus(out, placed[:, :size])
        return out.reshape(lead + (size,))
