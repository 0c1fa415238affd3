"""``provgraph explain-text``: a text classifier's relevance per token through a tokenizer file
the test builds itself (a WordLevel ``tokenizer.json``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformer_models import SEQ, VOCAB, exported

import provgraph as pg
from provgraph.cli.main import main

WORDS = ["[PAD]", "[UNK]", "[CLS]"] + [f"w{i}" for i in range(VOCAB - 3)]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("text")
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.save(str(folder / "tokenizer.json"))
    model = folder / "bert.onnx"
    model.write_bytes(exported("bert").onnx)
    return model, folder / "tokenizer.json"


def test_relevance_per_token(files: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    model, tokenizer = files
    text = "[CLS] w4 w17 nonsense w30"
    assert main(["explain-text", str(model), text, "--tokenizer", str(tokenizer),
                 "--rule", "attnlrp", "--backend", "scipy"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[3:-1]]
    assert [r[0] for r in rows] == ["[CLS]", "w4", "w17", "[UNK]", "w30"]
    ids = [WORDS.index(r[0]) for r in rows]
    assert [int(r[1]) for r in rows] == ids
    padded = np.array([ids + [0] * (SEQ - len(ids))])
    mask = (np.arange(SEQ) < len(ids)).astype(np.int64)[None]
    rel = pg.explain(str(model), {"input_ids": padded, "attention_mask": mask}, rule="attnlrp",
                     backend="scipy")
    want = rel.input.sum(axis=1)[: len(ids)]
    np.testing.assert_allclose([float(r[2]) for r in rows], want, rtol=1e-5, atol=1e-9)


def test_bad_tokenizer_is_one_line(files: tuple[Path, Path], tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    model, _ = files
    bad = tmp_path / "tokenizer.json"
    bad.write_text(json.dumps({"not": "a tokenizer"}))
    assert main(["explain-text", str(model), "w1", "--tokenizer", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a readable tokenizer.json" in err[0]
