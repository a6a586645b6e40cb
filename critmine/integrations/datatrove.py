"""A datatrove filter that keeps documents a critmine scorer rates highly (`pip install critmine[datatrove]`).

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from critmine.integrations.datatrove import ScoreFilter

    LocalPipelineExecutor([JsonlReader("in/"), ScoreFilter("scorer/", keep=0.3), JsonlWriter("out/")]).run()

A document is kept when its score is at least the threshold: `threshold=` as given, or `keep=` (a share) turned into
the score that keeps that share of the scorer's training texts (their quantiles are stored with the scorer). The
score goes into `doc.metadata["critmine_score"]`. `critmine select --threshold T` keeps the same documents.
"""

from __future__ import annotations

from datatrove.data import Document as DatatroveDocument
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter

from critmine.io import InputError
from critmine.scorer.model import Scorer
from critmine.scorer.output import SCORE


class ScoreFilter(BaseFilter):
    """Keep documents whose critmine score is at least a threshold (see the module doc)."""

    name = "🎯 critmine score"

    def __init__(self, scorer: str, threshold: float | None = None, keep: float | None = None,
                 batch_size: int = 256, exclusion_writer: DiskWriter | None = None):
        super().__init__(exclusion_writer, batch_size)
        if (threshold is None) == (keep is None):
            raise InputError("ScoreFilter: give exactly one of threshold= and keep=")
        self.scorer_dir = str(scorer)
        self.threshold = threshold if threshold is not None else Scorer.load(scorer).threshold(keep or 0.0)
        self._scorer: Scorer | None = None  # loaded in the worker that runs the step (steps are pickled)

    def filter_batch(self, batch: list[DatatroveDocument]) -> list[bool | tuple[bool, str]]:
        if self._scorer is None:
            self._scorer = Scorer.load(self.scorer_dir)
        scores = self._scorer.score([d.text for d in batch])
        out: list[bool | tuple[bool, str]] = []
        for doc, s in zip(batch, scores.tolist(), strict=True):
            doc.metadata[SCORE] = s
            out.append(True if s >= self.threshold else (False, "critmine_score_below_threshold"))
        return out

    def filter(self, doc: DatatroveDocument) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]
