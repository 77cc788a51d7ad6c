"""Ablation stage: train, infer and evaluate every variant of a model's ablation table.

A model's settings file lists its paper's ablation under ``ablations:``, in table order:
variant name → ``{args, train, infer}`` overrides merged onto the model's settings for the
dataset (KT-MGFN's table V: baseline, +MDCM, +CCM, +KTM, +BRM; ECM's table 4; …). Every
variant is trained with the same seed on the same features, run through the same inference and
evaluated with the dataset's protocol; the comparison is written as ``ablation.md`` (a table of
mAP per tIoU) and ``ablation.json`` (the numbers, each variant's settings and training time).
Variants that differ from an earlier one only in ``infer`` (KT-MGFN's table VIII score
factors, ECM's inference rows) share its trained checkpoint instead of retraining: a
retrained copy with the same seed would be the same model (up to nondeterministic GPU
kernels), and on THUMOS14 each training costs tens of minutes. The row records which variant
it shares training with. The table is the product: the variants' detections live in temporary
folders and are removed. Each finished training (checkpoint and log) and each finished row is
kept in a hidden folder beside the outputs (``.ablation.parts``) until the table is written, so
that a rerun after an interruption (a killed job, a cluster's time limit) resumes at the
variant it stopped in instead of retraining the table; they are keyed by the code version, the
variant's settings and every input file's size and modification time, so nothing stale is
reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import wtal
from wtal.settings import infer_settings, merge_settings, train_settings
from wtal.versions import STAGE_VERSIONS
from wtalio import atomic_path, read_json, write_json

__all__ = ["ablation_table", "merge_settings", "run_ablation", "training_key", "transfer_missing",
           "variant_settings"]

SECTIONS = ("args", "train", "infer")

logger = logging.getLogger(__name__)


def variant_settings(
    settings: Mapping[str, Any], variants: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Each variant's full ``{args, train, infer}`` settings, in table order.

    Raises:
        ValueError: no variants, or a variant overriding something other than args, train or
            infer.
    """
    if not variants:
        raise ValueError("the model's settings list no ablations (an 'ablations:' block)")
    out = {}
    for name, override in variants.items():
        unknown = sorted(set(override or {}) - set(SECTIONS))
        if unknown:
            raise ValueError(f"ablation variant {name!r}: unknown sections {unknown} "
                             f"(args, train, infer)")
        out[name] = merge_settings({k: settings.get(k, {}) for k in SECTIONS}, override)
    return out


