"""The Triton backend: fused window kernels and the ⊕⊗-contraction primitive on CUDA, for every
built-in semiring.

Dense, convolution and average-pooling steps run fused gather kernels that never materialise an
edge (:mod:`~provgraph.backends.triton_fused`, :mod:`~provgraph.backends.triton_window`). Every
other op role goes through the generic per-role steps of :class:`~provgraph.backends.base.Backend`
(routing and max-pool selection as index maps, other linear ops as the annotated graph's CSR of
rule weights) and one kernel, :func:`~provgraph.backends.triton_kernels.contract_rows`:

    R_in[j, t] = ⊕_{k ∈ row j} Θ(r_jk) ⊗ R_out[k, t]

with ``Θ(r_jk)`` computed in registers from the real rule weight (identity, ≡ 1, threshold,
−log, log; a user-defined Θ is evaluated on the host) and ⊕, ⊗ chosen at compile time from the
semiring. Relevance lives on the device as float64 ``(neurons, targets)`` tensors: Boolean as
0/1, counting as integer-valued floats, exact while counts stay below 2⁵³ (beyond, the backend
raises :class:`~provgraph.algebra.counting_carriers.CountOverflowError` and the driver's default
``counting="auto"`` reruns in float64 counts). Only materialised steps count against the edge
budget.

It runs on CUDA devices; with ``TRITON_INTERPRET=1`` set before Triton is first imported, the
same kernels run in Triton's interpreter on CPU tensors (how the tests check them without a GPU).
Install with ``pip install "provgraph[triton]"``.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from provgraph.algebra.counting_carriers import (
    CountingFloat64Semiring,
    CountOverflowError,
    LogCountingSemiring,
)
from provgraph.algebra.semirings import (
    BooleanSemiring,
    CountingSemiring,
    FuzzySemiring,
    RealSemiring,
    Semiring,
    TropicalSemiring,
    ViterbiSemiring,
)
from provgraph.algebra.theta import ConstantOne, IdentityTheta, Log, NegLog, Threshold
from provgraph.backends.base import Backend, Capabilities, Edges, StepContext, StepResult
from provgraph.backends.triton_fused import (
    contract_fused,
    fused_plan,
    is_fused_op,
    operands_of,
)
from provgraph.errors import BudgetError, ProvgraphError
from provgraph.model.ops import LinearOp

#: integer-valued float64 is exact up to here
EXACT_COUNTS = 2.0**53
#: most edges it materialises: an op without a fused kernel (or whose rule or Θ needs the edge
#: list) has its rule weights materialised on the host (16 bytes an edge) before the
#: contraction kernel reads them; fused dense, convolution and pooling steps never do
DEFAULT_EDGE_BUDGET = 100_000_000
#: tiles (rows, edges, columns) of the contraction kernel: small on a GPU; large in the
#: interpreter, whose cost is per program
GPU_TILES, INTERPRETER_TILES = (16, 16, 8), (256, 64, 8)
BLOCK = 1024


@dataclass(frozen=True)
class TritonCarrier:
    """How one semiring runs in the kernels: its operation pair and its values as float64."""

    ops: str  # a name in backends.triton_kernels: SUM_PROD, MAX_PROD, MIN_SUM, MAX_MIN, LSE_SUM
    zero: float
    one: float
    integral: bool = False  # counting: integer values, exactness checked
    boolean: bool = False

    def decode(self, values: np.ndarray) -> np.ndarray:
        if self.boolean:
            return values != 0
        if self.integral:
            return values.astype(np.int64)
        return values


_SUM, _MAX, _MIN, _MAXMIN, _LSE = "SUM_PROD", "MAX_PROD", "MIN_SUM", "MAX_MIN", "LSE_SUM"
CARRIERS: dict[type, TritonCarrier] = {
    RealSemiring: TritonCarrier(_SUM, 0.0, 1.0),
    BooleanSemiring: TritonCarrier(_MAX, 0.0, 1.0, boolean=True),
    CountingSemiring: TritonCarrier(_SUM, 0.0, 1.0, integral=True),
    CountingFloat64Semiring: TritonCarrier(_SUM, 0.0, 1.0),
    LogCountingSemiring: TritonCarrier(_LSE, -np.inf, 0.0),
    ViterbiSemiring: TritonCarrier(_MAX, 0.0, 1.0),
    TropicalSemiring: TritonCarrier(_MIN, np.inf, 0.0),
    FuzzySemiring: TritonCarrier(_MAXMIN, 0.0, 1.0),
}
#: built-in Θ → kernel code name; any other Θ is evaluated on the host
THETAS: dict[type, str] = {
    IdentityTheta: "THETA_IDENTITY",
    ConstantOne: "THETA_ONE",
    Threshold: "THETA_THRESHOLD",
    NegLog: "THETA_NEGLOG",
    Log: "THETA_LOG",
}


def _kernels() -> Any:
    try:
        from provgraph.backends import triton_kernels
    except ImportError as exc:
        raise ProvgraphError(
            f"the triton backend needs Triton ({exc}); install it with "
            "pip install 'provgraph[triton]'"
        ) from None
    return triton_kernels


def interpreting() -> bool:
    """Whether Triton runs its kernels in the interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


