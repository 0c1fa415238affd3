"""Sphinx configuration of the provgraph API reference (``make docs``)."""

from __future__ import annotations

import provgraph

project = "provgraph"
author = "provgraph contributors"
release = version = provgraph.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "figures"]  # generated figures and tables, shown in the README
autosummary_generate = True
autosummary_imported_members = False
# each object is documented once, in the module that defines it (packages re-export names)
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
myst_heading_anchors = 3
html_theme = "alabaster"
html_title = f"provgraph {release}"


def _skip_ufunc_attributes(app, what, name, obj, skip, options):
    """numpy ufuncs stored as class attributes, and type aliases, have no signature autodoc
    can format."""
    import types
    import typing

    import numpy as np

    alias = isinstance(obj, (types.GenericAlias, types.UnionType, typing._GenericAlias))
    return True if isinstance(obj, np.ufunc) or alias else None


def setup(app):
    app.connect("autodoc-skip-member", _skip_ufunc_attributes)