def run_ablation(
    index_path: str | os.PathLike[str],
    train_paths: Sequence[str | os.PathLike[str]],
    test_paths: Sequence[str | os.PathLike[str]],
    gt_path: str | os.PathLike[str],
    table_out: str | os.PathLike[str],
    json_out: str | os.PathLike[str],
    *,
    model: str,
    settings: Mapping[str, Any],
    variants: Mapping[str, Mapping[str, Any]],
    evaluation: Mapping[str, Any],
    trimmed_paths: Sequence[str | os.PathLike[str]] = (),
    dataset: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    keep_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Ablation stage: write the comparison table ``table_out`` and ``json_out``.

    Args:
        index_path: the dataset's ``index.json``.
        train_paths: feature files of the training videos.
        test_paths: feature files of the test videos.
        gt_path: the dataset's ``gt.json``.
        table_out: the markdown table.
        json_out: the numbers and settings of every variant.
        model: registered model name.
        settings: the model's ``{args, train, infer}`` settings for the dataset.
        variants: ordered variant name → ``{args, train, infer}`` overrides.
        evaluation: ``subset``, ``tiou`` and ``protocol`` of the dataset's evaluation.
        trimmed_paths: the trimmed clips' features (for models that learn from them).
        dataset: recorded in the outputs.
        device: ``auto``, ``cpu`` or ``cuda``.
        threads: torch CPU threads.
        keep_dir: also keep, for a diagnosis of the rows, each variant's trained model and
            outputs in ``keep_dir/<variant>/`` (:func:`variant_folder`): ``model.pt`` and
            ``train.json`` (a variant that shares its training has none), ``detections.json``,
            ``cas/`` and ``row.json``. None (the stage's default): the table is the only
            product.

    Raises:
        ValueError: two variant names that make the same folder name under ``keep_dir``.
    """
    from wtal.evaluate import evaluate
    from wtal.infer import infer
    from wtal.train import train

    full = variant_settings(settings, variants)
    rows: list[dict[str, Any]] = []
    folder = Path(table_out).parent
    folder.mkdir(parents=True, exist_ok=True)
    parts = folder / f".{Path(table_out).stem}.parts"  # what a rerun resumes from
    inputs = _inputs_key(index_path, gt_path, [*train_paths, *test_paths, *trimmed_paths],
                         model=model, evaluation=evaluation, dataset=dataset, device=device)
    parts.mkdir(exist_ok=True)
    kept = _keep_folders(keep_dir, full)
    # (args, train) of a trained variant → (its name, checkpoint, training log, seconds)
    trained: dict[str, tuple[str, Path, dict[str, Any], float]] = {}
    for name, values in full.items():
        key = training_key(values)
        shared_with = None
        if key in trained:  # only infer differs: read the earlier variant's checkpoint
            shared_with, checkpoint, log, t_train = trained[key]
        else:
            done = parts / f"train-{_digest(inputs, key)}"
            checkpoint = done / "model.pt"
            if (done / "done.json").is_file():  # trained before an interruption
                log = read_json(done / "train.json")
                t_train = float(read_json(done / "done.json")["train_seconds"])
                logger.info("ablation %s: variant %r reuses its training in %s", model, name,
                            done)
            else:
                shutil.rmtree(done, ignore_errors=True)
                done.mkdir(parents=True)
                t0 = time.time()
                log = train(index_path, train_paths, checkpoint, done / "train.json",
                            model=model, model_args=dict(values["args"]),
                            settings=train_settings(values["train"]), device=device,
                            threads=threads, trimmed_paths=trimmed_paths)
                t_train = time.time() - t0
                write_json(done / "done.json", {"variant": name, "train_seconds": t_train})
            trained[key] = (name, checkpoint, log, t_train)
            if kept:
                _keep(kept[name], checkpoint, checkpoint.parent / "train.json")
        row_path = parts / f"row-{_digest(inputs, name, _json(values))}.json"
        if row_path.is_file() and (not kept or (kept[name] / "row.json").is_file()):
            rows.append(read_json(row_path))  # evaluated (and kept) before an interruption
            continue
        with tempfile.TemporaryDirectory(prefix="variant-", dir=parts) as tmp:
            work = Path(tmp)
            variant_infer, variant_options = infer_settings(values["infer"])
            infer(checkpoint, test_paths, work / "detections.json", work / "cas",
                  settings=variant_infer, model_options=variant_options, device=device,
                  threads=threads)
            result = evaluate(gt_path, work / "detections.json", subset=evaluation["subset"],
                              tious=evaluation["tiou"], protocol=evaluation["protocol"],
                              dataset=dataset, model=model, strict=True)
            frames = _frame_accuracy(index_path, gt_path, test_paths, work)
            if kept:
                _keep(kept[name], work / "detections.json", work / "cas")
        row = {
            "variant": name,
            "overrides": dict(variants[name] or {}),
            "tiou": result["tiou"],
            "mAP": result["mAP"],
            "average_mAP": result["average_mAP"],
            "frame_accuracy": frames,
            "train_seconds": t_train,
            "shares_training_with": shared_with,
            "final_loss": log["loss"][-1],
            "pretrain": log.get("pretrain"),
            "knowledge_transfer_off": transfer_missing(log),
            "settings": values,
        }
        if kept:
            write_json(kept[name] / "row.json", row)
        write_json(row_path, row)
        rows.append(row)
    report = {
        "model": model,
        "dataset": dataset,
        "protocol": evaluation["protocol"],
        "subset": evaluation["subset"],
        "variants": rows,
        "code_version": wtal.__version__,
    }
    with atomic_path(table_out, suffix=".md") as tmp_md:
        Path(tmp_md).write_text(ablation_table(report))
    write_json(json_out, report)
    shutil.rmtree(parts, ignore_errors=True)  # the table is the product
    return report


def variant_folder(name: str) -> str:
    """The folder name of a variant under ``keep_dir``: its name with every run of characters
    other than letters, digits and ``+-.`` replaced by ``_`` ("VI one classifier" →
    ``VI_one_classifier``, "+KTM" → ``+KTM``)."""
    return re.sub(r"[^A-Za-z0-9+.-]+", "_", name).strip("_") or "_"


def _keep_folders(
    keep_dir: str | os.PathLike[str] | None, variants: Mapping[str, Any]
) -> dict[str, Path]:
    """Variant name → its folder under ``keep_dir`` (created), or {} without ``keep_dir``."""
    if keep_dir is None:
        return {}
    folders: dict[str, Path] = {}
    for name in variants:
        folder = Path(keep_dir) / variant_folder(name)
        clash = [other for other, f in folders.items() if f == folder]
        if clash:
            raise ValueError(f"ablation variants {clash[0]!r} and {name!r} would both be kept "
                             f"in {folder}; rename one")
        folders[name] = folder
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return folders


def _keep(folder: Path, *paths: Path) -> None:
    """Copy files and folders into ``folder`` (replacing what is there)."""
    for src in paths:
        dst = folder / src.name
        if src.is_dir():
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)


def _inputs_key(
    index_path: str | os.PathLike[str],
    gt_path: str | os.PathLike[str],
    paths: Sequence[str | os.PathLike[str]],
    **settings: Any,
) -> str:
    """What an interrupted run's saved trainings and rows depend on besides the variant: the
    code version, the model, the evaluation, and every input file's path, size and
    modification time (a changed feature file or index makes them stale)."""
    stats = []
    for p in (index_path, gt_path, *paths):
        st = os.stat(p)
        stats.append([str(p), st.st_size, st.st_mtime_ns])
    return _json({"code": wtal.__version__, "stage": STAGE_VERSIONS["ablation"],
                  "settings": settings, "files": stats})


def _json(values: Any) -> str:
    return json.dumps(values, sort_keys=True, default=str)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def training_key(values: Mapping[str, Any]) -> str:
    """What decides a variant's trained model: its ``args`` and ``train`` settings (JSON with
    sorted keys). Two variants with the same key differ only in inference."""
    return _json({"args": values.get("args", {}), "train": values.get("train", {})})


def transfer_missing(train_log: Mapping[str, Any]) -> str | None:
    """Why a variant trained without the knowledge transfer its settings ask for, or None.

    The model's ``pretrain`` says so (:attr:`wtal.models.base.Pretrained.transfer_missing`,
    recorded in ``train.json``): KT-MGFN's KTM and TSRNet's L_KT when they are on in the
    arguments but cannot run (the dataset has no trimmed clips, or none shares a class with the
    training videos). A variant that switches the transfer off asked for nothing and gets None.
    Such a row is the model without its transfer and the table must say so (issue 18: a result
    without the paper's transfer is never to be read as the paper's method)."""
    reason = train_log.get("transfer_missing")
    return str(reason) if reason else None


def _frame_accuracy(
    index_path: str | os.PathLike[str],
    gt_path: str | os.PathLike[str],
    test_paths: Sequence[str | os.PathLike[str]],
    work: Path,
) -> float:
    """ECM table 6's frame accuracy of a variant's saved CAS and video scores over the test
    videos (:mod:`wtal.frame_metrics`)."""
    import numpy as np

    from extractors.grid import SnippetGrid
    from wtal.frame_metrics import dataset_frame_accuracy, frame_accuracy
    from wtalio import read_json

    classes = read_json(index_path)["classes"]
    database = read_json(gt_path)["database"]
    scores = read_json(work / "detections.json")["video_scores"]
    counts = []
    for path in test_paths:
        name = Path(path).stem
        grid = SnippetGrid.from_dict(read_json(Path(path).with_suffix(".json"))["grid"])
        gt = [(classes.index(a["label"]), float(a["segment"][0]), float(a["segment"][1]))
              for a in database.get(name, {}).get("annotations", [])
              if a["label"] in classes]
        counts.append(frame_accuracy(np.load(work / "cas" / f"{name}.npy"),
                                     np.array([scores[name][c] for c in classes]), gt, grid))
    return dataset_frame_accuracy(counts)


def _overrides_text(overrides: Mapping[str, Any]) -> str:
    parts = []
    for section in SECTIONS:
        for key, value in (overrides.get(section) or {}).items():
            parts.append(f"{key}={value}")
    return ", ".join(parts) if parts else "(the settings as configured)"


def ablation_table(report: Mapping[str, Any]) -> str:
    """The markdown comparison table of :func:`run_ablation`'s report."""
    rows = report["variants"]
    tious = rows[0]["tiou"] if rows else []
    head = ["variant", *[f"mAP@{t:g}" for t in tious], "avg", "frame acc", "train s",
            "overrides"]
    lines = [
        f"# Ablation of {report['model']} on {report['dataset']}",
        "",
        f"mAP (%) on the {report['subset']} subset, {report['protocol']} protocol; every "
        "variant trained with the same seed on the same features (train s \"= X\": the "
        "variant differs from X only in inference and uses X's trained model). Frame acc (%): "
        "ECM table 6's frame accuracy (snippets inside ground-truth instances whose best class "
        "among those scoring at least 0.25 is right; wtal.frame_metrics).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(tious) + 3) + ["---"]) + "|",
    ]
    missing = []
    for row in rows:
        name = row["variant"]
        if row.get("knowledge_transfer_off"):
            missing.append(f"{name}: {row['knowledge_transfer_off']}")
            name += " †"
        cells = [name, *[f"{100 * m:.1f}" for m in row["mAP"]],
                 f"{100 * row['average_mAP']:.1f}",
                 f"{100 * row.get('frame_accuracy', float('nan')):.1f}",
                 (f"= {row['shares_training_with']}" if row.get("shares_training_with")
                  else f"{row['train_seconds']:.0f}"),
                 _overrides_text(row["overrides"])]
        lines.append("| " + " | ".join(cells) + " |")
    if missing:
        lines += ["", "† Trained WITHOUT the knowledge transfer its settings ask for, so the row "
                  "is the model without it, not the paper's variant: " + "; ".join(missing)
                  + "."]
    return "\n".join(lines) + "\n"
