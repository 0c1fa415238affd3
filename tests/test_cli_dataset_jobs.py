"""``provgraph masks`` and ``provgraph evaluate``: the bundled default, outputs, bad datasets."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from provgraph.apps.demo import bundled_model_path
from provgraph.cli.main import main

QUICK_EVALUATE = ["--features-in-step", "196", "--patch-size", "14", "--regions-evaluation",
                  "4", "--keep", "0.2,1"]


def _sha256() -> str:
    return hashlib.sha256(bundled_model_path().read_bytes()).hexdigest()


def test_masks_runs_on_the_bundled_default(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["masks", "--limit", "20", "-q"]) == 0
    out = capsys.readouterr().out
    assert "boolean f≥0.5" in out and "(random)" in out and "samples per class" in out
    folder = tmp_path / "out" / "masks"
    assert sorted(p.name for p in folder.iterdir()) == ["masks.json", "masks.npz", "masks.png"]
    with np.load(folder / "masks.npz") as data:
        meta = json.loads(str(data["metadata"]))
        assert data["masks"].shape[1:] == (10, 784)
        assert data["counts"].sum() == 20
        freq = data["boolean_frequency"]
        assert np.all((freq >= 0) & (freq <= 1))
    assert meta["model_sha256"] == _sha256()
    assert [c["semiring"] for c in meta["cases"]] == ["boolean", "counting", "real"]
    assert meta["cases"][0]["rule"] == "lrp0" and meta["cases"][0]["theta"] == "1e-09"
    assert meta["dataset"]["preprocessing"]["scale"] == pytest.approx(1 / 255)
    assert meta["dataset"]["used"] == 20 and meta["targets"] == "label"
    picture = Image.open(folder / "masks.png")
    assert picture.size[0] > 1000
    assert json.loads(picture.text["Description"])["model_sha256"] == _sha256()


def test_evaluate_runs_on_the_bundled_default(tmp_path, capsys):
    out = tmp_path / "ev"
    args = ["evaluate", "--limit", "12", "--cases", "boolean,real/epsilon:0.01", "--out",
            str(out), "-q", *QUICK_EVALUATE]
    assert main(args) == 0
    printed = capsys.readouterr().out
    for row in ("boolean/lrp0", "real/epsilon:0.01", "random order", "SRG", "keep 20%"):
        assert row in printed
    document = json.loads((out / "evaluate.json").read_text())
    meta = document["metadata"]
    assert meta["model_sha256"] == _sha256() and meta["test_range"] == [6, 12]
    assert meta["cases"]["boolean/lrp0"] == {"semiring": "boolean", "rule": "lrp0",
                                             "theta": "1e-09"}
    assert "real LRP-0" in meta["ties"] and meta["settings"]["fraction"] == 0.15
    assert set(document["faithfulness"]) == {"boolean/lrp0", "real/epsilon:0.01", "random order"}
    assert (out / "evaluate.png").stat().st_size > 0 and (out / "evaluate.npz").is_file()


def _image(path, size=(28, 28)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros(size[::-1], dtype=np.uint8)).save(path)


def _bad_datasets(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    mixed = tmp_path / "mixed"
    _image(mixed / "0" / "a.png")
    _image(mixed / "1" / "b.png", (20, 20))
    stray = tmp_path / "stray"
    _image(stray / "0" / "a.png")
    (stray / "0" / "notes.txt").write_text("not a digit")
    broken = tmp_path / "broken"
    _image(broken / "0" / "a.png")
    (broken / "1").mkdir()
    (broken / "1" / "b.png").write_bytes(b"not a png at all")
    np.save(tmp_path / "x.npy", np.zeros((4, 784), dtype=np.float32))
    np.save(tmp_path / "y.npy", np.array([0, 1, 12, 3]))
    return {
        "empty folder": ([str(empty)], "empty image folder"),
        "mixed sizes": ([str(mixed)], "differs from the first image"),
        "non-image file": ([str(stray)], "notes.txt: not an image file"),
        "unreadable image": ([str(broken)], "b.png: not a readable image"),
        "label out of range": ([str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy")],
                               "label 12 of sample 2 is not in 0..9"),
    }


BAD_SAMPLES = ("mixed sizes", "unreadable image")


@pytest.mark.parametrize("command", ["masks", "evaluate"])
@pytest.mark.parametrize("case", ["empty folder", "mixed sizes", "non-image file",
                                  "unreadable image", "label out of range"])
def test_bad_datasets_give_one_line(tmp_path, capsys, command, case):
    data, message = _bad_datasets(tmp_path)[case]
    extra = QUICK_EVALUATE + ["--rank-samples", "1"] if command == "evaluate" else []
    if case in BAD_SAMPLES:  # a bad sample stops the job only under --strict
        extra.append("--strict")
    rc = main([command, "--data", *data, "--out", str(tmp_path / "o"), "-q", *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("provgraph: error: ")
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # nothing half-written


@pytest.mark.parametrize("case", BAD_SAMPLES)
def test_without_strict_a_bad_sample_is_reported_and_the_job_completes(tmp_path, capsys, case):
    data, message = _bad_datasets(tmp_path)[case]
    assert main(["masks", "--data", *data, "--out", str(tmp_path / "o"), "-q"]) == 0
    out, err = capsys.readouterr()
    assert "samples per class: 1, 0, 0" in out  # the good image only
    assert "skipped bad sample 1 (" in err and message in err and "Traceback" not in err
    record = json.loads((tmp_path / "o" / "masks.json").read_text())["metadata"]
    assert len(record["bad_samples"]) == 1 and message in record["bad_samples"][0]


@pytest.mark.parametrize("args, message", [
    (["evaluate", "--cases", "boolen"], "unknown semiring 'boolen'"),
    (["evaluate", "--fraction", "1.5"], "--fraction must lie strictly between 0 and 1"),
    (["masks", "--thresholds", "0,0.5", "--limit", "5"], "threshold must lie in (0, 1]"),
    (["evaluate", "--perturb-baseline", "grey"], "not a number, zero, mean or blur"),
])
def test_bad_options_give_one_line(tmp_path, capsys, args, message):
    try:
        rc = main([*args, "--out", str(tmp_path / "o"), "-q"])
    except SystemExit as exc:  # a usage error found by the parser
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
