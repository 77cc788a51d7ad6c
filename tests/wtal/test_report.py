"""Report figures, per-module score sequences, PR curves, the summary table and progress bars."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.collections import PolyCollection

from extractors.grid import SnippetGrid
from wtal.cli import main
from wtal.evaluate import (
    NO_TRIMMED,
    anet_detection_map,
    evaluate,
    thumos14_detection_map,
    training_record,
)
from wtal.infer import InferSettings, infer, load_model, predict_video
from wtal.models import build_model
from wtal.papers import PUBLISHED, UNAVAILABLE, published
from wtal.progress import is_terminal, progress_bar
from wtal.report import (
    PRCurve,
    Segment,
    ap_bars_figure,
    choose_videos,
    loss_figure,
    make_report,
    named_scores,
    pr_figure,
    precision_recall_anet,
    precision_recall_thumos14,
    summary_tables,
    timeline_figure,
    write_summary,
)
from wtal.train import TrainSettings, train
from wtalio import read_json, save_npy, write_json

CLASSES = ["A", "B", "C"]
FPS, LENGTH = 25.0, 16
SNIPPET_S = LENGTH / FPS
PNG = b"\x89PNG\r\n\x1a\n"


def bar_spans(ax) -> list[tuple[float, float]]:
    """(start, end) of every broken_barh rectangle drawn on ``ax``."""
    spans = []
    for coll in ax.collections:
        if isinstance(coll, PolyCollection):
            for path in coll.get_paths():
                xs = path.vertices[:, 0]
                spans.append((float(xs.min()), float(xs.max())))
    return sorted(spans)


# ---- timeline ---------------------------------------------------------------------------------


def test_timeline_draws_the_given_sequences_ground_truth_and_detections() -> None:
    times = np.arange(10) * 0.5 + 0.25
    cas = np.random.default_rng(0).random((10, 3)).astype(np.float32)
    background = np.linspace(1.0, 0.0, 10)
    gt = [Segment("B", 1.0, 2.5), Segment("C", 3.0, 4.0)]
    dets = [Segment("B", 1.2, 2.4, 0.9), Segment("C", 2.9, 4.1, 0.5)]
    fig = timeline_figure(times=times, classes=CLASSES,
                          sequences={"cas": cas, "background": background},
                          ground_truth=gt, detections=dets, duration=5.0, title="v")
    axes = fig.axes
    assert len(axes) == 4  # ground truth, cas, background, detections
    # one line per shown class (B and C: in the ground truth or the detections), their data
    lines = axes[1].get_lines()
    assert [line.get_label() for line in lines] == ["B", "C"]
    np.testing.assert_array_equal(lines[0].get_xdata(), times)
    np.testing.assert_array_equal(lines[0].get_ydata(), cas[:, 1])
    np.testing.assert_array_equal(lines[1].get_ydata(), cas[:, 2])
    (bg,) = axes[2].get_lines()
    np.testing.assert_array_equal(bg.get_ydata(), background)
    assert bar_spans(axes[0]) == pytest.approx([(1.0, 2.5), (3.0, 4.0)])
    assert bar_spans(axes[3]) == pytest.approx([(1.2, 2.4), (2.9, 4.1)])
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["B", "C"]
    assert axes[-1].get_xlim() == pytest.approx((0.0, 5.0))


def test_timeline_shows_the_top_class_when_nothing_is_detected(tmp_path: Path) -> None:
    cas = np.zeros((6, 3), dtype=np.float32)
    cas[2:4, 2] = 0.9
    fig = timeline_figure(times=np.arange(6.0), classes=CLASSES, sequences={"cas": cas})
    assert [line.get_label() for line in fig.axes[1].get_lines()] == ["C"]
    # a new video has no ground truth: no axis for it
    fig = timeline_figure(times=np.arange(6.0), classes=CLASSES, sequences={"cas": cas},
                          ground_truth=None)
    assert len(fig.axes) == 2
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_ydata(), cas[:, 2])
    from wtal.report import save_figure

    save_figure(fig, tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:8] == PNG


# ---- AP bars, PR curves, loss -----------------------------------------------------------------


def test_ap_bars_show_mean_ap_per_class_and_ap_at_half_for_each_protocol() -> None:
    anet = {"tiou": [0.3, 0.5, 0.7], "average_mAP": 0.5,
            "per_class": {"C": [0.9, 0.6, 0.3], "A": [1.0, 1.0, 0.4]}}
    th = {"tiou": [0.3, 0.5, 0.7], "average_mAP": 0.4,
          "per_class": {"A": [0.5, 0.2, 0.2], "C": [0.1, 0.1, 0.1]}}
    fig = ap_bars_figure({"protocols": {"anet": anet, "thumos14": th}}, classes=CLASSES)
    assert len(fig.axes) == 2
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == pytest.approx([0.8, 0.6])  # class order A, C (the model's order)
    (mark,) = fig.axes[0].get_lines()
    np.testing.assert_allclose(mark.get_ydata(), [1.0, 0.6])
    assert [p.get_height() for p in fig.axes[1].patches] == pytest.approx([0.3, 0.1])
    assert "THUMOS14" in fig.axes[1].get_title()


def test_pr_figure_plots_recall_against_precision() -> None:
    curve = PRCurve(np.array([1.0, 0.5, 0.67]), np.array([0.5, 0.5, 1.0]), 0.8, 2)
    fig = pr_figure({"anet": {"A": curve}, "thumos14": {"A": curve, "B": curve}}, tiou=0.5)
    assert len(fig.axes) == 2
    (line,) = fig.axes[0].get_lines()
    np.testing.assert_array_equal(line.get_xdata(), curve.recall)
    np.testing.assert_array_equal(line.get_ydata(), curve.precision)
    assert len(fig.axes[1].get_lines()) == 2


def test_loss_figure_plots_the_loss_its_parts_and_the_learning_rate() -> None:
    log = {"model": "m", "dataset": "d", "n_videos": 3, "loss": [3.0, 2.0, 1.5],
           "loss_parts": {"cls": [2.0, 1.5, 1.0], "oic": [1.0, 0.5, 0.5]},
           "lr": [1e-3, 1e-3, 1e-4]}
    fig = loss_figure(log)
    assert len(fig.axes) == 2
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["loss", "cls", "oic"]
    np.testing.assert_array_equal(lines[0].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines[0].get_ydata(), log["loss"])
    np.testing.assert_array_equal(lines[2].get_ydata(), log["loss_parts"]["oic"])
    np.testing.assert_array_equal(fig.axes[1].get_lines()[0].get_ydata(), log["lr"])


def random_case(rng: np.random.Generator) -> tuple[dict, dict]:
    """A ground truth with Ambiguous segments and predictions with tied scores."""
    db, amb = {}, {}
    for v in range(5):
        anns = []
        for _ in range(int(rng.integers(0, 4))):
            s = float(rng.integers(0, 40))
            anns.append({"label": CLASSES[int(rng.integers(0, 3))],
                         "segment": [s, s + float(rng.integers(1, 8))]})
        db[f"v{v}"] = {"subset": "test", "annotations": anns}
        if rng.random() < 0.4:
            s = float(rng.integers(0, 40))
            amb[f"v{v}"] = [[s, s + 3.0]]
    db["v0"]["annotations"].append({"label": "A", "segment": [41.0, 45.0]})
    db["train"] = {"subset": "validation", "annotations": [{"label": "A", "segment": [1, 2]}]}
    results = {}
    for vid in [*db, "not_in_gt"]:
        results[vid] = []
        for _ in range(int(rng.integers(0, 8))):
            s = float(rng.integers(0, 40))
            results[vid].append({"label": CLASSES[int(rng.integers(0, 3))],
                                 "segment": [s, s + float(rng.integers(1, 8))],
                                 "score": float(rng.integers(0, 5)) / 4})
    taxonomy = [{"nodeId": i, "nodeName": c} for i, c in enumerate(CLASSES)]
    return {"database": db, "ambiguous": amb, "taxonomy": taxonomy}, {"results": results}


@pytest.mark.parametrize("seed", range(8))
def test_pr_curves_give_the_evaluators_per_class_ap(seed: int, caplog) -> None:
    caplog.set_level(logging.ERROR)
    gt, sub = random_case(np.random.default_rng(seed))
    for tiou in (0.1, 0.3, 0.5):
        ref = anet_detection_map(gt, sub, subset="test", tious=[tiou])
        curves = precision_recall_anet(gt, sub, subset="test", tiou=tiou)
        assert list(curves) == list(ref.labels)
        for i, label in enumerate(ref.labels):
            assert curves[label].ap == pytest.approx(ref.ap[i, 0], abs=1e-12)
            assert np.all(np.diff(curves[label].recall) >= 0)
        ref = thumos14_detection_map(gt, sub, subset="test", tious=[tiou])
        curves = precision_recall_thumos14(gt, sub, subset="test", tiou=tiou)
        assert list(curves) == list(ref.labels)
        for i, label in enumerate(ref.labels):
            assert curves[label].ap == pytest.approx(ref.ap[i, 0], abs=1e-12)


def test_pr_curve_of_a_hand_case() -> None:
    gt = {"database": {"v": {"subset": "test", "annotations": [
        {"label": "A", "segment": [0.0, 10.0]}, {"label": "A", "segment": [20.0, 30.0]}]}}}
    sub = {"results": {"v": [{"label": "A", "segment": [0.0, 10.0], "score": 0.9},
                             {"label": "A", "segment": [50.0, 60.0], "score": 0.8},
                             {"label": "A", "segment": [21.0, 30.0], "score": 0.7}]}}
    (curve,) = precision_recall_anet(gt, sub, subset="test", tiou=0.5).values()
    np.testing.assert_allclose(curve.precision, [1.0, 0.5, 2 / 3])
    np.testing.assert_allclose(curve.recall, [0.5, 0.5, 1.0])
    assert curve.ap == pytest.approx(0.5 + 0.5 * 2 / 3)


# ---- per-module score sequences ---------------------------------------------------------------


@pytest.mark.parametrize(("model", "args", "expected", "localised"), [
    ("cas_baseline", {}, {"cas", "background"}, "cas"),
    ("kt_mgfn", {"brm": True},
     {"simple_cas", "multi_dilated_cas", "mining_cas", "cascaded_cas", "erased"},
     "cascaded_cas"),
    ("kt_mgfn", {"mdcm": False, "ccm": False}, {"simple_cas", "multi_dilated_cas",
                                                "cascaded_cas"}, "cascaded_cas"),
    ("cpmn", {}, {"original_tcas", "mining_tcas", "cascaded_tcas", "attention",
                  "localisation", "erased"}, "localisation"),
    ("ecm", {}, {"cas", "action_weights", "background_weights"}, "cas"),
])
def test_models_expose_named_score_sequences(model, args, expected, localised) -> None:
    torch.manual_seed(0)
    net = build_model(model, in_dim=8, num_classes=3, hidden=8, **args).eval()
    ckpt = {"feature_norm": {"mean": torch.full((8,), 0.5), "std": torch.full((8,), 2.0)}}
    x = np.random.default_rng(1).normal(size=(21, 8)).astype(np.float32)
    seqs = named_scores(net, ckpt, x, torch.device("cpu"))
    assert set(seqs) == expected
    for name, arr in seqs.items():
        assert arr.shape in {(21,), (21, 3)}, name
        assert np.all((arr >= 0) & (arr <= 1)), name
    # the sequence the model localises with is the CAS the infer stage saves in cas/
    cas, _, _ = predict_video(net, ckpt, x, torch.device("cpu"))
    np.testing.assert_allclose(seqs[localised], cas, rtol=1e-5, atol=1e-6)
    if model == "kt_mgfn" and not args.get("mdcm", True):
        np.testing.assert_array_equal(seqs["simple_cas"], seqs["multi_dilated_cas"])


def test_score_sequences_read_a_sampled_test_video_as_the_infer_stage_does() -> None:
    """KT-MGFN trained on 7 sampled units reads a 40-snippet test video as 7 uniform units
    (test_indices); the report's sequences are that reading mapped back to the 40 snippets,
    the CAS the infer stage saves, and follow the detections' own test_sampling."""
    torch.manual_seed(0)
    net = build_model("kt_mgfn", in_dim=8, num_classes=3, hidden=8, brm=False).eval()
    ckpt = {"feature_norm": {"mean": torch.zeros(8), "std": torch.ones(8)},
            "train_settings": {"sampling": "sparse", "num_segments": 7}}
    x = np.random.default_rng(2).normal(size=(40, 8)).astype(np.float32)
    cas, _, _ = predict_video(net, ckpt, x, torch.device("cpu"))
    seqs = named_scores(net, ckpt, x, torch.device("cpu"))
    assert seqs["cascaded_cas"].shape == (40, 3)
    np.testing.assert_allclose(seqs["cascaded_cas"], cas, rtol=1e-5, atol=1e-6)
    native = type(net).InferOptions(test_sampling="native")
    every, _, _ = predict_video(net, ckpt, x, torch.device("cpu"), options=native)
    seqs = named_scores(net, ckpt, x, torch.device("cpu"), native)
    np.testing.assert_allclose(seqs["cascaded_cas"], every, rtol=1e-5, atol=1e-6)
    assert not np.allclose(every, cas, atol=1e-3)


