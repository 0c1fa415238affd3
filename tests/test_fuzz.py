"""Deterministic fuzzing of the public API against the error contract (tests/fuzzing/).

2,080 cases in 16 chunks: every case must end in a finite explanation or a one-line
ProvgraphError within its time and memory bound, and an explained mutated model must compute
onnxruntime's logits. ``benchmarks/fuzz_models.py`` runs as many more as asked.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fuzzing"))

from harness import BAD, run_cases

CHUNKS, PER_CHUNK, SEED = 16, 130, 0


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_fuzz_cases_keep_the_contract(chunk: int) -> None:
    outcomes = run_cases(range(chunk * PER_CHUNK, (chunk + 1) * PER_CHUNK), SEED)
    assert len(outcomes) == PER_CHUNK
    bad = [o.line() for o in outcomes if o.kind in BAD]
    assert not bad, f"{len(bad)} cases broke the contract:\n" + "\n".join(bad)
    # the cases exercise both sides of the contract
    assert any(o.kind == "explained" for o in outcomes)
    assert any(o.kind == "refused" for o in outcomes)
