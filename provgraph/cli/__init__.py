"""The command-line interface (``provgraph COMMAND …``)."""

from provgraph.cli.main import main

__all__ = ["main"]
