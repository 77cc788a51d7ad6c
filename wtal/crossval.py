"""Choosing a setting that a paper leaves open, on the training videos only.

A dataset's test subset must never choose a setting. What a paper does not give (ASSG's proposal
level, TSRNet's β, …) is chosen here by k-fold cross-validation on the TRAINING videos: they are
dealt into ``folds`` folds in name order; for each fold and seed the model is trained on the
other folds with every candidate's settings and localises the held-out fold, whose own
annotations score it (ActivityNet protocol, mean mAP over ``tious``). The candidate of highest
mean wins; ties go to the earlier candidate. Candidates that differ only in ``infer`` share one
training per fold and seed, as ablation rows do (:func:`wtal.ablation.training_key`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wtal.ablation import training_key, variant_settings

__all__ = ["cross_validate"]

logger = logging.getLogger(__name__)


def cross_validate(
    index_path: str | os.PathLike[str],
    feature_paths: Sequence[str | os.PathLike[str]],
    gt_path: str | os.PathLike[str],
    workdir: str | os.PathLike[str],
    *,
    model: str,
    settings: Mapping[str, Any],
    candidates: Mapping[str, Mapping[str, Any]],
    folds: int = 2,
    seeds: Sequence[int] = (0,),
    tious: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5),
    trimmed_paths: Sequence[str | os.PathLike[str]] = (),
    device: str = "cpu",
) -> dict[str, Any]:
    """The best of ``candidates`` by ``folds``-fold cross-validation on training videos.

    Args:
        index_path: the dataset's ``index.json``.
        feature_paths: the training videos' feature files; every one must be of the index's
            ``train`` split (else ``ValueError``: the test subset never chooses).
        gt_path: the dataset's ``gt.json`` (the training videos' annotations are read).
        workdir: every run's checkpoint, log and detections are kept here.
        model: registered model name.
        settings: the model's resolved ``{args, train, infer}`` for the dataset.
        candidates: ordered name → ``{args, train, infer}`` override merged onto ``settings``.
        folds: number of folds (at least 2).
        seeds: training seeds; each fold is trained once per seed and candidate training.
        tious: the tIoU thresholds whose mean mAP scores a candidate (default 0.1:0.5, the
            Ave-mAP the seed papers' ablations report).
        trimmed_paths: trimmed clips' features, for models that learn from them.
        device: ``cpu``, ``cuda`` or ``auto``.

    Returns:
        ``{"best": name, "override": candidates[best], "mean": {name: mAP}, "runs": [{"fold",
        "seed", "mAP": {name: mAP}}], "candidates", "folds", "seeds", "tious", "videos",
        "trainings"}`` (``trainings``: how many models were trained).
    """
    from wtal.evaluate import evaluate
    from wtal.infer import infer
    from wtal.settings import infer_settings, train_settings
    from wtal.train import load_split, train
    from wtalio import read_json, write_json

    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    if not candidates:
        raise ValueError("no candidate settings to choose from")
    full = variant_settings(settings, candidates)  # ValueError on an unknown section
    index = read_json(index_path)
    paths = sorted((Path(p) for p in feature_paths), key=lambda p: p.stem)
    load_split(paths, index, split="train")  # every video a training video, or ValueError
    if len(paths) < folds:
        raise ValueError(f"{len(paths)} training videos cannot make {folds} folds")
    database = read_json(gt_path).get("database", {})
    missing = [p.stem for p in paths if p.stem not in database]
    if missing:
        raise ValueError(f"{gt_path}: no annotations for the training videos {missing[:5]}")
    keys = {name: training_key(values) for name, values in full.items()}
    distinct = list(dict.fromkeys(keys.values()))  # one training per distinct (args, train)
    work = Path(workdir)
    runs: list[dict[str, Any]] = []
    for fold in range(folds):
        held = [p for i, p in enumerate(paths) if i % folds == fold]
        rest = [p for i, p in enumerate(paths) if i % folds != fold]
        fold_gt = work / f"fold{fold}" / "gt.json"  # the held-out training videos alone
        write_json(fold_gt, {
            "taxonomy": [{"nodeId": i, "nodeName": c, "parentId": None, "parentName": None}
                         for i, c in enumerate(index["classes"])],
            "database": {p.stem: {**database[p.stem], "subset": "held-out"} for p in held}})
        for seed in seeds:
            run = work / f"fold{fold}" / f"seed{seed}"
            scores: dict[str, float] = {}
            done: set[str] = set()
            for c, (name, values) in enumerate(full.items()):
                trained = run / f"train{distinct.index(keys[name])}"
                if keys[name] not in done:
                    done.add(keys[name])
                    train(index_path, rest, trained / "model.pt", trained / "train.json",
                          model=model, model_args=dict(values["args"]),
                          settings=train_settings({**values["train"], "seed": int(seed)}),
                          device=device, trimmed_paths=trimmed_paths)
                base, options = infer_settings(values["infer"])
                det = run / f"candidate{c}.json"
                infer(trained / "model.pt", held, det, run / "cas", settings=base,
                      model_options=options, device=device)
                result = evaluate(fold_gt, det, subset="held-out", tious=list(tious))
                scores[name] = float(np.mean(result["mAP"]))
            runs.append({"fold": fold, "seed": int(seed), "mAP": scores})
            logger.info("%s cross-validation, fold %d seed %d: %s", model, fold, seed, scores)
    mean = {name: float(np.mean([r["mAP"][name] for r in runs])) for name in full}
    order = list(full)
    best = min(mean, key=lambda n: (-mean[n], order.index(n)))
    return {"best": best, "override": dict(candidates[best] or {}), "mean": mean, "runs": runs,
            "candidates": dict(candidates),
            "folds": folds, "seeds": [int(s) for s in seeds], "tious": list(tious),
            "videos": [p.stem for p in paths], "trainings": folds * len(seeds) * len(distinct)}
