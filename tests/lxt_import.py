"""Import LXT's rules and patches beside a torch build that has no matching torchvision.

``lxt.efficient``'s package ``__init__`` imports its model maps, one of which imports
torchvision's vision transformer. Its rules (``lxt.efficient.rules``) and generic patches
(``lxt.efficient.patches``) need only torch; when the package ``__init__`` cannot run, a package
object pointing at the installed folder lets those two modules load as they are.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import pytest


def import_lxt() -> tuple[types.ModuleType, types.ModuleType]:
    """``(lxt.efficient.rules, lxt.efficient.patches)``."""
    try:
        importlib.import_module("lxt.efficient")
    except ImportError:
        spec = importlib.util.find_spec("lxt")
        if spec is None or spec.origin is None:
            pytest.fail("lxt is required for the AttnLRP oracle tests (make install)")
        folder = Path(spec.origin).parent / "efficient"
        for name in [m for m in sys.modules if m.startswith("lxt.efficient")]:
            del sys.modules[name]
        package = types.ModuleType("lxt.efficient")
        package.__path__ = [str(folder)]
        sys.modules["lxt.efficient"] = package
    return (importlib.import_module("lxt.efficient.rules"),
            importlib.import_module("lxt.efficient.patches"))
