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


def test_fuzzed_models_through_the_command_line(tmp_path, capsys) -> None:
    """The same mutated models through ``provgraph explain``: exit 0 with a result, or exit 2
    with one ``provgraph: error: …`` line, never a traceback."""
    import numpy as np
    from mutations import make_case
    from seeds import seeds

    from provgraph.cli import main

    models, checked = seeds(), 0
    for index in range(400):
        case = make_case(models, index, SEED + 1, tmp_path)
        if case.family in ("inputs", "options"):
            continue  # the API's own keywords; the command line has its own options
        model = case.model
        if isinstance(model, bytes):
            model = tmp_path / f"case{index}.onnx"
            model.write_bytes(case.model)
        x = tmp_path / f"x{index}.npy"
        np.save(x, np.asarray(case.x, dtype=np.float32))
        code = main(["-q", "explain", str(model), str(x)])
        err = capsys.readouterr().err.strip()
        assert code in (0, 2), (case.description, code, err)
        if code == 2:
            assert err.startswith("provgraph: error: ") and "\n" not in err, case.description
        checked += 1
    assert checked >= 250
