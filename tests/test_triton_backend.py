"""The Triton backend: its kernels checked in Triton's interpreter, its registration and errors.

The kernel checks live in ``tests/triton_cases.py`` and run in a pytest subprocess with
``TRITON_INTERPRET=1`` in its environment (Triton reads it when it is imported), so that this
process, and every other test in it, never runs Triton in interpreter mode.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from provgraph.backends import BACKENDS, get_backend
from provgraph.errors import ProvgraphError

HERE = Path(__file__).resolve().parent

pytest.importorskip("triton")  # the test extra installs it; on a platform without wheels, skip


def test_kernels_equal_the_scipy_reference_in_the_interpreter() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(HERE)}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
         "-W", "ignore::DeprecationWarning", str(HERE / "triton_cases.py")],
        capture_output=True, text=True, env=env, cwd=HERE.parent, timeout=900, check=False,
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout


def test_registered_for_cuda_and_refused_clearly_without_it() -> None:
    assert BACKENDS["triton"].capabilities.devices == ("cuda",)
    with pytest.raises(ProvgraphError, match="runs on cuda only"):
        get_backend("triton:cpu")
    if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        import torch

        if not torch.cuda.is_available():
            with pytest.raises(ProvgraphError, match="needs a CUDA device"):
                get_backend("triton")
        with pytest.raises(ProvgraphError, match="TRITON_INTERPRET=1"):
            BACKENDS["triton"](device="cpu")


def test_auto_never_picks_triton_before_torch() -> None:
    assert list(BACKENDS).index("triton") > list(BACKENDS).index("torch")
