"""The ``wtal`` command line: every stage of the workflow, runnable by hand.

::

    wtal synth-demo OUT_DIR [--seed 0 ...]
    wtal index --dataset-config pipeline/config/datasets/demo.yaml --index I.json --gt GT.json
    wtal decode VIDEO --fps 25 --out PLAN.json
    wtal flow PLAN.json --out FLOW.zip [--short-side 256 --bound 20 --param nscales=3 ...]
    wtal features PLAN.json FLOW.zip --out FEAT.npy [--extractor i3d --ten-crop ...]
    wtal features-compare RELEASED/ MINE/ [--json compare.json]
    wtal train --index I.json --features F1.npy F2.npy ... --model cas_baseline \
        --out-model model.pt --out-log train.json [--config pipeline/config/models/x.yaml]
    wtal infer --model model.pt --features ... --out detections.json --cas-dir cas/
    wtal eval --ground-truth GT.json --predictions DET.json --protocol anet --subset test \
        --tiou 0.1 0.2 0.3 0.4 0.5 0.6 0.7 --out map.json
    wtal report --run results/demo/cas_baseline --gt work/demo/gt.json \
        --features work/demo/features/i3d/*.npy --out results/demo/cas_baseline/report
    wtal summary [results/*/*/map.json ...] --md results/summary.md --csv results/summary.csv
    wtal detect VIDEO --model results/thumos14/kt_mgfn/model.pt [--out D.json --figure T.png]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from wtal.logs import interactive


def _key_values(pairs: Sequence[str]) -> dict[str, Any]:
    """``["a=1", "b=x"]`` → ``{"a": 1, "b": "x"}`` (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"wtal: expected KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


def _nested(values: dict[str, Any]) -> dict[str, Any]:
    """``{"model.theta": 0.4, "nms": "hard"}`` → ``{"model": {"theta": 0.4}, "nms": "hard"}``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        *path, last = key.split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def _model_block(
    path: str | None,
    dataset: str | None,
    user: dict[str, Any] | None = None,
    configfiles: Sequence[str] = (),
) -> dict[str, Any]:
    """A model's settings resolved as the workflow resolves them
    (:func:`wtal.settings.resolve_model_settings`: the file, its block for ``dataset`` — for
    the dataset's ``model_settings`` when it names another, as a bring-your-own-features
    THUMOS14 does —, the overrides of the workflow ``configfiles`` for this model (their
    ``models: {<name>: ...}`` entries, later files winning as with snakemake), then ``user``'s,
    validated with the schema's defaults); without a file, the defaults and ``user``'s."""
    from wtal.settings import merge_settings, read_yaml, resolve_model_settings, validate

    if path is None:
        return validate(merge_settings({"name": "command-line"}, user), "model.schema.yaml",
                        "command-line settings")
    config: dict[str, Any] = {}
    for configfile in configfiles:
        config = merge_settings(config, read_yaml(configfile))
    overrides = dict((config.get("models") or {}).get(Path(path).stem) or {})
    if user:
        overrides = merge_settings(overrides, {"datasets": {dataset: user}} if dataset else user)
    return resolve_model_settings(path, dataset, overrides,
                                  settings_of=_settings_of(path, dataset, config))


def _settings_of(path: str, dataset: str | None, config: dict[str, Any]) -> str | None:
    """The ``model_settings`` of ``dataset`` (whose per-dataset model block applies), read as
    the workflow reads it (:func:`wtal.settings.resolve_dataset_settings`, validated): the
    shipped dataset file beside the model files (``pipeline/config/datasets/<dataset>.yaml``)
    and the dataset's entry in the workflow config; None when neither declares the dataset."""
    from wtal.settings import resolve_dataset_settings

    if dataset is None:
        return None
    entry = (config.get("datasets") or {}).get(dataset)
    parents = Path(path).resolve().parents
    shipped: Path | None = parents[min(1, len(parents) - 1)] / "datasets" / f"{dataset}.yaml"
    if not shipped.is_file():
        shipped = None
    if entry is None and shipped is None:
        return None
    return resolve_dataset_settings(dataset, shipped, entry)["model_settings"]


def cmd_synth_demo(args: argparse.Namespace) -> None:
    from wtal.demo import synthesize_demo

    summary = synthesize_demo(
        Path(args.out), seed=args.seed, n_validation=args.n_validation, n_test=args.n_test
    )
    print(json.dumps(summary, indent=2))


def cmd_index(args: argparse.Namespace) -> None:
    from wtal.datasets import index_from_config

    cfg = yaml.safe_load(Path(args.dataset_config).read_text())
    if "features_dir" in cfg:
        cfg.setdefault("format", "features")
    if cfg.get("format") == "features":
        cfg["subsets"] = [{"name": cfg["train_subset"], "split": "train"},
                          {"name": cfg["test_subset"], "split": "test"}]
    if args.root:
        cfg["root"] = args.root
    index = index_from_config(args.index, args.gt, cfg)
    print(f"indexed {len(index['videos'])} videos of {index['dataset']}; "
          f"{len(index['missing'])} missing, {len(index['excluded'])} excluded, "
          f"{len(index['adjusted'])} annotations adjusted (listed in {args.index})")


def cmd_decode(args: argparse.Namespace) -> None:
    from extractors.decode import decode

    plan = decode(args.video, args.out, fps=args.fps, min_frames=args.min_frames)
    print(f"{args.video}: {plan.source_frames} frames at {plan.source_fps:.3f} fps, "
          f"{plan.duration:.2f} s → {plan.n_frames} frames at {plan.fps} fps")


def cmd_flow(args: argparse.Namespace) -> None:
    from extractors.flowstage import flow_stage

    meta = flow_stage(args.plan, args.out, bound=args.bound, codec=args.codec,
                      params=_key_values(args.param), short_side=args.short_side,
                      threads=args.threads, backend=args.backend, device=args.device,
                      batch_pairs=args.batch_pairs, memory_budget_mb=args.memory_budget_mb,
                      progress=interactive())
    print(f"{args.out}: {meta['n_flows']} flows of {meta['width']}x{meta['height']}")


def cmd_features(args: argparse.Namespace) -> None:
    from extractors.features import FeatureSettings, extract_features

    settings = FeatureSettings(
        extractor=args.extractor, snippet_length=args.snippet_length,
        snippet_stride=args.snippet_stride, short_side=args.short_side, crop=args.crop,
        ten_crop=args.ten_crop, every_nth=args.every_nth, flow_stack=args.flow_stack,
        resnet_depth=args.resnet_depth, rgb_weights=args.rgb_weights,
        rgb_sha256=args.rgb_sha256, flow_weights=args.flow_weights,
        flow_sha256=args.flow_sha256, seed=args.seed, batch_size=args.batch_size,
    )
    flow = None if args.flow in (None, "none") else args.flow
    sidecar = extract_features(args.plan, flow, args.out, settings=settings,
                               device=args.device, threads=args.threads,
                               progress=interactive())
    print(f"{args.out}: features of shape {tuple(sidecar['shape'])}")


def cmd_features_compare(args: argparse.Namespace) -> None:
    from extractors.compare import compare_features, format_table

    result = compare_features(args.a, args.b)
    print(format_table(result))
    if args.json:
        from wtalio import write_json

        write_json(args.json, result)


def cmd_import_features(args: argparse.Namespace) -> None:
    from wtal.byof import import_features, import_split, unpack_joint
    from wtal.datasets import load_index

    index = load_index(args.index)
    if args.unpack_joint:
        joint, annotations = args.unpack_joint
        print(f"unpacked {unpack_joint(joint, annotations, args.unpacked)} videos "
              f"into {args.unpacked}")
    streams = index.get("streams")
    if args.split:  # the workflow's import_split stage
        try:
            paths = import_split(index, args.split, args.out_dir,
                                 snippet_seconds=index["snippet_seconds"], streams=streams,
                                 unpacked=args.unpacked)
        except ValueError as err:
            raise ValueError(f"{args.index}: {err}") from err
        print(f"{args.out_dir}: the {len(paths)} videos of split {args.split}")
        return
    videos = args.videos or sorted(v for v, r in index["videos"].items() if "features" in r)
    for video in videos:
        if video not in index["videos"]:
            raise SystemExit(f"wtal: {args.index}: no video {video!r}")
        out = Path(args.out_dir) / f"{video}.npy"
        sidecar = import_features(video, index["videos"][video], out,
                                  snippet_seconds=index["snippet_seconds"], streams=streams,
                                  unpacked=args.unpacked)
        print(f"{out}: {tuple(sidecar['shape'])}")


def cmd_train(args: argparse.Namespace) -> None:
    from wtal.settings import train_settings
    from wtal.train import train

    block = _model_block(args.config, args.dataset, {"train": _nested(_key_values(args.set))},
                         args.configfile)
    log = train(args.index, args.features, args.out_model, args.out_log, model=args.model,
                model_args=block["args"], settings=train_settings(block["train"]),
                device=args.device, threads=args.threads, progress=interactive(),
                trimmed_paths=args.trimmed)
    print(f"trained {args.model} on {log['n_videos']} videos; final loss {log['loss'][-1]:.4f}")


def cmd_infer(args: argparse.Namespace) -> None:
    from wtal.infer import infer
    from wtal.settings import infer_settings

    block = _model_block(args.config, args.dataset, {"infer": _nested(_key_values(args.set))},
                         args.configfile)
    settings, model_options = infer_settings(block["infer"])
    sub = infer(args.model, args.features, args.out, args.cas_dir, settings=settings,
                model_options=model_options, device=args.device, threads=args.threads)
    n = sum(len(v) for v in sub["results"].values())
    print(f"{args.out}: {n} detections in {len(sub['results'])} videos")


def cmd_ablate(args: argparse.Namespace) -> None:
    from wtal.ablation import ablation_table, run_ablation

    block = _model_block(args.config, args.dataset, configfiles=args.configfile)
    variants = block["ablations"]
    if args.variants:
        unknown = [name for name in args.variants if name not in variants]
        if unknown:
            raise ValueError(f"{args.config}: no ablation variant(s) {unknown}; its "
                             f"'ablations:' block lists {list(variants)}")
        variants = {name: v for name, v in variants.items() if name in args.variants}
    out = Path(args.out)
    report = run_ablation(
        args.index, args.train, args.test, args.gt, out, out.with_suffix(".json"),
        model=args.model, settings=block, variants=variants,
        evaluation={"subset": args.subset, "tiou": args.tiou, "protocol": args.protocol},
        trimmed_paths=args.trimmed, dataset=args.dataset, device=args.device,
        threads=args.threads, keep_dir=args.keep_models)
    print(ablation_table(report), end="")


def cmd_cross_validate(args: argparse.Namespace) -> None:
    import json

    from wtal.crossval import cross_validate
    from wtalio import write_json

    text = args.candidates.strip()
    source = "--candidates" if text.startswith("{") else args.candidates
    try:
        candidates = json.loads(text if text.startswith("{") else Path(text).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{source}: not a JSON object of candidates ({err})") from err
    if not isinstance(candidates, dict):
        raise ValueError(f"{source}: not a JSON object of candidates (name → override)")
    result = cross_validate(
        args.index, args.train, args.gt, args.workdir, model=args.model,
        settings=_model_block(args.config, args.dataset), candidates=candidates,
        folds=args.folds, seeds=args.seeds, tious=args.tiou, trimmed_paths=args.trimmed,
        device=args.device)
    if args.out:
        write_json(args.out, result)
    for name, value in result["mean"].items():
        print(f"{'*' if name == result['best'] else ' '} {name}: {100 * value:.1f}")


def cmd_eval(args: argparse.Namespace) -> None:
    from wtal.evaluate import DEFAULT_TIOUS, evaluate
    from wtalio import write_json

    # an error is printed once, by main()
    result = evaluate(Path(args.ground_truth), Path(args.predictions), subset=args.subset,
                      tious=args.tiou, protocol=args.protocol, class_list=args.class_list,
                      lenient=args.lenient)
    if args.out:
        write_json(args.out, result)
    names = {"anet": "ActivityNet", "thumos14": "THUMOS14"}
    counts = result["counts"]
    tious = result["tiou"]
    lines = [
        f"{names[args.protocol]} protocol: {result['definition']}",
        f"ground truth: {args.ground_truth} (subset {args.subset}: {counts['videos']} videos, "
        f"{counts['ground_truth']} instances, {len(result['per_class'])} classes)",
        f"predictions:  {args.predictions} ({counts['predictions']} evaluated)",
    ]
    if result["unknown_labels"]:
        skipped = ", ".join(f"{k} ×{n}" for k, n in result["unknown_labels"].items())
        lines.append(f"skipped, not a class of the ground truth: {skipped}")
    if result.get("skipped_detections"):
        skipped = ", ".join(f"{k} ×{n}" for k, n in result["skipped_detections"].items())
        lines.append(f"skipped, invalid (--lenient): {skipped}")
    lines += ["", f"{'tIoU':<11} {'mAP(%)':>6}"]
    lines += [f"{t:<11.2f} {m * 100:6.2f}" for t, m in zip(tious, result["mAP"], strict=True)]
    default = list(DEFAULT_TIOUS[args.protocol]) == tious
    span = f"{min(tious):.2f}-{max(tious):.2f}"
    lines.append(f"{'avg':<11} {result['average_mAP'] * 100:6.2f}  (the {len(tious)} thresholds"
                 f" {span}{', the default' if default else ''})")
    for name, value in result.get("averages", {}).items():
        lines.append(f"{'avg ' + name:<11} {value * 100:6.2f}")
    width = max([5, *(len(c) for c in result["per_class"])])
    lines += ["", "AP(%) per class", f"{'class':<{width}}  "
              + " ".join(f"{t:>6.2f}" for t in tious)]
    for label, aps in result["per_class"].items():
        lines.append(f"{label:<{width}}  " + " ".join(f"{a * 100:6.2f}" for a in aps))
    missing = result.get("classes_without_ground_truth") or {}
    if missing:
        lines.append("no ground truth in the subset (left out of the mean): "
                     + ", ".join(f"{c} ({n} detections)" for c, n in missing.items()))
    if "classification" in result:
        lines.append(f"\nvideo-level classification mAP(%): "
                     f"{result['classification']['mAP'] * 100:6.2f}")
    print("\n".join(lines))


def cmd_report(args: argparse.Namespace) -> None:
    from wtal.report import make_report
    from wtalio import read_json

    run = Path(args.run)
    result = read_json(run / "map.json")
    manifest = make_report(
        model_path=run / "model.pt", train_log_path=run / "train.json",
        detections_path=run / "detections.json", map_path=run / "map.json", gt_path=args.gt,
        feature_paths=args.features, out_dir=args.out or run / "report",
        subset=args.subset or result.get("subset", "test"), videos=args.videos,
        n_videos=args.n_videos, pr_tiou=args.pr_tiou, device=args.device,
        threads=args.threads)
    out = Path(args.out or run / "report")
    for name in manifest["figures"]:
        print(out / name)


def cmd_summary(args: argparse.Namespace) -> None:
    from wtal.report import write_summary

    paths = args.maps or sorted(str(p) for p in Path(args.results).glob("*/*/map.json"))
    records = write_summary(paths, args.md, args.csv)
    print(Path(args.md).read_text())
    print(f"{len(paths)} map.json file(s), {len(records)} rows → {args.md}, {args.csv}")


def cmd_detect(args: argparse.Namespace) -> None:
    from wtal.detect import detect, detection_table

    result = detect(args.video, args.model, out=args.out, figure=args.figure,
                    work_dir=args.work_dir, features_sidecar=args.features_sidecar,
                    overrides=_nested(_key_values(args.set)), flow_backend=args.flow_backend,
                    device=args.device, threads=args.threads)
    print(detection_table(result, top=args.top))
    for what, path in (("detections", args.out), ("timeline", args.figure)):
        if path:
            print(f"{what}: {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wtal", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth-demo", help="generate the synthetic demo dataset")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-validation", type=int, default=16)
    p.add_argument("--n-test", type=int, default=8)
    p.set_defaults(func=cmd_synth_demo)

    p = sub.add_parser("index", help="index a dataset (thumos14, activitynet or features format)")
    p.add_argument("--dataset-config", required=True, help="a pipeline/config/datasets/*.yaml")
    p.add_argument("--root", help="override the config's root folder")
    p.add_argument("--index", required=True, help="index.json to write")
    p.add_argument("--gt", required=True, help="gt.json to write")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("decode", help="probe a video and plan its resampling")
    p.add_argument("video")
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--min-frames", type=int, default=1,
                   help="fewest output frames accepted (the workflow passes one snippet's)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("flow", help="TV-L1 flow of a decoded video")
    p.add_argument("plan")
    p.add_argument("--out", required=True)
    p.add_argument("--short-side", type=int, default=256)
    p.add_argument("--bound", type=float, default=20.0)
    p.add_argument("--codec", choices=["jpg", "png"], default="jpg")
    p.add_argument("--param", nargs="*", default=[], help="TV-L1 parameters as KEY=VALUE")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--backend", choices=["opencv", "torch", "auto"], default="opencv",
                   help="TV-L1 implementation (as flow.backend in the config)")
    p.add_argument("--device", default=None,
                   help="where the torch backend runs: auto, cpu, cuda, cuda:N (as the config)")
    p.add_argument("--batch-pairs", type=int, default=None,
                   help="torch backend: frame pairs solved at once")
    p.add_argument("--memory-budget-mb", type=float, default=None,
                   help="torch backend: choose batch pairs to fit this memory (MB)")
    p.set_defaults(func=cmd_flow)

    p = sub.add_parser("features", help="snippet features of a decoded video (any backbone)")
    p.add_argument("plan")
    p.add_argument("flow", help="the flow cache (.zip), or none for an RGB-only backbone")
    p.add_argument("--out", required=True)
    p.add_argument("--extractor", default="i3d",
                   choices=["i3d", "i3d_r50", "untrimmednet", "tsrnet_frames"])
    p.add_argument("--snippet-length", type=int, default=16)
    p.add_argument("--snippet-stride", type=int, default=16)
    p.add_argument("--short-side", type=int, default=256)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--ten-crop", action="store_true", help="mean of ten crops' features")
    p.add_argument("--every-nth", type=int, default=1, help="3D backbones: frame step")
    p.add_argument("--flow-stack", type=int, default=5, help="2D backbones: stacked flows")
    p.add_argument("--resnet-depth", type=int, choices=[50, 101], default=101)
    p.add_argument("--rgb-weights", default="none")
    p.add_argument("--rgb-sha256", default=None)
    p.add_argument("--flow-weights", default="none")
    p.add_argument("--flow-sha256", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser(
        "features-compare",
        help="per-video cosine similarity and scale of two feature sets",
        description="Compare feature set B against A (two .npy files, or two folders of "
                    "<video>.npy matched by name): per video and stream, the mean and worst "
                    "cosine similarity of corresponding snippets, the median norm ratio |b|/|a| "
                    "and the relative error, then a summary. Use it to check your extraction "
                    "against released features before training.",
    )
    p.add_argument("a", help="reference features (file or folder)")
    p.add_argument("b", help="features to check (file or folder)")
    p.add_argument("--json", default=None, help="also write the full comparison here")
    p.set_defaults(func=cmd_features_compare)

    p = sub.add_parser("import-features",
                       help="your own features of an indexed features dataset → .npy + sidecar")
    p.add_argument("--index", required=True, help="index.json of a format: features dataset")
    p.add_argument("--out-dir", required=True, help="folder of the <video>.npy files to write")
    p.add_argument("--videos", nargs="*", help="videos to import (default: all)")
    p.add_argument("--split", choices=["train", "test", "trimmed"],
                   help="import the videos of this split of the index (the workflow imports "
                        "the trimmed clips this way, in one job)")
    p.add_argument("--unpacked", help="folder of the unpacked W-TALC joint file")
    p.add_argument("--unpack-joint", nargs=2, metavar=("JOINT_NPY", "ANNOTATION_DIR"),
                   help="first unpack a W-TALC *-JOINTFeatures.npy into --unpacked")
    p.set_defaults(func=cmd_import_features)

    for name, func in (("train", cmd_train), ("infer", cmd_infer)):
        p = sub.add_parser(name, help=f"{name} a localizer")
        p.add_argument("--features", nargs="+", required=True, help="feature .npy files")
        p.add_argument("--config", help="a pipeline/config/models/*.yaml")
        p.add_argument("--dataset", help="apply the config's block for this dataset")
        p.add_argument("--configfile", nargs="+", default=[],
                       help="workflow configs whose models: entries for this model apply, and "
                       "whose datasets: entry gives --dataset's model_settings (as snakemake "
                       "--configfile does; later files win)")
        p.add_argument("--set", nargs="*", default=[],
                       help="settings as KEY=VALUE (model.KEY for the model's own infer knobs)")
        p.add_argument("--device", default="auto")
        p.add_argument("--threads", type=int, default=None)
        p.set_defaults(func=func)
        if name == "train":
            p.add_argument("--index", required=True)
            p.add_argument("--model", required=True, help="model name, e.g. cas_baseline")
            p.add_argument("--out-model", required=True)
            p.add_argument("--out-log", required=True)
            p.add_argument("--trimmed", nargs="*", default=[],
                           help="feature files of the trimmed clips (knowledge transfer)")
        else:
            p.add_argument("--model", required=True, help="model.pt written by train")
            p.add_argument("--out", required=True, help="detections.json to write")
            p.add_argument("--cas-dir", required=True, help="folder for per-video CAS .npy")

    p = sub.add_parser("ablate", help="train, infer and evaluate a model's ablation variants",
                       description="Every variant of the model config's 'ablations:' block "
                       "(the paper's ablation table) → a markdown table and a JSON file.")
    p.add_argument("--index", required=True)
    p.add_argument("--gt", required=True, help="gt.json of the dataset")
    p.add_argument("--train", nargs="+", required=True, help="training videos' features")
    p.add_argument("--test", nargs="+", required=True, help="test videos' features")
    p.add_argument("--trimmed", nargs="*", default=[], help="trimmed clips' features")
    p.add_argument("--model", required=True, help="model name, e.g. kt_mgfn")
    p.add_argument("--config", required=True, help="a pipeline/config/models/*.yaml")
    p.add_argument("--dataset", help="apply the config's block for this dataset")
    p.add_argument("--subset", default="test", help="ground-truth subset to evaluate")
    p.add_argument("--protocol", default="anet", choices=["anet", "thumos14"])
    p.add_argument("--tiou", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    p.add_argument("--configfile", nargs="+", default=[],
                   help="workflow configs whose models: entries for this model apply, and whose "
                   "datasets: entry gives --dataset's model_settings (later files win)")
    p.add_argument("--variants", nargs="+", metavar="NAME",
                   help="run only these variants of the table (in the table's order), e.g. to "
                   "spread a long table over several machines")
    p.add_argument("--out", required=True, help="ablation.md to write (and .json beside it)")
    p.add_argument("--keep-models", metavar="DIR",
                   help="also keep each variant's model.pt, train.json, detections.json and "
                   "cas/ in DIR/<variant>/, to diagnose a row (by default only the table stays)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("cross-validate", help="choose a setting on the training videos",
                       description="k-fold cross-validation on the TRAINING videos only: each "
                       "candidate's settings trained on the other folds, scored on the held-out "
                       "fold's own annotations (mean ActivityNet mAP over --tiou); prints every "
                       "candidate's mean, the best marked *.")
    p.add_argument("--index", required=True)
    p.add_argument("--gt", required=True, help="gt.json of the dataset")
    p.add_argument("--train", nargs="+", required=True, help="training videos' features")
    p.add_argument("--trimmed", nargs="*", default=[], help="trimmed clips' features")
    p.add_argument("--model", required=True, help="model name, e.g. assg")
    p.add_argument("--config", required=True, help="a pipeline/config/models/*.yaml")
    p.add_argument("--dataset", help="apply the config's block for this dataset")
    p.add_argument("--candidates", required=True,
                   help='JSON (or a .json file): name → {args, train, infer} override, e.g. '
                   '\'{"0.2": {"infer": {"cas_thresholds": [0.2]}}, "0.5": {}}\'')
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--tiou", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5])
    p.add_argument("--workdir", required=True, help="folder for every run's files")
    p.add_argument("--out", help="JSON of the result (with the winning override)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_cross_validate)

    p = sub.add_parser("eval", help="evaluate detections against ground truth",
                       description="Detection mAP with the exact semantics of the official "
                       "ActivityNet code (anet) or THUMOS14 MATLAB kit (thumos14).")
    p.add_argument("--ground-truth", required=True,
                   help="gt.json, or the official THUMOS14 annotation folder "
                   "(<Class>_<subset>.txt, Ambiguous_<subset>.txt, detclasslist.txt)")
    p.add_argument("--predictions", required=True,
                   help="detections.json, or an official THUMOS14 detection text file "
                   "('video t1 t2 classid conf' lines)")
    p.add_argument("--protocol", default="anet", choices=["anet", "thumos14"])
    p.add_argument("--subset", default="test",
                   help="ground-truth subset (for a folder: the file suffix, e.g. test, val)")
    p.add_argument("--tiou", type=float, nargs="+", default=None,
                   help="thresholds (default: thumos14 0.1:0.1:0.7, anet 0.5:0.05:0.95)")
    p.add_argument("--class-list", default=None,
                   help="detclasslist.txt giving the class ids of a text predictions file "
                   "(default: the one beside it, else the ground truth's)")
    p.add_argument("--lenient", action="store_true",
                   help="skip and count invalid detections (labels that are not classes of "
                   "the ground truth, NaN or infinite scores or times, negative, empty or "
                   "inverted segments) instead of stopping with an error naming the file")
    p.add_argument("--out", help="JSON to write (tiou, mAP, average_mAP, per_class, ...)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("report", help="figures of a trained model: timelines, AP, PR, loss",
                       description="Write the report figures of results/<dataset>/<model>/ "
                       "(model.pt, train.json, detections.json, map.json).")
    p.add_argument("--run", required=True, help="folder with model.pt, train.json, "
                   "detections.json and map.json")
    p.add_argument("--gt", required=True, help="gt.json of the dataset")
    p.add_argument("--features", nargs="+", required=True, help="test feature .npy files")
    p.add_argument("--out", help="report folder (default: RUN/report)")
    p.add_argument("--subset", help="evaluated subset (default: map.json's)")
    p.add_argument("--videos", nargs="*", default=None, help="videos to draw")
    p.add_argument("--n-videos", type=int, default=3, help="videos to draw without --videos")
    p.add_argument("--pr-tiou", type=float, default=0.5, help="tIoU of the PR curves")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("summary", help="compare every map.json with the papers' numbers")
    p.add_argument("maps", nargs="*", help="map.json files (default: RESULTS/*/*/map.json)")
    p.add_argument("--results", default="results", help="results folder to search")
    p.add_argument("--md", default="results/summary.md")
    p.add_argument("--csv", default="results/summary.csv")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("detect", help="detect actions in a new raw video",
                       description="decode → TV-L1 flow → features (the model's backbone) "
                       "→ model → post-processing on one video, with the settings the model "
                       "was trained with (recorded in model.pt).")
    p.add_argument("video")
    p.add_argument("--model", required=True, help="model.pt written by train")
    p.add_argument("--out", help="detections JSON to write (ActivityNet format)")
    p.add_argument("--figure", help="timeline PNG to write")
    p.add_argument("--work-dir", help="keep the frame plan, flow and features here")
    p.add_argument("--features-sidecar", help="a training feature sidecar .json, for a "
                   "model.pt without recorded feature settings")
    p.add_argument("--flow-backend", choices=["opencv", "torch", "auto"], default=None,
                   help="TV-L1 implementation (default: the one the features were made with)")
    p.add_argument("--set", nargs="*", default=[],
                   help="post-processing settings as KEY=VALUE (default: the model's infer "
                   "settings from detections.json beside it)")
    p.add_argument("--top", type=int, default=20, help="detections printed")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_detect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wtal`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"wtal {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
