"""Tiny generated feature sets in the public layouts (per-video, BaSNet/CoLA, W-TALC).

Rows are ``snippet_seconds`` apart. Background rows are noise; rows inside an action of class
``k`` carry a strong class-specific offset in both the RGB and the flow half, so a weakly
supervised model can find the actions and a wrong time mapping shows in the mAP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

CLASSES = ["Jump", "Throw"]
SNIPPET_SECONDS = 0.64
HALF = 16  # columns per stream: rgb [0, 16), flow [16, 32)


def make_videos(seed: int = 0, n_train: int = 16, n_test: int = 8) -> dict[str, dict[str, Any]]:
    """``{key: {subset, features (T, 32), annotations, duration}}``, keys like W-TALC's."""
    rng = np.random.default_rng(seed)
    videos = {}
    for subset, n in (("validation", n_train), ("test", n_test)):
        for i in range(n):
            key = f"video_{subset}_{i:07d}"
            rows = int(rng.integers(40, 60))
            x = rng.normal(0.0, 1.0, size=(rows, 2 * HALF)).astype(np.float32)
            anns = []
            n_inst = 1 + int(rng.integers(0, 2))
            cuts = np.linspace(0, rows, n_inst + 1).astype(int)
            for j in range(n_inst):
                label = CLASSES[int(rng.integers(0, len(CLASSES)))]
                k = CLASSES.index(label)
                length = int(rng.integers(6, 12))
                first = int(rng.integers(cuts[j] + 1, max(cuts[j] + 2, cuts[j + 1] - length - 1)))
                last = min(first + length, rows - 1)
                for half in (0, HALF):
                    x[first:last, half + 4 * k: half + 4 * k + 4] += 4.0
                anns.append({"segment": [round(first * SNIPPET_SECONDS, 2),
                                         round(last * SNIPPET_SECONDS, 2)], "label": label})
            videos[key] = {"subset": subset, "features": x, "annotations": anns,
                           "duration": round(rows * SNIPPET_SECONDS, 2)}
    return videos


def write_per_video(root: Path, videos: dict[str, dict[str, Any]], *, prefix: str = "v_",
                    string_segments: bool = True) -> dict[str, Any]:
    """``<root>/features/v_<key>.npy`` + an ActivityNet-schema JSON with string segments."""
    feats = root / "features"
    feats.mkdir(parents=True)
    database = {}
    for key, v in videos.items():
        np.save(feats / f"{prefix}{key}.npy", v["features"])
        anns = [{"segment": [str(a) for a in ann["segment"]] if string_segments
                 else ann["segment"], "label": ann["label"]} for ann in v["annotations"]]
        database[key] = {"subset": v["subset"], "duration": v["duration"], "annotations": anns}
    ann_path = root / "annotations.json"
    ann_path.write_text(json.dumps({"version": "byo", "database": database}))
    return {"features_dir": str(feats), "annotations": str(ann_path)}


def write_trimmed(root: Path, *, folders: dict[str, str] | None = None, per_class: int = 3,
                  seed: int = 0) -> dict[str, Any]:
    """Trimmed clips' features in the UCF101 layout, ``<root>/<Folder>/v_<Folder>_gGG_cCC.npy``:
    every row of a clip of class ``k`` carries the class's offset (a trimmed clip is all
    action). ``folders``: dataset class → UCF101 folder (default: the same names). Returns the
    ``trimmed`` block and ``{clip: (class, features)}`` under ``"clips"``."""
    rng = np.random.default_rng(seed)
    folders = folders or {c: c for c in CLASSES}
    clips: dict[str, tuple[str, np.ndarray]] = {}
    for cls, folder in folders.items():
        (root / folder).mkdir(parents=True)
        k = CLASSES.index(cls)
        for i in range(per_class):
            rows = int(rng.integers(3, 15))
            x = rng.normal(0.0, 1.0, size=(rows, 2 * HALF)).astype(np.float32)
            for half in (0, HALF):
                x[:, half + 4 * k: half + 4 * k + 4] += 4.0
            name = f"v_{folder}_g{i // 2 + 1:02d}_c{i % 2 + 1:02d}"
            np.save(root / folder / f"{name}.npy", x)
            clips[name] = (cls, x)
    block: dict[str, Any] = {"root": str(root)}
    if any(c != f for c, f in folders.items()):
        block["classes"] = dict(folders)
    return {"trimmed": block, "clips": clips}


def write_basnet(root: Path, videos: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """BaSNet/CoLA: ``features/{train,test}/{rgb,flow}/<vid>.npy``; gt.json with string
    segments, subsets "train"/"test", no duration."""
    database = {}
    for key, v in videos.items():
        subset = "train" if v["subset"] == "validation" else "test"
        for stream, cols in (("rgb", slice(0, HALF)), ("flow", slice(HALF, 2 * HALF))):
            folder = root / "features" / subset / stream
            folder.mkdir(parents=True, exist_ok=True)
            np.save(folder / f"{key}.npy", v["features"][:, cols])
        database[key] = {"subset": subset, "annotations": [
            {"segment": [str(s) for s in a["segment"]], "label": a["label"]}
            for a in v["annotations"]]}
    (root / "gt.json").write_text(json.dumps({"database": database}))
    return {"features_dir": str(root / "features"), "annotations": str(root / "gt.json"),
            "layout": "basnet"}


def write_wtalc(root: Path, videos: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """W-TALC: one object-array ``Toy-I3D-JOINTFeatures.npy`` and its annotation folder
    (bytes arrays, duration shaped (N, 1), pickled per-video segment and label lists)."""
    ann = root / "Toy-Annotations"
    ann.mkdir(parents=True)
    keys = list(videos)
    np.save(ann / "videoname.npy", np.array([k.encode() for k in keys], dtype="S24"))
    np.save(ann / "subset.npy", np.array([videos[k]["subset"].encode() for k in keys],
                                         dtype="S10"))
    np.save(ann / "classlist.npy", np.array([c.encode() for c in CLASSES], dtype="S17"))
    np.save(ann / "duration.npy", np.array([[videos[k]["duration"]] for k in keys]))
    segs = np.empty(len(keys), dtype=object)
    labels = np.empty(len(keys), dtype=object)
    joint = np.empty(len(keys), dtype=object)
    for i, k in enumerate(keys):
        segs[i] = [list(a["segment"]) for a in videos[k]["annotations"]]
        labels[i] = [a["label"] for a in videos[k]["annotations"]]
        joint[i] = videos[k]["features"]
    np.save(ann / "segments.npy", segs, allow_pickle=True)
    np.save(ann / "labels.npy", labels, allow_pickle=True)
    feats = root / "features"
    feats.mkdir()
    np.save(feats / "Toy-I3D-JOINTFeatures.npy", joint, allow_pickle=True)
    return {"features_dir": str(feats), "annotations": str(ann), "layout": "wtalc"}
