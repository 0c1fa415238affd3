"""Dataset jobs on a Dask ``LocalCluster`` (2 worker processes on 127.0.0.1) equal the
in-process run, survive a killed worker, resume, and report bad samples.

Oracles: the in-process engine (bit for bit, the same partitions), and a plain loop in this
file over :func:`provgraph.api.explain_batched` of the whole stack at once (exact for Boolean
and Counting, to float rounding for real).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from distributed_jobs import ObservedRelevance, digit_folder, digit_stack

from provgraph.apps.dataset_errors import DatasetError
from provgraph.apps.demo import bundled_model_path
from provgraph.apps.distributed import run_job
from provgraph.apps.image_folder import ImageFolder
from provgraph.apps.model_handle import ModelHandle
from provgraph.apps.partitions import partition_ranges
from provgraph.apps.preprocessing import Preprocessing
from provgraph.apps.relevance_job import ClassRelevance
from provgraph.apps.streaming import ClassStatistics, run_reduction

N = 160
CHUNK = 16
DIGIT_IMAGES = Preprocessing(scale=1 / 255, shape=(784,))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return digit_stack(tmp_path_factory.mktemp("stack"), N)


@pytest.fixture(scope="module")
def model() -> ModelHandle:
    return ModelHandle(bundled_model_path())


def loop_statistics(stack, semiring: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class counts, relevance sums and non-zero counts by a plain loop over one batch."""
    import torch

    from provgraph.api import explain_batched

    x, y = stack.read(), stack.labels
    rel = explain_batched(str(bundled_model_path()), x, semiring, target=y,
                          dtype=torch.float64).input
    counts = np.array([np.sum(y == c) for c in range(10)])
    sums = np.stack([rel[y == c].sum(axis=0) for c in range(10)])
    nonzero = np.stack([(rel[y == c] != 0).sum(axis=0) for c in range(10)])
    return counts, sums, nonzero


def assert_same(a, b) -> None:
    for name in ("counts", "sums", "nonzero", "means", "frequencies"):
        left, right = getattr(a, name), getattr(b, name)
        assert left.dtype == right.dtype and np.array_equal(left, right), name


@pytest.mark.parametrize("semiring", ["real", "boolean", "counting"])
def test_cluster_equals_in_process_and_a_plain_loop(dask_client, stack, model,
                                                    semiring: str) -> None:
    job = ClassRelevance(model, 10, semiring)
    here = run_job(stack, job, partitions=5, chunk_size=CHUNK, progress=False)
    there = run_job(stack, job, cluster=dask_client, partitions=5, chunk_size=CHUNK,
                    progress=False)
    assert_same(here.value, there.value)  # bit for bit, float64 included
    assert there.computed == list(range(5)) and there.samples == N and not there.bad_samples
    counts, sums, nonzero = loop_statistics(stack, semiring)
    assert np.array_equal(there.value.counts, counts)
    assert np.array_equal(there.value.nonzero, nonzero)
    if semiring == "real":
        np.testing.assert_allclose(there.value.sums, sums, rtol=1e-12, atol=1e-12)
    else:
        assert np.array_equal(there.value.sums, sums)
        assert np.array_equal(there.value.frequencies, nonzero / counts[:, None])


def test_any_reduction_runs_on_the_cluster(dask_client, stack, tmp_path: Path) -> None:
    # per-class pixel sums of the raw digits: integers in float64, so every order is exact
    stack_raw = digit_stack(tmp_path, N)
    stack_raw.preprocessing = Preprocessing()
    there = run_job(stack_raw, ClassStatistics(10), cluster=dask_client, chunk_size=CHUNK,
                    progress=False)
    whole = run_reduction(stack_raw, ClassStatistics(10), chunk_size=N, progress=False)
    raw, y = np.load(stack.source).astype(np.int64), stack.labels
    assert np.array_equal(there.value.sums, whole.sums)
    assert np.array_equal(there.value.sums, np.stack([raw[y == c].sum(0) for c in range(10)]))
    assert len(there.partitions) == N // CHUNK


def test_partitions_lie_on_chunk_boundaries_and_cover_the_range() -> None:
    for n, chunk, parts in ((160, 16, 3), (161, 16, 64), (5, 16, None), (1000, 64, 7)):
        ranges = partition_ranges(n, chunk, parts)
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert all(start % chunk == 0 and stop > start for start, stop in ranges)
    with pytest.raises(DatasetError, match="partitions must be a positive integer"):
        partition_ranges(10, 2, 0)


