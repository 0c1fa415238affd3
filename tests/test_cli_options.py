"""The command line's table, shared options, start-up, verbosity, notices and outputs."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from models import dynamic_image_model
from PIL import Image

from provgraph.apps.demo import bundled_model_path, bundled_samples
from provgraph.cli.main import COMMANDS, build_parser, main
from provgraph.cli.options import SHARED_OPTIONS

MODEL = str(bundled_model_path())
HEAVY = ("torch", "sympy", "matplotlib", "onnx", "onnxruntime", "scipy")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(autouse=True)
def _restore_provgraph_logger():
    """``main`` configures the ``provgraph`` logger; give the next test the logger it found."""
    logger = logging.getLogger("provgraph")
    state = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = state


# --------------------------------------------------------------------------- start-up
def test_help_imports_no_heavy_module() -> None:
    res = _python(
        "import sys\n"
        "import provgraph.cli\n"
        "from provgraph.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    assert res.returncode == 0, res.stderr
    help_text, loaded = res.stdout.rsplit("\n", 2)[0], res.stdout.rsplit("\n", 2)[1]
    assert loaded == ""
    for name in COMMANDS:
        assert name in help_text


def test_console_script_help_and_version() -> None:
    script = Path(sys.executable).with_name("provgraph")
    exe = [str(script)] if script.exists() else [sys.executable, "-m", "provgraph"]
    res = subprocess.run([*exe, "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "polynomial" in res.stdout
    res = subprocess.run([*exe, "--version"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0
    assert res.stdout.strip() == f"provgraph {metadata.version('provgraph')}"


def test_package_exports_are_imported_on_first_use() -> None:
    res = _python(
        "import sys\n"
        "import provgraph as pg\n"
        "before = 'torch' in sys.modules\n"
        "from provgraph import Semiring\n"
        "import provgraph.api, provgraph.algebra.semirings as s\n"
        "assert pg.explain is provgraph.api.explain and Semiring is s.Semiring\n"
        "print(before, 'torch' in sys.modules)\n"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "True"]


def test_every_exported_name_resolves() -> None:
    import provgraph as pg

    assert sorted(pg.__all__) == sorted(pg._EXPORTS)
    for name in pg.__all__:
        value = getattr(pg, name)
        assert value.__name__ == name
        assert name in dir(pg)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pg.nope  # noqa: B018


# --------------------------------------------------------------------------- shared options
def _flags(command: str) -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {s for action in sub.choices[command]._actions for s in action.option_strings}


FLAG_OF = {name: "--" + name.replace("_", "-") for name in SHARED_OPTIONS}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_command_has_the_shared_options_it_declares(command: str) -> None:
    flags = _flags(command)
    assert {"-q", "-v", "--help"} <= flags
    for name in COMMANDS[command].options:
        assert FLAG_OF[name] in flags
    for name in set(SHARED_OPTIONS) - set(COMMANDS[command].options):
        assert FLAG_OF[name] not in flags


def test_commands_take_the_options_the_issue_lists() -> None:
    assert set(COMMANDS["explain"].options) == set(SHARED_OPTIONS)
    for command in ("polynomial", "specialize"):
        assert {"input_shape", "output_name", "target", "rule"} <= set(COMMANDS[command].options)
    assert "theta" in COMMANDS["specialize"].options




@pytest.fixture
def dynamic(tmp_path: Path) -> tuple[str, str]:
    model = tmp_path / "dynamic.onnx"
    model.write_bytes(dynamic_image_model().SerializeToString())
    np.save(tmp_path / "x.npy", np.random.default_rng(2).random((1, 6, 5)))
    return str(model), str(tmp_path / "x.npy")


def _neighbours(r: int, c: int, h: int = 6, w: int = 5) -> int:
    return sum(
        0 <= r + dr < h and 0 <= c + dc < w for dr in (-1, 0, 1) for dc in (-1, 0, 1)
    )


def test_polynomial_takes_input_shape_and_counts_every_path(dynamic, capsys) -> None:
    model, x = dynamic
    assert main(["polynomial", model, x, "--expand", "--neuron", "0,6"]) == 2
    assert "--input-shape" in capsys.readouterr().err
    args = ["polynomial", model, x, "--input-shape", "1,6,5", "--expand", "--neuron", "0,6"]
    assert main([*args, "--target", "1"]) == 0
    out = capsys.readouterr().out
    counts = dict(re.findall(r"% x\[(\d+)\]: (\d+) monomials", out))
    # a path runs pixel → one of 4 channels at a 3×3 neighbour → ReLU → pool → the class
    assert counts == {"0": str(4 * _neighbours(0, 0)), "6": str(4 * _neighbours(1, 1))}
    assert len(re.search(r"P\[6\] = (.*)", out).group(1).split(" + ")) == 36


def test_specialize_takes_input_shape(dynamic, capsys) -> None:
    model, x = dynamic
    args = ["specialize", model, x, "--input-shape", "1,6,5", "--semirings", "counting"]
    assert main([*args, "--theta", "one", "--target", "2", "--no-save"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("count"))
    # ⊕ over the 30 pixels of their path counts
    total = sum(4 * _neighbours(r, c) for r in range(6) for c in range(5))
    assert row.split()[3] == str(total)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["explain", MODEL, "x.npy", "--input-shape", "0,784"], "not a shape"),
        (["polynomial", MODEL, "x.npy", "--semiring", "real"], "unrecognized arguments"),
        (["explain", MODEL, "x.npy", "--semiring", "bogus"], "unknown semiring 'bogus'"),
        (["explain", MODEL, "x.npy", "-q", "-v"], "not allowed with argument"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["explain", MODEL, "x.npy", "--top", "-1"], "--top: -1 is below the smallest allowed, 0"),
        (["polynomial", MODEL, "x.npy", "--digits", "two"], "--digits: 'two' is not an integer"),
    ],
)
def test_usage_mistakes_are_one_line_with_exit_2(args, fragment, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("provgraph: error:") and fragment in err[0]


# --------------------------------------------------------------------------- verbosity
@pytest.fixture
def rgb_digit(tmp_path: Path) -> str:
    x, _ = bundled_samples()
    grey = (x[3].reshape(28, 28) * 255).round().astype(np.uint8)
    path = tmp_path / "rgb.png"
    Image.fromarray(np.stack([grey] * 3, axis=-1)).resize((56, 56)).save(path)
    return str(path)


@pytest.mark.parametrize(
    ("flags", "shown", "debug"),
    [([], True, False), (["-q"], False, False), (["QUIET_AFTER"], False, False),
     (["-v"], True, True)],
)
def test_image_conversion_notice_and_verbosity(rgb_digit, capsys, flags, shown, debug) -> None:
    args = ["explain", MODEL, rgb_digit, "--top", "1"]
    argv = [*args, "-q"] if flags == ["QUIET_AFTER"] else [*flags, *args]
    assert main(argv) == 0
    captured = capsys.readouterr()
    notice = "converted RGB to greyscale and resized 56x56 to 28x28"
    assert (notice in captured.err) is shown
    assert ("backend scipy (auto: 267,010 edges" in captured.err) is debug
    assert len(captured.err.strip().splitlines()) == int(shown) + int(debug)
    assert "most relevant inputs" in captured.out


def test_demo_without_progress_bar(tmp_path: Path, capsys) -> None:
    from provgraph.api import explain

    assert main(["-q", "demo", "--digits", "1", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    x, y = bundled_samples()
    paths = explain(MODEL, x[0], target=int(y[0]), semiring="counting").input.sum()
    assert f"{int(paths):,} paths" in captured.out
    assert (tmp_path / "demo_grid.png").is_file()
    assert main(["demo", "--digits", "11", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "between 1 and 10" in err[0]


def test_quiet_hides_the_progress_bar(tmp_path: Path, capsys) -> None:
    x, _ = bundled_samples()
    np.save(tmp_path / "stack.npy", x[:3])
    args = ["explain", MODEL, str(tmp_path / "stack.npy"), "--batch", "2", "--top", "1"]
    assert main(args) == 0
    assert "explain" in capsys.readouterr().err
    assert main(["-q", *args]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.count("predicted") == 3


# --------------------------------------------------------------------------- outputs
def test_unwritable_output_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    x, _ = bundled_samples()
    np.save(tmp_path / "x.npy", x[0])
    (tmp_path / "file").write_text("not a folder")
    bad = tmp_path / "file" / "rel.npz"
    assert main(["explain", MODEL, str(tmp_path / "x.npy"), "--save", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write" in err[0] and str(bad) in err[0]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    from provgraph.io.atomic import atomic_write

    path = tmp_path / "out.json"
    atomic_write(path, lambda fh: fh.write(json.dumps({"v": 1}).encode()))

    def broken(fh) -> None:
        fh.write(b'{"v": ')
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