def test_a_model_without_score_sequences_is_shown_through_its_cas() -> None:
    from wtal.models.base import Localizer

    class Plain(Localizer):
        def forward(self, x, mask=None):
            from wtal.models.cas_baseline import CASOutput

            cas = x[..., :2] * 3.0
            return CASOutput(cas=cas, video_logits=cas.mean(dim=1), mask=mask)

    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    seqs = named_scores(Plain(), {}, x, torch.device("cpu"))
    assert list(seqs) == ["cas"]
    np.testing.assert_allclose(seqs["cas"], 1 / (1 + np.exp(-3.0 * x[:, :2])), rtol=1e-5)


def test_choose_videos_prefers_annotated_test_videos() -> None:
    gt = {"database": {"t2": {"subset": "test", "annotations": [{"label": "A"}]},
                       "t1": {"subset": "test", "annotations": []},
                       "t3": {"subset": "test", "annotations": [{"label": "B"}]},
                       "v1": {"subset": "validation", "annotations": [{"label": "A"}]}}}
    have = ["t1", "t2", "t3", "v1"]
    assert choose_videos(gt, "test", have, n_videos=2) == ["t2", "t3"]
    assert choose_videos(gt, "test", have, n_videos=5) == ["t2", "t3", "t1"]
    assert choose_videos(gt, "test", have, videos=["t1"]) == ["t1"]
    with pytest.raises(ValueError, match="nope"):
        choose_videos(gt, "test", have, videos=["nope"])


