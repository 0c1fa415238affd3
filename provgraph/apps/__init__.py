"""Applications built on explanations: the demo, model inspection, ranking and summaries, and
the datasets (sources, declared preprocessing, chunked streaming reductions) they run over."""

from provgraph.apps.dataset_errors import DatasetError
from provgraph.apps.datasets import ArrayDataset, Chunk, Dataset, NpyDataset, NpzDataset
from provgraph.apps.image_folder import ImageFolder
from provgraph.apps.preprocessing import Preprocessing
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
    "ClassStatistics",
    "ClassSummary",
    "Dataset",
    "DatasetError",
    "ImageFolder",
    "NpyDataset",
    "NpzDataset",
    "Preprocessing",
    "Reduction",
    "bundled_mnist",
    "bundled_test_path",
    "combine_all",
    "open_dataset",
    "run_reduction",
]