def test_a_killed_worker_loses_nothing(dask_client, stack, model, tmp_path: Path) -> None:
    expected = run_job(stack, ClassRelevance(model, 10, "real"), partitions=10, chunk_size=CHUNK,
                       progress=False)
    markers = tmp_path / "markers"
    job = ObservedRelevance(model, 10, "real", markers, pause=0.4)
    pids = dask_client.run(os.getpid)
    outcome: dict[str, object] = {}
    runner = threading.Thread(target=lambda: outcome.update(result=run_job(
        stack, job, cluster=dask_client, partitions=10, chunk_size=CHUNK, progress=False)))
    runner.start()
    deadline = time.monotonic() + 180
    while (not markers.exists() or len(list(markers.iterdir())) < 2) and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    victim = next(iter(pids.values()))
    assert runner.is_alive()  # mid-job
    os.kill(victim, signal.SIGKILL)
    runner.join(300)
    assert not runner.is_alive()
    dask_client.wait_for_workers(2, timeout=180)
    assert victim not in dask_client.run(os.getpid).values()  # the worker did die
    assert_same(outcome["result"].value, expected.value)
    done = sorted(int(p.name.split("-")[0]) for p in markers.iterdir())
    assert set(done) == set(range(0, N, CHUNK))


def test_resume_recomputes_only_the_missing_partitions(dask_client, stack, model,
                                                       tmp_path: Path) -> None:
    markers, stop, folder = tmp_path / "markers", tmp_path / "stop", tmp_path / "resume"
    job = ObservedRelevance(model, 10, "boolean", markers, stop=stop, stop_from=6 * CHUNK)
    stop.touch()
    with pytest.raises(RuntimeError, match="job stopped at sample 96"):
        run_job(stack, job, partitions=10, chunk_size=CHUNK, resume=folder, progress=False)
    assert len(list(folder.glob("partial-*.pkl"))) == 6
    stop.unlink()
    for marker in markers.iterdir():
        marker.unlink()
    (folder / "partial-00002.pkl").write_bytes(b"damaged")  # rejected by its hash
    resumed = run_job(stack, job, cluster=dask_client, partitions=10, chunk_size=CHUNK,
                      resume=folder, progress=False)
    assert resumed.reused == [0, 1, 3, 4, 5] and resumed.computed == [2, 6, 7, 8, 9]
    recomputed = sorted(int(p.name.split("-")[0]) // CHUNK for p in markers.iterdir())
    assert recomputed == [2, 6, 7, 8, 9]
    whole = run_job(stack, ClassRelevance(model, 10, "boolean"), partitions=10,
                    chunk_size=CHUNK, progress=False)
    assert_same(resumed.value, whole.value)
    other = ObservedRelevance(model, 10, "counting", markers, stop=stop)  # other parameters
    assert run_job(stack, other, partitions=10, chunk_size=CHUNK, resume=folder,
                   progress=False).reused == []


def test_per_sample_maps_are_written_per_partition(dask_client, stack, model,
                                                   tmp_path: Path) -> None:
    result = run_job(stack, ClassRelevance(model, 10, "boolean"), cluster=dask_client,
                     partitions=4, chunk_size=CHUNK, out=tmp_path / "maps", progress=False)
    assert [Path(p).name for p in result.outputs] == [f"part-{k:05d}.npz" for k in range(4)]
    parts = [np.load(p) for p in result.outputs]
    index = np.concatenate([p["index"] for p in parts])
    maps = np.concatenate([p["relevance"] for p in parts])
    from provgraph.api import explain_batched

    oracle = explain_batched(str(bundled_model_path()), stack.read(), "boolean",
                             target=stack.labels).input
    assert np.array_equal(index, np.arange(N)) and np.array_equal(maps, oracle)


def test_a_corrupt_image_is_reported_and_the_rest_completes(dask_client, model,
                                                            tmp_path: Path) -> None:
    files = digit_folder(tmp_path / "digits", per_class=6)
    bad = files[8]
    bad.write_bytes(bad.read_bytes()[:40])  # a truncated PNG
    job = ClassRelevance(model, 3, "boolean")
    result = run_job(ImageFolder(tmp_path / "digits", DIGIT_IMAGES), job, cluster=dask_client,
                     chunk_size=4, progress=False)
    assert [(b.index, b.source) for b in result.bad_samples] == [(8, str(bad))]
    assert result.samples == 17 and list(result.value.counts) == [6, 5, 6]
    bad.unlink()  # the same job over the good images only
    clean = run_job(ImageFolder(tmp_path / "digits", DIGIT_IMAGES), job, chunk_size=17,
                    progress=False)
    assert np.array_equal(result.value.nonzero, clean.value.nonzero)
    assert np.array_equal(result.value.sums, clean.value.sums)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provgraph", *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_on_the_cluster_reports_bad_samples_and_strict_stops(dask_client,
                                                                 tmp_path: Path) -> None:
    files = digit_folder(tmp_path / "digits", per_class=3, classes=2)
    files[4].write_bytes(files[4].read_bytes()[:30])
    model = str(bundled_model_path())
    address = dask_client.scheduler.address
    done = _cli("explain-dataset", model, str(tmp_path / "digits"), "--semiring", "boolean",
                "--scale", str(1 / 255), "--chunk-size", "2", "--save", str(tmp_path / "s.npz"),
                "--cluster", address, "-q")
    assert done.returncode == 0, done.stderr
    assert f"skipped bad sample 4 ({files[4]})" in done.stdout
    assert "5 samples in 3 partitions (3 computed) on tcp://127.0.0.1:" in done.stdout
    saved = np.load(tmp_path / "s.npz")
    assert list(saved["counts"]) == [3, 2] and str(files[4]) in str(saved["info"])
    strict = _cli("explain-dataset", model, str(tmp_path / "digits"), "--scale", str(1 / 255),
                  "--strict", "-q")
    assert strict.returncode == 2 and strict.stdout == ""
    lines = strict.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad sample 4" in lines[0] and str(files[4]) in lines[0]