# ---- the stage, end to end on planted features --------------------------------------------------


def make_features(root: Path, n: int, seed: int, prefix: str):
    rng = np.random.default_rng(seed)
    directions = np.random.default_rng(99).normal(size=(len(CLASSES), 16)) * 3.0
    paths, videos, gt = [], {}, {}
    for i in range(n):
        t = int(rng.integers(24, 32))
        x = rng.normal(size=(t, 16)).astype(np.float32)
        c = int(rng.integers(0, len(CLASSES)))
        start, length = int(rng.integers(2, 8)), int(rng.integers(5, 10))
        x[start : start + length] += directions[c]
        name = f"{prefix}_{i:02d}"
        grid = SnippetGrid(fps=FPS, n_frames=t * LENGTH, length=LENGTH, stride=LENGTH)
        save_npy(root / f"{name}.npy", x)
        write_json(root / f"{name}.json", {"shape": list(x.shape), "grid": grid.to_dict(),
                                           "extractor": "synthetic"})
        paths.append(root / f"{name}.npy")
        subset = "validation" if prefix == "tr" else "test"
        videos[name] = {"labels": [CLASSES[c]], "subset": subset,
                        "split": "train" if prefix == "tr" else "test"}
        gt[name] = {"subset": subset, "duration": t * SNIPPET_S, "annotations": [
            {"label": CLASSES[c], "segment": [start * SNIPPET_S, (start + length) * SNIPPET_S]}]}
    return paths, videos, gt


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("report_run")
    tr, tr_videos, tr_gt = make_features(root, 18, 1, "tr")
    te, te_videos, te_gt = make_features(root, 5, 2, "te")
    write_json(root / "index.json", {"dataset": "toy", "classes": CLASSES,
                                     "videos": {**tr_videos, **te_videos}})
    taxonomy = [{"nodeId": i, "nodeName": c} for i, c in enumerate(CLASSES)]
    write_json(root / "gt.json", {"database": {**tr_gt, **te_gt}, "taxonomy": taxonomy})
    out = root / "results" / "toy" / "kt_mgfn"
    train(root / "index.json", tr, out / "model.pt", out / "train.json", model="kt_mgfn",
          model_args={"hidden": 16, "brm": False, "ktm": False},
          settings=TrainSettings(epochs=25, batch_size=6, lr=3e-3, seed=0), device="cpu")
    infer(out / "model.pt", te, out / "detections.json", out / "cas",
          settings=InferSettings(), device="cpu")
    write_json(out / "map.json", evaluate(root / "gt.json", out / "detections.json",
                                          subset="test", tious=[0.1, 0.3, 0.5, 0.7],
                                          protocol="anet", protocols=["thumos14"],
                                          dataset="toy", model="kt_mgfn")
               # as the evaluate rule adds it: kt_mgfn declares trimmed: true, none were given
               | training_record(read_json(out / "train.json"), learns_from_trimmed=True))
    return {"root": root, "out": out, "test": te}


