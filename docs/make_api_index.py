"""Write ``docs/api.rst``: one autosummary entry per module, grouped by sub-package.

Run by ``make docs`` before Sphinx, so that every module of the tree is in the reference. Each
group is titled with the first line of its package's docstring.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: (dotted package, folder) of every installed package root; sub-packages are found below them
ROOTS = [("provgraph", ROOT / "provgraph"), ("provgraph.importers", ROOT / "importers"),
         ("provgraph.backends", ROOT / "backends")]
SKIP = {"__main__"}


def _title(init: Path, fallback: str) -> str:
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) if init.exists() else None
    return doc.strip().splitlines()[0].rstrip(".") if doc else fallback


def _packages() -> list[tuple[str, Path]]:
    found = []
    for dotted, folder in ROOTS:
        for init in sorted(folder.rglob("__init__.py")):
            rel = init.parent.relative_to(folder).parts
            if "data" in rel:
                continue
            found.append((".".join((dotted, *rel)), init.parent))
    return found


def build() -> str:
    lines = ["API reference", "=============", "",
             "Generated from the numpydoc docstrings; each object is documented in the module",
             "that defines it (``provgraph`` and its sub-packages re-export the public names).", ""]
    for dotted, folder in _packages():
        modules = [dotted] + [f"{dotted}.{f.stem}" for f in sorted(folder.glob("*.py"))
                              if f.stem not in SKIP and f.stem != "__init__"]
        title = f"``{dotted}``: {_title(folder / '__init__.py', dotted)}"
        lines += [title, "-" * len(title), "", ".. autosummary::", "   :toctree: _autosummary", ""]
        lines += [f"   {m}" for m in modules] + [""]
    return "\n".join(lines)


if __name__ == "__main__":
    (ROOT / "docs" / "api.rst").write_text(build(), encoding="utf-8")
