"""The papers' reported detection mAP on THUMOS14 and ActivityNet-1.3, for the summary table.

Copied by hand from the tables of the papers (the Markdown conversions in the project's paper
folder); each entry names its table and row. Values are percentages as printed; ``None`` is a
threshold the paper does not report. Where a paper's table could not be read, the entry is in
:data:`UNAVAILABLE` with the reason, never guessed.

Benchmarks: ``thumos14`` (test set, mAP at tIoU 0.1…0.7 as the papers print them) and
``activitynet13`` (ActivityNet-1.3 validation set, mAP at 0.5 / 0.75 / 0.95 and the average
over 0.5:0.05:0.95 where given). The papers evaluate with the ActivityNet code or the THUMOS14
kit on their own features (UntrimmedNet, TSN, I3D, ResNet), so the numbers are context for this
project's, not a like-for-like comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

THUMOS14_TIOUS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
ACTIVITYNET_TIOUS: tuple[float, ...] = (0.5, 0.75, 0.95)

#: Paper name of each model of this project (and of papers without a model yet).
PAPER_OF_MODEL: Mapping[str, str] = MappingProxyType({
    "kt_mgfn": "KT-MGFN",
    "assg": "ASSG",
    "cpmn": "CPMN",
    "ecm": "ECM",
    "tsrnet": "TSRNet",
})


@dataclass(frozen=True)
class Published:
    """One row of a paper's comparison table."""

    model: str  # this project's model name (a key of PAPER_OF_MODEL)
    benchmark: str  # "thumos14" or "activitynet13"
    source: str  # table and row, e.g. "Table III, KT-MGFN (Ours), I3DF"
    features: str  # the features the paper used for this row
    tious: tuple[float, ...]  # thresholds of ``mAP``
    mAP: tuple[float | None, ...]  # percent, None where not reported
    average: float | None = None  # percent, the paper's average mAP (ActivityNet)
    average_over: str | None = None  # thresholds of ``average``, e.g. "0.5:0.05:0.95"
    note: str = ""

    @property
    def paper(self) -> str:
        return PAPER_OF_MODEL[self.model]

    def at(self, tiou: float) -> float | None:
        """Reported mAP (percent) at ``tiou``, or None."""
        for t, m in zip(self.tious, self.mAP, strict=True):
            if abs(t - tiou) < 1e-9:
                return m
        return None


PUBLISHED: tuple[Published, ...] = (
    # KT-MGFN: Su et al., "Transferable Knowledge-Based Multi-Granularity Fusion Network".
    # Table III (THUMOS14 detection, weak supervision).
    Published("kt_mgfn", "thumos14", "Table III, KT-MGFN (Ours), I3DF", "I3D",
              THUMOS14_TIOUS, (56.5, 51.3, 42.2, 33.8, 25.6, 17.0, 7.5)),
    Published("kt_mgfn", "thumos14", "Table III, KT-MGFN (Ours), UNTF", "UntrimmedNet",
              THUMOS14_TIOUS, (52.3, 46.6, 39.0, 30.7, 22.7, 13.6, 5.9)),
    # ASSG: Zhang et al., "Adversarial Seeded Sequence Growing".
    # Table 3 (THUMOS14), Table 4 (ActivityNet-1.3).
    Published("assg", "thumos14", "Table 3, STAR-CAS w/ ASSG", "I3D",
              THUMOS14_TIOUS, (65.6, 59.4, 50.4, 38.7, 25.4, 15.0, 6.6)),
    Published("assg", "thumos14", "Table 3, STPN-CAS w/ ASSG", "I3D",
              THUMOS14_TIOUS, (55.6, 49.5, 41.1, 31.5, 20.9, 13.7, 5.9)),
    Published("assg", "activitynet13", "Table 4, STAR-CAS w/ ASSG", "I3D",
              ACTIVITYNET_TIOUS, (32.3, 20.1, 4.0),
              note="no average mAP reported"),
    # CPMN: Su, Zhao & Lin, "Cascaded Pyramid Mining Network".
    # Table 1 (THUMOS14), Table 2 (ActivityNet-1.3 val).
    Published("cpmn", "thumos14", "Table 1, CPMN", "UntrimmedNet",
              THUMOS14_TIOUS, (47.1, 41.6, 32.8, 24.7, 16.1, 10.1, 5.5)),
    Published("cpmn", "activitynet13", "Table 2, CPMN", "TSN",
              ACTIVITYNET_TIOUS, (39.29, 24.09, 6.71), average=24.42,
              average_over="0.5:0.05:0.95"),
    # ECM: Zhao et al., "Equivalent Classification Mapping".
    # Table 3 (THUMOS14), Table 2 (ActivityNet v1.3).
    Published("ecm", "thumos14", "Table 3, ECM", "I3D",
              THUMOS14_TIOUS, (62.6, 55.1, 46.5, 38.2, 29.1, 19.5, 10.9)),
    Published("ecm", "activitynet13", "Table 2, ECM", "I3D",
              ACTIVITYNET_TIOUS, (36.7, 23.6, 5.9), average=23.5,
              average_over="0.5:0.05:0.95"),
    # TSRNet: Zhang et al., "Learning Transferable Self-Attentive Representations".
    # Table 3 (THUMOS14), Table 4 (ActivityNet-1.3).
    Published("tsrnet", "thumos14", "Table 3, TSRNet", "two-stream (ResNet / BN-Inception)",
              THUMOS14_TIOUS, (55.9, 46.9, 38.3, 28.1, 18.6, 11.0, 5.59),
              note="also 2.19 at 0.8 and 0.29 at 0.9"),
    Published("tsrnet", "activitynet13", "Table 4, TSRNet (pretrained: [TSRNet@overlap30])",
              "two-stream (ResNet / BN-Inception)", ACTIVITYNET_TIOUS, (33.1, 18.7, 3.32),
              average=21.78, average_over="as printed (\"Average\")"),
    Published("tsrnet", "activitynet13",
              "Table 4, TSRNet (pretrained: [ResNet101@ImageNet])",
              "two-stream (ResNet / BN-Inception)", ACTIVITYNET_TIOUS, (29.9, 17.2, 2.71),
              average=19.56, average_over="as printed (\"Average\")"),
)

#: (model, benchmark) → why no number is given.
UNAVAILABLE: Mapping[tuple[str, str], str] = MappingProxyType({
    ("kt_mgfn", "activitynet13"): "not found: the numbers of Table IV (ActivityNet-1.3) are "
                                  "missing from the available copy of the paper",
})

#: Dataset names of this project → benchmark of the papers.
BENCHMARK_OF_DATASET: Mapping[str, str] = MappingProxyType({
    "thumos14": "thumos14",
    "activitynet13": "activitynet13",
    "activitynet": "activitynet13",
    "anet13": "activitynet13",
    "anet": "activitynet13",
})

BENCHMARK_NAMES: Mapping[str, str] = MappingProxyType({
    "thumos14": "THUMOS14",
    "activitynet13": "ActivityNet-1.3",
})


def published(model: str | None = None, benchmark: str | None = None) -> list[Published]:
    """The published rows, optionally of one model and/or one benchmark."""
    return [p for p in PUBLISHED
            if (model is None or p.model == model)
            and (benchmark is None or p.benchmark == benchmark)]
