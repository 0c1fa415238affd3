"""The resume folder of a dataset job: one file per completed partition, checked by hash.

Each completed partition's :class:`~provgraph.apps.partitions.PartitionResult` is stored as
``partial-NNNNN.pkl``, written atomically, together with the sha256 of everything it was
computed from (the job's description: model digests, dataset description, reduction
fingerprint, chunk size, options; plus the partition's index range) and the sha256 of the
stored bytes. A resumed job keeps a stored partition only if both hashes match (and its
per-sample output file still exists); anything else is recomputed and overwritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from pathlib import Path
from typing import Any

from provgraph.apps.partitions import PartitionResult
from provgraph.io.atomic import atomic_write

log = logging.getLogger(__name__)

FORMAT = "provgraph-partition-1"


class JobStore:
    """Completed partitions of one job in ``folder``.

    Parameters
    ----------
    folder : str or Path
        The resume folder (created on the first save).
    job : dict
        JSON-serialisable description of everything the partials depend on.
    """

    def __init__(self, folder: str | Path, job: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.job = json.dumps(job, sort_keys=True, default=str)

    def key(self, start: int, stop: int) -> str:
        """The content hash of one partition's inputs."""
        text = json.dumps({"job": self.job, "range": [start, stop]}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def path(self, number: int) -> Path:
        """Where partition ``number`` is stored."""
        return self.folder / f"partial-{number:05d}.pkl"

    def load(self, number: int, start: int, stop: int) -> PartitionResult | None:
        """The stored result of partition ``number`` if it is intact and of these inputs."""
        path = self.path(number)
        if not path.is_file():
            return None
        try:
            record = pickle.loads(path.read_bytes())
            payload = record["payload"]
            intact = (record.get("format") == FORMAT and record["key"] == self.key(start, stop)
                      and hashlib.sha256(payload).hexdigest() == record["sha256"])
            result = pickle.loads(payload) if intact else None
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, AttributeError,
                ValueError):
            result = None
        if result is None:
            log.info("%s: stale or damaged, partition %d is recomputed", path, number)
            return None
        if result.output is not None and not Path(result.output).is_file():
            log.info("%s is missing, partition %d is recomputed", result.output, number)
            return None
        return result

    def save(self, number: int, start: int, stop: int, result: PartitionResult) -> None:
        """Store partition ``number``'s result atomically, with its hashes."""
        payload = pickle.dumps(result, protocol=4)
        record = {"format": FORMAT, "key": self.key(start, stop), "range": [start, stop],
                  "sha256": hashlib.sha256(payload).hexdigest(), "payload": payload}
        atomic_write(self.path(number), lambda fh: fh.write(pickle.dumps(record, protocol=4)))