class TritonBackend(Backend):
    """The contraction primitive in Triton on a CUDA device.

    Parameters
    ----------
    device
        ``"cuda"`` / ``"cuda:N"``; ``"cpu"`` only under ``TRITON_INTERPRET=1`` (the kernels in
        Triton's interpreter). ``None``: CUDA when available, else the interpreter's CPU.
    edge_budget
        Most edges of a network it accepts (:data:`DEFAULT_EDGE_BUDGET`).
    """

    name = "triton"
    capabilities: ClassVar[Capabilities] = Capabilities(devices=("cuda",))

    def __init__(
        self, device: str | torch.device | None = None, edge_budget: int = DEFAULT_EDGE_BUDGET
    ) -> None:
        self.edge_budget = int(edge_budget)
        if device is None:
            device = "cuda" if torch.cuda.is_available() or not interpreting() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ProvgraphError(
                "the triton backend needs a CUDA device, and CUDA is not available; use the "
                "torch or scipy backend (or TRITON_INTERPRET=1 to run its kernels on the CPU)"
            )
        if self.device.type == "cpu" and not interpreting():
            raise ProvgraphError(
                "the triton backend runs on CUDA; device='cpu' needs TRITON_INTERPRET=1 "
                "(Triton's interpreter)"
            )
        self.kernels = _kernels()
        from provgraph.backends.torch_backend import TorchBackend

        #: window geometry and denominators come from the torch backend's structured code
        self.structured = TorchBackend(device=self.device)
        #: how many linear steps ran fused, by kernel variant, and which ops had their edges
        #: materialised
        self.fused_steps: Counter[str] = Counter()
        self.materialised: list[str] = []

    def __repr__(self) -> str:
        return f"TritonBackend(device={str(self.device)!r})"

    # --- driver hooks ---
    def check(self, graph: Any) -> None:
        if getattr(graph, "batched", False):
            raise ProvgraphError("the triton backend explains one sample at a time")
        net = graph.network
        sizes = {op.name: self._op_edges(graph, op) for op in net.ops if self._materialises(op)}
        edges = sum(sizes.values())
        if edges > self.edge_budget:
            largest = max(sizes, key=sizes.__getitem__)
            raise BudgetError(
                f"{net.name} has about {edges:,} edges in ops without a fused triton kernel "
                f"(the largest: {largest}, {sizes[largest]:,}), over the triton backend's "
                f"budget of {self.edge_budget:,} (it materialises those); use backend='torch' "
                "(device='cuda'), whose kernels never do"
            )

    @staticmethod
    def _materialises(op: Any) -> bool:
        """Whether the op's step contracts materialised rule weights (routing and max pooling
        contract index maps, one entry per neuron, which the budget does not count)."""
        return op.role in ("linear", "bilinear") and not is_fused_op(op)

    @staticmethod
    def _op_edges(graph: Any, op: Any) -> int:
        shapes = graph.network.shapes
        return op.num_edges([shapes[t] for t in op.inputs], shapes[op.output])

    def carrier(self, semiring: Semiring) -> TritonCarrier:
        carrier = CARRIERS.get(type(semiring))
        if carrier is None:
            raise ProvgraphError(
                f"the triton backend runs the built-in semirings only, not {semiring.name!r}; "
                "use backend='scipy' for a user-defined semiring"
            )
        return carrier

    def describe(self, semiring: Semiring) -> dict[str, Any]:
        info: dict[str, Any] = {"device": str(self.device), "dtype": "float64"}
        if semiring.counting_mode is not None:
            info["counting"] = semiring.counting_mode
        return info

    def seed(self, graph: Any, semiring: Semiring, initial: np.ndarray) -> torch.Tensor:
        c = self.carrier(semiring)
        values = np.asarray(initial[0], dtype=np.float64)  # (classes, T)
        return self._checked(c, torch.as_tensor(values, device=self.device))

    def accumulate(self, semiring: Semiring, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        c = self.carrier(semiring)
        out = torch.empty_like(a)
        n = a.numel()
        self.kernels.combine[(max(1, -(-n // BLOCK)),)](
            a.contiguous(), b.contiguous(), out, n, OPS=self.kernels.CODES[c.ops], BLOCK=BLOCK
        )
        return self._checked(c, out)

    def to_numpy(self, graph: Any, semiring: Semiring, value: Any, bias: bool = False) -> Any:
        return self.carrier(semiring).decode(value.cpu().numpy())

    def zeros(self, semiring: Semiring, n: int, like: Any) -> torch.Tensor:
        shape = (n,) + tuple(like.shape[1:])
        return torch.full(shape, self.carrier(semiring).zero, dtype=torch.float64,
                          device=self.device)

    # --- the fused linear steps ---
    def linear(self, op: LinearOp, ctx: StepContext) -> StepResult:
        """Dense, convolution and average pooling through the fused kernels
        (:mod:`~provgraph.backends.triton_fused`); other ops, rules without a declared form and
        user-defined Θs through the generic step over materialised edges."""
        c = self.carrier(ctx.semiring)
        prepare = operands_of(op)
        plan = None if prepare is None else fused_plan(ctx, c, THETAS)
        if prepare is None or plan is None:
            edges = self._op_edges(ctx.graph, op)
            if edges > self.edge_budget:
                why = ("it has no fused triton kernel" if prepare is None
                       else "its rule or Θ needs the edge list")
                raise BudgetError(
                    f"{op.describe()}: {edges:,} edges to materialise ({why}), over the "
                    f"budget of {self.edge_budget:,}; use a built-in rule and Θ, or "
                    "backend='torch'"
                )
            self.materialised.append(op.name)
            return super().linear(op, ctx)
        operands = prepare(self.structured, op, plan, ctx.graph)
        r_in, part, variant = contract_fused(plan, operands, ctx.r_out)
        self.fused_steps[variant] += 1
        return [(op.inputs[0], self._checked(c, r_in))], (
            None if part is None else self._checked(c, part))

    # --- the primitive ---
    def contract(self, ctx: StepContext, edges: Edges, r_out: torch.Tensor) -> torch.Tensor:
        c = self.carrier(ctx.semiring)
        k = self.kernels
        theta, threshold, weights = "THETA_ONE", 0.0, None
        if edges.values is not None:
            theta, weights = "THETA_VALUES", np.asarray(edges.values, dtype=np.float64)
        elif edges.weights is not None:
            if ctx.theta is None or ctx.layer is None:
                raise ProvgraphError("weighted edges need a Θ")
            weights = np.asarray(edges.weights, dtype=np.float64)
            ctx.theta(weights[:0], ctx.semiring, ctx.layer)  # its refusal, if K does not fit
            theta = THETAS.get(type(ctx.theta), "THETA_VALUES")
            if theta == "THETA_VALUES":  # a Θ of the user's: evaluated on the host
                weights = np.asarray(ctx.theta(weights, ctx.semiring, ctx.layer), np.float64)
            elif theta == "THETA_THRESHOLD":
                threshold = float(ctx.theta.threshold_for(ctx.layer))
        r_out = r_out.reshape(r_out.shape[0], -1).contiguous()
        n_cols, rows = r_out.shape[1], edges.rows
        out = torch.empty((rows, n_cols), dtype=torch.float64, device=self.device)
        if rows == 0:
            return out
        dev = self.device
        indptr = torch.as_tensor(np.asarray(edges.indptr, dtype=np.int64), device=dev)
        cols = torch.as_tensor(np.asarray(edges.cols, dtype=np.int64), device=dev)
        w = (torch.zeros(1, dtype=torch.float64, device=dev) if weights is None
             else torch.as_tensor(weights, device=dev))
        max_len = int(np.diff(np.asarray(edges.indptr)).max())
        block_r, block_e, block_c = INTERPRETER_TILES if interpreting() else GPU_TILES
        k.contract_rows[k.grid(rows, n_cols, block_r, block_c)](
            indptr, cols, w, r_out, out, rows, n_cols, max_len,
            torch.tensor([threshold], dtype=torch.float64, device=dev), c.zero, c.one,
            OPS=k.CODES[c.ops], THETA=k.CODES[theta],
            INTEGRAL=c.integral and theta != "THETA_VALUES", BOOLEAN=c.boolean,
            BLOCK_R=block_r, BLOCK_E=block_e, BLOCK_C=block_c,
        )
        return self._checked(c, out)

    def _checked(self, c: TritonCarrier, values: torch.Tensor) -> torch.Tensor:
        if c.integral and values.numel() and float(values.abs().max()) >= EXACT_COUNTS:
            raise CountOverflowError(
                "path counts reach 2**53, past the exact integers of the triton backend's "
                "float64 counts; use counting='float64'/'log' or the scipy backend"
            )
        return values
