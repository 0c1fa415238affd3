"""The command-line interface (``provgraph COMMAND …``).

``main`` holds the table of commands and the one dispatch; ``options`` the options several
commands share; ``explain``, ``explain_dataset`` (``explain --batch``) and ``symbolic``
(``polynomial``, ``specialize``) the handlers. Importing this package stays light (no torch,
sympy or matplotlib), so that ``provgraph --help`` answers at once.
"""

from provgraph.cli.main import main

__all__ = ["main"]
