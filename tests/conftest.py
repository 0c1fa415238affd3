"""Shared test set-up: makes the helper modules of this folder importable; exported models."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per test worker: parallel workers must not oversubscribe the cores.
    An installed torchvision whose C extension does not load is made importable (timm,
    transformers)."""
    from timm_import import make_torchvision_importable

    make_torchvision_importable()
    if hasattr(config, "workerinput"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def torch_onnx(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``torch_onnx(name, dynamo, keep_batchnorm)``: a model of ``tests/models.py`` exported to
    ONNX once per session (weights from seed 0)."""
    from models import build, export_onnx

    folder = tmp_path_factory.mktemp("torch_onnx")
    cache: dict[tuple[str, bool, bool], Path] = {}

    def get(name: str, dynamo: bool = False, keep_batchnorm: bool = False) -> Path:
        key = (name, dynamo, keep_batchnorm)
        if key not in cache:
            path = folder / f"{name}-{'dynamo' if dynamo else 'torchscript'}-{keep_batchnorm}.onnx"
            output = "probabilities" if name == "softmax_mlp" else "logits"
            cache[key] = export_onnx(build(name), path, dynamo, keep_batchnorm, output_name=output)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def dask_client():  # type: ignore[no-untyped-def]
    """A ``LocalCluster`` of 2 single-threaded worker processes on 127.0.0.1, one per session,
    and a client of it; the tests' own modules are pickled by value for its workers."""
    import cloudpickle
    import distributed
    import distributed_jobs

    from provgraph.apps.cluster import local_cluster

    cloudpickle.register_pickle_by_value(distributed_jobs)
    with local_cluster(2, host="127.0.0.1") as cluster, distributed.Client(cluster) as client:
        yield client