def test_make_report_writes_every_figure(run: dict) -> None:
    out = run["out"]
    manifest = make_report(
        model_path=out / "model.pt", train_log_path=out / "train.json",
        detections_path=out / "detections.json", map_path=out / "map.json",
        gt_path=run["root"] / "gt.json", feature_paths=run["test"], out_dir=out / "report",
        subset="test", n_videos=2, device="cpu")
    assert list(manifest["videos"]) == ["te_00", "te_01"]
    assert manifest["knowledge_transfer"] == NO_TRIMMED  # trained without trimmed clips
    assert manifest["videos"]["te_00"]["sequences"]["cascaded_cas"] == [
        read_json(out.parent.parent.parent / "te_00.json")["shape"][0], 3]
    for name in manifest["figures"]:
        assert (out / "report" / name).read_bytes()[:8] == PNG, name
    assert sorted(p.name for p in (out / "report" / "timelines").iterdir()) == [
        "te_00.png", "te_01.png"]
    # the PR curves' AP is the evaluate stage's AP at 0.5, under both protocols
    result = read_json(out / "map.json")
    for protocol in ("anet", "thumos14"):
        block = result["protocols"][protocol]
        at = block["tiou"].index(0.5)
        for label, ap in manifest["pr_ap"][protocol].items():
            assert ap == pytest.approx(block["per_class"][label][at], abs=1e-12)
    # a trained model's cascaded CAS is what infer saved for the video
    net, ckpt = load_model(out / "model.pt", torch.device("cpu"))
    feats = np.load(run["test"][0])
    seqs = named_scores(net, ckpt, feats, torch.device("cpu"))
    np.testing.assert_allclose(seqs["cascaded_cas"], np.load(out / "cas" / "te_00.npy"),
                               rtol=1e-5, atol=1e-6)


