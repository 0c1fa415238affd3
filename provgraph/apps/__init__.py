"""Applications built on explanations: the demo, model inspection, ranking and summaries, and
the datasets (sources, declared preprocessing, chunked streaming reductions) they run over, and
the engine that runs a reduction in-process or on a Dask cluster (:func:`run_job`)."""

from provgraph.apps.dataset_errors import DatasetError
from provgraph.apps.datasets import ArrayDataset, Chunk, Dataset, NpyDataset, NpzDataset
from provgraph.apps.distributed import JobResult, run_job
from provgraph.apps.image_folder import ImageFolder
from provgraph.apps.model_handle import ModelHandle
from provgraph.apps.preprocessing import Preprocessing
from provgraph.apps.relevance_job import ClassRelevance
from provgraph.apps.sources import (
    MNIST_PREPROCESSING,
    bundled_mnist,
    bundled_test_path,
    open_dataset,
)
from provgraph.apps.streaming import (
    ClassPartial,
    ClassStatistics,
    ClassSummary,
    Reduction,
    combine_all,
    run_reduction,
)

__all__ = [
    "MNIST_PREPROCESSING",
    "ArrayDataset",
    "Chunk",
    "ClassPartial",
    "ClassRelevance",
    "ClassStatistics",
    "ClassSummary",
    "Dataset",
    "DatasetError",
    "ImageFolder",
    "JobResult",
    "ModelHandle",
    "NpyDataset",
    "NpzDataset",
    "Preprocessing",
    "Reduction",
    "bundled_mnist",
    "bundled_test_path",
    "combine_all",
    "open_dataset",
    "run_job",
    "run_reduction",
]
