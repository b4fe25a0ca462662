"""What every document builder of a network step needs: the trace, the step, the number
format, the words and the options."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deltaprop.explain.blocks import Answer
from deltaprop.explain.notation import Fmt
from deltaprop.explain.records import LayerRecord, NetworkRecord, StepRecord
from deltaprop.explain.words import Options, Words

#: expand sums with at most this many terms; per-sample equations for at most this many samples
MAX_TERMS = 6
MAX_SAMPLE_EQS = 4


@dataclass
class Ctx:
    """One step being written."""

    tr: NetworkRecord
    step: StepRecord
    opts: Options

    def __post_init__(self) -> None:
        self.F = Fmt(self.opts.digits)
        self.w = Words(self.opts.lang)

    @property
    def m(self) -> int:
        return len(self.step.samples)

    @property
    def shown(self) -> range:
        """The samples written out equation by equation (the rest are in tables)."""
        return range(min(self.m, MAX_SAMPLE_EQS))

    def sample(self, k: int) -> int | None:
        """The sample label of formulas: None for a single-sample step."""
        return None if self.m == 1 else self.step.samples[k] + 1

    def answer(self, name: str, kind: str, value: float) -> Answer:
        return Answer(name, kind, float(value), self.step.index)

    def last(self, rec: LayerRecord) -> bool:
        return rec.index == len(self.step.layers) - 1

    def rows(self, arr: np.ndarray) -> np.ndarray:
        """Per-sample values as a (samples, units) matrix."""
        return arr.reshape(self.m, -1)