def test_the_in_process_job_does_not_import_dask(stack) -> None:
    code = (
        "import sys\n"
        "from provgraph.apps.distributed import run_job\n"
        "from provgraph.apps.relevance_job import ClassRelevance\n"
        "from provgraph.apps.demo import bundled_model_path\n"
        "from provgraph.apps.datasets import NpyDataset\n"
        f"ds = NpyDataset({stack.source!r}, {str(Path(stack.source).parent / 'y.npy')!r})\n"
        "r = run_job(ds, ClassRelevance(bundled_model_path(), 10, 'boolean'), chunk_size=64,\n"
        "            progress=False)\n"
        "assert r.samples == len(ds)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_explain_batch_on_the_cluster_equals_the_plain_batch(dask_client, stack,
                                                            tmp_path: Path) -> None:
    np.save(tmp_path / "digits.npy", stack.read(0, 24))
    common = ("explain", str(bundled_model_path()), str(tmp_path / "digits.npy"), "--batch", "8",
              "--semiring", "boolean", "-q")
    plain = _cli(*common, "--save", str(tmp_path / "plain.npz"))
    there = _cli(*common, "--save", str(tmp_path / "there.npz"),
                 "--cluster", dask_client.scheduler.address)
    assert plain.returncode == 0 and there.returncode == 0, there.stderr
    lines = [ln for ln in there.stdout.splitlines() if ln.startswith("digits_")]
    assert lines == [ln for ln in plain.stdout.splitlines() if ln.startswith("digits_")]
    assert len(lines) == 24 and "24 samples in 3 partitions (3 computed) on tcp://" in there.stdout
    a, b = np.load(tmp_path / "plain.npz"), np.load(tmp_path / "there.npz")
    for key in ("input", "names", "targets"):
        assert np.array_equal(a[key], b[key]), key


# The dataset commands (masks, evaluate, prune) run their reductions through run_job: on the
# cluster they equal the in-process run; the in-process run is checked against a plain loop.
JOB_SAMPLES = 40


