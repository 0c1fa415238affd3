"""The Triton backend's kernels compile for the GPU they are meant for, without one.

The interpreter (``tests/test_triton_window.py``) checks what the kernels compute, but it runs
them as numpy code and accepts programs the compiler would reject. Here Triton's own compiler
takes each kernel through its whole pipeline (Triton IR, GPU IR, LLVM, PTX, ``ptxas``) for
``sm_90`` (Hopper, the H200), which needs no device. The gather kernel is compiled in six
variants that together take every compile-time branch: each ⊕/⊗ pair, each built-in Θ, the
integer and Boolean carriers, one to three rule terms, pooling, the factored form, skipping or
visiting zero outputs, and each way of walking a spatial axis.
"""

from __future__ import annotations

import pytest

triton = pytest.importorskip("triton")  # the test extra installs it; elsewhere, skip

from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from provgraph.backends import triton_kernels, triton_window  # noqa: E402

HOPPER = GPUTarget("cuda", 90, 32)
POINTERS = {"S", "V", "D", "R", "OUT", "THRESHOLD", "TOP", "W", "indptr", "cols", "weights",
            "r_out", "out", "a", "b"}
FLOATS = {"zero", "one", "empty"}
INT64_POINTERS = {"indptr", "cols"}


def _compile(kernel, constants: dict) -> dict:
    """Compile ``kernel`` for :data:`HOPPER` with ``constants`` (codes by name are mapped);
    returns the artefacts by stage."""
    signature, constexprs = {}, {}
    for name in kernel.arg_names:
        if name in constants:
            value = constants[name]
            signature[name] = "constexpr"
            constexprs[name] = triton_kernels.CODES.get(value, value)
        elif name in POINTERS:
            signature[name] = "*i64" if name in INT64_POINTERS else "*fp64"
        elif name in FLOATS:
            signature[name] = "fp32"
        else:
            signature[name] = "i32"
    compiled = triton.compile(ASTSource(kernel, signature, constexprs=constexprs),
                              target=HOPPER, options={"enable_fp_fusion": False})
    return compiled.asm


_AXES = ("MODE0", "MODE1", "MODE2")
GATHER_VARIANTS = {
    "counting z^B": ("SUM_PROD", "THETA_THRESHOLD", True, False, 3, False, False, True, (1, 2, 0)),
    "viterbi factored pool": ("MAX_PROD", "THETA_IDENTITY", False, False, 1, True, True, True,
                              (2, 2, 0)),
    "boolean": ("MAX_PROD", "THETA_ONE", False, True, 1, False, False, True, (1, 1, 0)),
    "tropical −log": ("MIN_SUM", "THETA_NEGLOG", False, False, 2, False, False, True, (0, 1, 1)),
    "fuzzy every edge": ("MAX_MIN", "THETA_IDENTITY", False, False, 1, False, False, False,
                         (1, 1, 1)),
    "log counts": ("LSE_SUM", "THETA_LOG", False, False, 1, False, False, True, (1, 0, 0)),
}


@pytest.mark.parametrize("variant", list(GATHER_VARIANTS))
def test_the_gather_kernel_compiles_for_hopper(variant: str) -> None:
    ops, theta, integral, boolean, terms, pooled, factored, skip, modes = GATHER_VARIANTS[variant]
    asm = _compile(triton_window.window_gather, {
        "OPS": ops, "THETA": theta, "INTEGRAL": integral, "BOOLEAN": boolean, "N_TERMS": terms,
        "POOLED": pooled, "FACTORED": factored, "SKIP": skip, **dict(zip(_AXES, modes)),
        "BLOCK_J": 128, "BLOCK_C": 32,
    })
    assert asm["cubin"] and ".target sm_90" in asm["ptx"]


def test_the_other_kernels_compile_for_hopper() -> None:
    for kernel, constants in [
        (triton_window.window_absmax, {"N_TERMS": 3, "POOLED": False, "BLOCK_K": 128,
                                       "BLOCK_C": 32}),
        (triton_window.annotate_outputs, {"OPS": "MIN_SUM", "THETA": "THETA_NEGLOG",
                                          "INTEGRAL": False, "BOOLEAN": False, "BLOCK": 1024}),
        (triton_kernels.contract_rows, {"OPS": "SUM_PROD", "THETA": "THETA_THRESHOLD",
                                        "INTEGRAL": True, "BOOLEAN": False, "BLOCK_R": 16,
                                        "BLOCK_E": 16, "BLOCK_C": 8}),
    ]:
        asm = _compile(kernel, constants)
        assert asm["cubin"] and ".target sm_90" in asm["ptx"], kernel.fn.__name__
