"""Names of the feature backbones, without torch: what the workflow reads when it is parsed."""

from __future__ import annotations

#: Every feature backbone (``features.extractor`` of a dataset config).
BACKBONES: tuple[str, ...] = ("i3d", "i3d_r50", "untrimmednet", "tsrnet_frames")
#: Backbones without a flow stream (no flow stage runs for them).
RGB_ONLY = frozenset({"i3d_r50"})
