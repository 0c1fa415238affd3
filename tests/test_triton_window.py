"""The Triton backend's fused dense, convolution and pooling kernels, checked in Triton's
interpreter against the scipy reference.

The checks live in ``tests/triton_window_cases.py`` and run in a pytest subprocess with
``TRITON_INTERPRET=1`` in its environment (Triton reads it when it is imported), so that this
process, and every other test in it, never runs Triton in interpreter mode.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

pytest.importorskip("triton")  # the test extra installs it; on a platform without wheels, skip


def test_fused_kernels_equal_the_scipy_reference_in_the_interpreter() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(HERE)}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
         "-W", "ignore::DeprecationWarning", str(HERE / "triton_window_cases.py")],
        capture_output=True, text=True, env=env, cwd=HERE.parent, timeout=900, check=False,
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout
