"""Speed of the evaluation protocols and of NMS / Soft-NMS, against straightforward loops.

Evaluation: 200 videos × 20 classes × 200 detections per class and video (800,000
detections), ground truth of 0–4 segments per class and video, a few Ambiguous segments.
Each protocol is timed vectorised (``wtal.evaluate``, from the in-memory JSON dicts, parsing
included) and as a straightforward loop (one prediction, or one GT segment, at a time, in
plain Python), and the two results are checked to be equal.

Post-processing: 10,000 proposals, as one group and as 20 classes × 500, through
``wtal.postprocess.batched_nms`` (Gaussian Soft-NMS of KT-MGFN Eq. 7, linear, hard) and
through a straightforward loop that makes one selection per step.

Run from the repository root::

    python benchmarks/eval_speed.py            # full size (the loops take minutes)
    python benchmarks/eval_speed.py --scale 0.1 --skip-loops
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from wtal.evaluate import (
    THUMOS14_RECALL_POINTS,
    anet_detection_map,
    interpolated_prec_rec,
    raw_from_json,
    segment_iou,
    thumos14_detection_map,
)
from wtal.postprocess import batched_nms

TIOUS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]


# ---------------------------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------------------------


def make_data(n_videos: int, n_classes: int, per_group: int, seed: int = 0):
    """gt.json-like and detections.json-like dicts (ambiguous segments included)."""
    rng = np.random.default_rng(seed)
    classes = [f"class{c:02d}" for c in range(n_classes)]
    database: dict[str, Any] = {}
    ambiguous: dict[str, list[list[float]]] = {}
    results: dict[str, list[dict[str, Any]]] = {}
    for v in range(n_videos):
        vid = f"video_test_{v:07d}"
        duration = 200.0
        anns = []
        for c in range(n_classes):
            for _ in range(int(rng.integers(0, 5))):
                s = float(rng.uniform(0, duration - 10))
                anns.append({"segment": [round(s, 1), round(s + float(rng.uniform(1, 10)), 1)],
                             "label": classes[c]})
        database[vid] = {"subset": "test", "duration": duration, "annotations": anns}
        ambiguous[vid] = [[round(s, 1), round(s + 2.0, 1)]
                          for s in rng.uniform(0, duration - 2, size=int(rng.integers(0, 3)))]
        dets = []
        for c in range(n_classes):
            own = [a["segment"] for a in anns if a["label"] == classes[c]]
            for _ in range(per_group):
                if own and rng.random() < 0.5:  # near a GT segment
                    s, e = own[int(rng.integers(len(own)))]
                    jitter = rng.normal(0, 1.0, size=2)
                    seg = [s + float(jitter[0]), e + float(jitter[1])]
                else:
                    s = float(rng.uniform(0, duration - 10))
                    seg = [s, s + float(rng.uniform(0.5, 15))]
                dets.append({"label": classes[c], "score": round(float(rng.random()), 3),
                             "segment": [round(seg[0], 2), round(seg[1], 2)]})
        results[vid] = dets
    gt = {"taxonomy": [{"nodeName": n, "nodeId": i} for i, n in enumerate(classes)],
          "database": database, "ambiguous": ambiguous}
    return gt, {"results": results}


# ---------------------------------------------------------------------------------------------
# Straightforward loops (same semantics, one prediction or one GT segment at a time)
# ---------------------------------------------------------------------------------------------


def loop_anet(gt: dict, sub: dict, subset: str, tious: list[float]) -> np.ndarray:
    """ActivityNet protocol: per class, per prediction in score order, per threshold."""
    labels: dict[str, int] = {}
    gt_rows: list[tuple[str, int, float, float]] = []
    for vid, entry in gt["database"].items():
        if entry["subset"] != subset:
            continue
        for ann in entry["annotations"]:
            c = labels.setdefault(ann["label"], len(labels))
            gt_rows.append((vid, c, float(ann["segment"][0]), float(ann["segment"][1])))
    preds = [(vid, labels[d["label"]], float(d["segment"][0]), float(d["segment"][1]),
              d["score"]) for vid, dets in sub["results"].items() for d in dets
             if d["label"] in labels]
    ap = np.zeros((len(labels), len(tious)))
    for c in range(len(labels)):
        gts = [r for r in gt_rows if r[1] == c]
        by_video: dict[str, list[int]] = {}
        for i, r in enumerate(gts):
            by_video.setdefault(r[0], []).append(i)
        mine = [p for p in preds if p[1] == c]
        if not mine:
            continue
        scores = np.array([p[4] for p in mine])
        order = scores.argsort()[::-1]
        lock = np.full((len(tious), len(gts)), False)
        tp = np.zeros((len(tious), len(mine)))
        for rank, p_idx in enumerate(order):
            vid, _, s, e, _ = mine[p_idx]
            rows = by_video.get(vid)
            if not rows:
                continue
            segs = np.array([[gts[r][2], gts[r][3]] for r in rows])
            tiou = segment_iou(np.array([s, e]), segs)
            pref = tiou.argsort()[::-1]
            for t, thr in enumerate(tious):
                for j in pref:
                    if tiou[j] < thr:
                        break
                    if lock[t, rows[j]]:
                        continue
                    lock[t, rows[j]] = True
                    tp[t, rank] = 1
                    break
        tp_c = np.cumsum(tp, axis=1)
        fp_c = np.cumsum(1 - tp, axis=1)
        for t in range(len(tious)):
            ap[c, t] = interpolated_prec_rec(tp_c[t] / (tp_c[t] + fp_c[t]), tp_c[t] / len(gts))
    return ap.mean(axis=0)


def kit_overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """intervaloverlapvalseconds for one pair: intersection over hull span, intervals ordered."""
    a0, a1 = min(a), max(a)
    b0, b1 = min(b), max(b)
    inter = min(a1, b1) - max(a0, b0)
    return inter / (max(a1, b1) - min(a0, b0)) if inter > 0 else 0.0


def loop_thumos(gt: dict, sub: dict, subset: str, tious: list[float]) -> np.ndarray:
    """THUMOS14 kit: per class and video, per GT segment, scanning the free detections."""
    classes = [n["nodeName"] for n in gt["taxonomy"]]
    videos = [v for v, e in gt["database"].items() if e["subset"] == subset]
    gt_by: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for vid in videos:
        for ann in gt["database"][vid]["annotations"]:
            gt_by.setdefault((ann["label"], vid), []).append(tuple(ann["segment"]))
    amb = {v: gt["ambiguous"].get(v, []) for v in videos}
    det_by: dict[tuple[str, str], list[tuple[float, tuple[float, float]]]] = {}
    for vid, dets in sub["results"].items():
        for d in dets:
            det_by.setdefault((d["label"], vid), []).append((d["score"], tuple(d["segment"])))
    all_videos = sorted(set(videos) | set(sub["results"]))
    m_ap = np.zeros(len(tious))
    n_with_gt = 0
    for cls in classes:
        npos = sum(len(gt_by.get((cls, v), [])) for v in videos)
        if npos == 0:
            continue
        n_with_gt += 1
        for t, thr in enumerate(tious):
            tpconf: list[float] = []
            fpconf: list[float] = []
            for vid in all_videos:
                dets = sorted(det_by.get((cls, vid), []), key=lambda d: -d[0])
                if not dets:
                    continue
                free = [True] * len(dets)
                for g in gt_by.get((cls, vid), []):
                    best, best_ov = -1, -1.0
                    for i, (_, seg) in enumerate(dets):
                        if free[i]:
                            ov = kit_overlap(g, seg)
                            if ov > best_ov:
                                best, best_ov = i, ov
                    if best >= 0 and best_ov > thr:
                        free[best] = False
                for i, (conf, seg) in enumerate(dets):
                    if not free[i]:
                        tpconf.append(conf)
                    elif not any(kit_overlap(a, seg) > 0 for a in amb.get(vid, [])):
                        fpconf.append(conf)
            pooled = sorted([(c, 1) for c in tpconf] + [(c, 2) for c in fpconf],
                            key=lambda x: -x[0])
            flags = np.array([f for _, f in pooled])
            tp = np.cumsum(flags == 1)
            fp = np.cumsum(flags == 2)
            rec, prec = tp / npos, tp / np.maximum(tp + fp, 1)
            ap = 0.0
            for r in THUMOS14_RECALL_POINTS:
                p = prec[rec >= r]
                ap = ap + (float(p.max()) if p.size else 0.0) / len(THUMOS14_RECALL_POINTS)
            m_ap[t] += ap
    return m_ap / n_with_gt


def loop_nms(segs: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, method: str,
             theta: float = 0.5, eps: float = 0.75) -> int:
    """One selection per step, each step vectorised over the group's remaining segments."""
    n_kept = 0
    for g in torch.unique(groups).tolist():
        idx = (groups == g).nonzero()[:, 0]
        s, sc = segs[idx].to(torch.float64), scores[idx].to(torch.float64).clone()
        remaining = torch.ones(len(idx), dtype=torch.bool)
        while bool(remaining.any()):
            best = int(torch.argmax(torch.where(remaining, sc, -math.inf)))
            remaining[best] = False
            n_kept += 1
            inter = (torch.minimum(s[best, 1], s[:, 1]) - torch.maximum(s[best, 0], s[:, 0]))
            inter = inter.clamp(min=0)
            union = (s[best, 1] - s[best, 0]) + (s[:, 1] - s[:, 0]) - inter
            iou = torch.where(union > 0, inter / torch.where(union > 0, union, 1.0), 0.0)
            hit = remaining & (iou > theta)
            if method == "hard":
                remaining &= ~hit
            elif method == "gaussian":
                sc = torch.where(hit, sc * torch.exp(-(iou * iou) / eps), sc)
            else:
                sc = torch.where(hit, sc * (1 - iou), sc)
    return n_kept


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the 200 videos")
    parser.add_argument("--skip-loops", action="store_true", help="time the vectorised only")
    parser.add_argument("--repeat", type=int, default=3, help="best of N (vectorised)")
    parser.add_argument("--nms-loop-threads", type=int, default=1,
                        help="torch threads for the NMS loop (1: no intra-op sync costs)")
    args = parser.parse_args()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; torch threads "
          f"{torch.get_num_threads()}; numpy {np.__version__}, torch {torch.__version__}")

    n_videos = max(1, round(200 * args.scale))
    gt, sub = make_data(n_videos, 20, 200)
    n_det = sum(len(d) for d in sub["results"].values())
    n_gt = sum(len(e["annotations"]) for e in gt["database"].values())
    print(f"\nevaluation: {n_videos} videos × 20 classes × 200 detections = {n_det} detections, "
          f"{n_gt} GT segments, thresholds {TIOUS}")
    t_read, _ = timed(lambda: raw_from_json(sub, "benchmark"), args.repeat)
    print(f"  reading and checking the detections dict (part of each vectorised time): "
          f"{t_read:.2f} s")
    for name, vec, loop in (
        ("anet", lambda: anet_detection_map(gt, sub, subset="test", tious=TIOUS), loop_anet),
        ("thumos14", lambda: thumos14_detection_map(gt, sub, subset="test", tious=TIOUS),
         loop_thumos),
    ):
        t_vec, res = timed(vec, args.repeat)
        line = f"  {name:<9} vectorised {t_vec:8.2f} s"
        if not args.skip_loops:
            t_loop, m_ap = timed(lambda loop=loop: loop(gt, sub, "test", TIOUS))
            assert np.allclose(m_ap, res.mAP, rtol=0, atol=1e-9), (m_ap, res.mAP)
            line += f"   loop {t_loop:8.2f} s   ratio {t_loop / t_vec:6.1f}×   (same mAP)"
        print(line)

    print("\npost-processing: 10,000 proposals, θ = 0.5, ε = 0.75")
    g = torch.Generator().manual_seed(0)
    n = 10_000
    start = torch.rand(n, generator=g, dtype=torch.float64) * 1000
    segs = torch.stack([start, start + 1 + torch.rand(n, generator=g, dtype=torch.float64) * 30],
                       1)
    scores = torch.rand(n, generator=g, dtype=torch.float64)
    layouts = {"1 group": torch.zeros(n, dtype=torch.long),
               "20 classes × 500": torch.arange(n) % 20}
    for layout, groups in layouts.items():
        for method in ("gaussian", "linear", "hard"):
            t_vec, (keep, _) = timed(lambda groups=groups, method=method: batched_nms(
                segs, scores, groups, method=method, iou_threshold=0.5, epsilon=0.75),
                args.repeat)
            line = f"  {layout:<17} {method:<8} vectorised {t_vec:7.2f} s ({len(keep)} kept)"
            if not args.skip_loops:
                previous = torch.get_num_threads()
                torch.set_num_threads(args.nms_loop_threads)
                try:
                    t_loop, kept = timed(lambda groups=groups, method=method: loop_nms(
                        segs, scores, groups, method))
                finally:
                    torch.set_num_threads(previous)
                assert kept == len(keep)
                line += f"   loop {t_loop:7.2f} s   ratio {t_loop / t_vec:6.1f}×"
            print(line)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