def test_the_masks_job_on_the_cluster_equals_in_process_and_a_plain_loop(dask_client) -> None:
    from provgraph.api import explain_batched
    from provgraph.apps.mask_report import run_masks
    from provgraph.apps.model_job import ModelRef
    from provgraph.apps.sources import bundled_mnist

    model, digits = ModelRef(bundled_model_path()), bundled_mnist("test")
    here = run_masks(model, digits, chunk_size=8, limit=JOB_SAMPLES, progress=False)
    there = run_masks(model, digits, chunk_size=8, limit=JOB_SAMPLES, progress=False,
                      cluster=dask_client.scheduler.address)
    for semiring in ("boolean", "counting"):
        a, b = here.relevance.of(semiring)[1], there.relevance.of(semiring)[1]
        for name in ("counts", "sums", "nonzero", "frequencies"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), (semiring, name)
    assert [s.name for s in here.sets] == [s.name for s in there.sets]
    assert all(np.array_equal(s.masks, t.masks) for s, t in zip(here.sets, there.sets))
    assert here.evaluation == there.evaluation and here.table() == there.table()
    x, y = digits.read(0, JOB_SAMPLES), digits.labels[:JOB_SAMPLES]
    rel = explain_batched(str(bundled_model_path()), x, "boolean", target=y).input
    boolean = there.relevance.of("boolean")[1]
    assert np.array_equal(boolean.nonzero, np.stack([(rel[y == c] != 0).sum(0)
                                                     for c in range(10)]))


@pytest.mark.parametrize("semiring", ["real", "counting"])
def test_pruning_unit_relevance_on_the_cluster_equals_in_process(dask_client,
                                                                 semiring: str) -> None:
    import onnx

    from provgraph.apps.onnx_pruning import OnnxGraph
    from provgraph.apps.pruning_scores import UnitRelevance
    from provgraph.apps.sources import bundled_mnist

    data = bundled_model_path().read_bytes()
    job = UnitRelevance(data, OnnxGraph(onnx.load_from_string(data)).layers(), semiring)
    train = bundled_mnist("train")
    here = run_job(train, job, chunk_size=8, stop=JOB_SAMPLES, progress=False)
    there = run_job(train, job, cluster=dask_client, chunk_size=8, stop=JOB_SAMPLES,
                    progress=False)
    assert here.value.keys() == there.value.keys() and there.samples == JOB_SAMPLES
    for key in here.value:  # bit for bit: the same partitions, folded in the same order
        assert np.array_equal(here.value[key], there.value[key]), key
    assert there.info["models"] and list(there.info["models"]) == [job.model.sha256]
    whole = run_reduction(train, job, chunk_size=JOB_SAMPLES, progress=False, stop=JOB_SAMPLES)
    for key in here.value:  # one chunk instead of five: equal up to float32 rounding (real)
        np.testing.assert_allclose(here.value[key], whole[key], rtol=1e-4, atol=1e-7)


def test_the_evaluation_job_on_the_cluster_equals_in_process(dask_client) -> None:
    from provgraph.apps.evaluation_report import run_evaluation
    from provgraph.apps.model_job import Case, ModelRef
    from provgraph.apps.sources import bundled_mnist

    model, digits = ModelRef(bundled_model_path()), bundled_mnist("test")
    cases = [Case("boolean"), Case("real", "lrp0")]
    options = {"samples": JOB_SAMPLES // 2, "rank_samples": JOB_SAMPLES // 2, "chunk_size": 10,
               "progress": False}
    here = run_evaluation(model, digits, cases, **options)
    there = run_evaluation(model, digits, cases, cluster=dask_client, **options)
    assert here.faithfulness.table == there.faithfulness.table
    assert here.pruning == there.pruning and here.tables() == there.tables()
    for row, curves in here.faithfulness.curves.items():
        for name, curve in curves.items():
            assert np.array_equal(curve, there.faithfulness.curves[row][name]), (row, name)


@pytest.mark.parametrize("command", [
    ("masks", "--limit", "40", "--chunk", "10"),
    ("evaluate", "--limit", "40", "--chunk", "10", "--cases", "boolean,real/lrp0"),
    ("prune", "--samples", "40", "--test-samples", "60", "--weight-samples", "16",
     "--fractions", "0,0.5"),
], ids=lambda c: c[0])
def test_dataset_commands_print_the_same_on_the_cluster(dask_client, tmp_path: Path,
                                                        command: tuple[str, ...]) -> None:
    here = _cli(*command, "--out", str(tmp_path / "here"), "-q")
    there = _cli(*command, "--out", str(tmp_path / "there"), "-q",
                 "--cluster", dask_client.scheduler.address)
    assert here.returncode == 0 and there.returncode == 0, here.stderr + there.stderr
    assert len(here.stdout.splitlines()) > 3
    assert here.stdout.replace(str(tmp_path / "here"), "OUT") == \
        there.stdout.replace(str(tmp_path / "there"), "OUT")