def test_report_and_summary_commands(run: dict, tmp_path: Path, capsys) -> None:
    out = run["out"]
    code = main(["report", "--run", str(out), "--gt", str(run["root"] / "gt.json"),
                 "--features", *map(str, run["test"]), "--out", str(tmp_path / "rep"),
                 "--videos", "te_03", "--pr-tiou", "0.3"])
    assert code == 0
    printed = capsys.readouterr().out.split()
    assert str(tmp_path / "rep" / "timelines" / "te_03.png") in printed
    assert read_json(tmp_path / "rep" / "report.json")["pr_tiou"] == 0.3
    code = main(["summary", str(out / "map.json"), "--md", str(tmp_path / "s.md"),
                 "--csv", str(tmp_path / "s.csv")])
    assert code == 0
    assert "| kt_mgfn (knowledge transfer off) | ours | anet |" in (tmp_path / "s.md").read_text()


# ---- summary and published numbers ------------------------------------------------------------


def fake_map(path: Path, dataset: str, model: str, anet: list[float], th: list[float],
             tious: list[float]) -> Path:
    blocks = {name: {"tiou": tious, "mAP": values, "average_mAP": float(np.mean(values)),
                     "per_class": {}} for name, values in (("anet", anet), ("thumos14", th))}
    write_json(path / "results" / dataset / model / "map.json",
               {"dataset": dataset, "model": model, "protocol": "anet", **blocks["anet"],
                "protocols": blocks, "classification": {"mAP": 0.9}})
    return path / "results" / dataset / model / "map.json"


