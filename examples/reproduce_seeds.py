"""Reproduce the seeds' dataset applications on the bundled models: every figure and table of
the README's two "Seed applications" sections.

Runs ``examples/seed_masks.py`` (class masks, feature removal, pixel flipping and region
perturbation per semiring, on the bundled MLP and CNN) and ``examples/seed_pruning.py`` (pruning
curves of neurons, filters, inputs and weights against ℓ1/ℓ2/activation/random, and the annotated
network), writing the figures to ``docs/figures/`` and printing the tables. On two CPU cores the
whole run takes about an hour; each script also runs on its own.

Run: ``python examples/reproduce_seeds.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import seed_masks
import seed_pruning


def main() -> None:
    argv = sys.argv
    try:
        sys.argv = [argv[0]]
        seed_masks.main()
        seed_pruning.main()
    finally:
        sys.argv = argv


if __name__ == "__main__":
    main()