def test_summary_puts_the_papers_numbers_beside_ours(tmp_path: Path) -> None:
    tious = [0.1, 0.3, 0.5, 0.7]
    maps = [fake_map(tmp_path, "thumos14", "kt_mgfn", [0.5, 0.4, 0.3, 0.1],
                     [0.45, 0.35, 0.25, 0.05], tious),
            fake_map(tmp_path, "demo", "cas_baseline", [0.875] * 4, [0.81] * 4, tious)]
    records = write_summary(maps, tmp_path / "summary.md", tmp_path / "summary.csv")
    md = (tmp_path / "summary.md").read_text()
    section = md.split("## thumos14 (THUMOS14)")[1].split("##")[0]
    rows = [line for line in section.splitlines() if line.startswith("| kt_mgfn")]
    assert rows[0].startswith("| kt_mgfn | ours | anet | 50.0 | – | 40.0 | – | 30.0 |")
    assert rows[1].startswith("| kt_mgfn | ours | thumos14 | 45.0 |")
    assert "| 56.5 | 51.3 | 42.2 | 33.8 | 25.6 | 17.0 | 7.5 |" in rows[2]  # Table III, I3D
    assert "Table III" in rows[2]
    assert "## demo" in md
    assert "| cas_baseline | ours | anet | 87.5 |" in md
    assert "Table IV" in md  # KT-MGFN on ActivityNet: said, not invented
    assert "not found" in md
    assert "| 39.29 | 24.09 | 6.71 | 24.42 |" in md  # CPMN Table 2, as printed
    with open(tmp_path / "summary.csv") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(records)
    ours = [r for r in table if r["source"] == "ours" and r["model"] == "kt_mgfn"]
    assert [r["mAP@0.5"] for r in ours] == ["30.00", "25.00"]
    assert ours[0]["classification_mAP"] == "90.00"
    ecm = [r for r in table if r["model"] == "ecm" and r["dataset"] == "activitynet13"]
    assert ecm[0]["mAP@0.75"] == "23.60"
    assert ecm[0]["average_mAP"] == "23.50"


def test_a_dataset_run_with_thumos14_settings_gets_the_thumos14_papers_rows(
        tmp_path: Path) -> None:
    """A THUMOS14-structured benchmark (or one's own THUMOS14 features) under another name:
    map.json's model_settings_of puts the papers' THUMOS14 rows beside its rows, said to be
    another dataset's; a dataset without it gets none."""
    tious = [0.1, 0.3, 0.5, 0.7]
    like = fake_map(tmp_path, "thumos_like", "ecm", [0.6, 0.5, 0.4, 0.2], [0.5] * 4, tious)
    m = read_json(like)
    write_json(like, {**m, "model_settings_of": "thumos14"})
    plain = fake_map(tmp_path, "mine", "ecm", [0.6, 0.5, 0.4, 0.2], [0.5] * 4, tious)
    write_summary([like, plain], tmp_path / "summary.md", tmp_path / "summary.csv")
    md = (tmp_path / "summary.md").read_text()
    section = md.split("## thumos_like")[1].split("\n## ")[0]
    assert "THUMOS14 numbers, another dataset" in section.splitlines()[0]
    paper = [line for line in section.splitlines() if line.startswith("| ecm | paper")]
    assert paper
    assert "Table 3" in paper[0]
    mine = md.split("## mine")[1].split("\n## ")[0]
    assert "| ecm | paper" not in mine


def test_summary_without_results_lists_the_published_numbers() -> None:
    md, records = summary_tables([])
    assert "### THUMOS14" in md
    assert "### ActivityNet-1.3" in md
    assert {r["model"] for r in records} == {"kt_mgfn", "assg", "cpmn", "ecm", "tsrnet"}


def test_published_numbers_are_complete_and_plausible() -> None:
    for p in PUBLISHED:
        assert len(p.mAP) == len(p.tious)
        assert all(m is None or 0 < m < 100 for m in p.mAP)
        assert "Table" in p.source
        # mAP falls as the threshold rises
        values = [m for m in p.mAP if m is not None]
        assert values == sorted(values, reverse=True), p.source
    assert {p.model for p in published(benchmark="thumos14")} == {
        "kt_mgfn", "assg", "cpmn", "ecm", "tsrnet"}
    assert {p.model for p in published(benchmark="activitynet13")} == {
        "assg", "cpmn", "ecm", "tsrnet"}
    assert ("kt_mgfn", "activitynet13") in UNAVAILABLE
    assert published("ecm", "thumos14")[0].at(0.5) == 29.1


# ---- progress bars ----------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    assert not is_terminal()
    assert list(progress_bar(range(3), desc="flow")) == [0, 1, 2]
    assert log.getvalue() == ""
    tty = FakeTerminal()
    monkeypatch.setattr("sys.stderr", tty)
    assert is_terminal()
    assert list(progress_bar(range(3), desc="flow", unit="flow")) == [0, 1, 2]
    assert "flow" in tty.getvalue()
    assert "3/3" in tty.getvalue()
    quiet = FakeTerminal()
    monkeypatch.setattr("sys.stderr", quiet)
    assert list(progress_bar(range(3), desc="flow", show=False)) == [0, 1, 2]
    assert quiet.getvalue() == ""
