"""One validation of detection files for both protocols, the pipeline and ``wtal eval``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wtal.cli import main
from wtal.evaluate import evaluate


def gt_file(path: Path) -> Path:
    database = {
        "v1": {"subset": "test", "duration": 20.0,
               "annotations": [{"segment": [2.0, 6.0], "label": "A"}]},
        "v2": {"subset": "test", "duration": 20.0,
               "annotations": [{"segment": [10.0, 14.0], "label": "B"}]},
    }
    taxonomy = [{"nodeName": "A", "nodeId": 0}, {"nodeName": "B", "nodeId": 1}]
    path.write_text(json.dumps({"database": database, "taxonomy": taxonomy, "ambiguous": {}}))
    return path


def det_file(path: Path, extra: list[dict[str, Any]]) -> Path:
    results = {
        "v1": [{"label": "A", "score": 0.9, "segment": [2.0, 6.0]}, *extra],
        "v2": [{"label": "B", "score": 0.8, "segment": [10.0, 14.0]}],
    }
    # json.dumps writes NaN / Infinity, as Python's json reads them back
    path.write_text(json.dumps({"results": results}))
    return path


BAD = {
    "nan score": {"label": "B", "score": float("nan"), "segment": [1.0, 3.0]},
    "inf end": {"label": "B", "score": 0.5, "segment": [1.0, float("inf")]},
    "inverted": {"label": "B", "score": 0.95, "segment": [9.0, 4.0]},
    "negative": {"label": "A", "score": 0.5, "segment": [-1.0, 3.0]},
}


@pytest.mark.parametrize("protocols", [["anet"], ["thumos14"], ["anet", "thumos14"]])
@pytest.mark.parametrize("kind", sorted(BAD))
def test_strict_evaluation_refuses_invalid_detections_for_every_protocol(
        tmp_path: Path, kind: str, protocols: list[str]) -> None:
    gt = gt_file(tmp_path / "gt.json")
    det = det_file(tmp_path / "det.json", [BAD[kind]])
    with pytest.raises(ValueError, match=r"det\.json: 1 detection.*'v1'"):
        evaluate(gt, det, subset="test", tious=[0.5], protocol=protocols[0],
                 protocols=protocols, strict=True)


def test_lenient_evaluation_skips_and_counts(tmp_path: Path) -> None:
    gt = gt_file(tmp_path / "gt.json")
    det = det_file(tmp_path / "det.json", list(BAD.values()))
    out = evaluate(gt, det, subset="test", tious=[0.5], protocols=["thumos14"], lenient=True)
    assert out["skipped_detections"] == {
        "score is not finite": 1, "segment is not finite": 1, "segment starts before 0 s": 1,
        "segment is empty or inverted (end <= start)": 1}
    # the valid detections alone: both found
    assert out["mAP"] == pytest.approx([1.0])
    assert out["protocols"]["thumos14"]["mAP"] == pytest.approx([1.0])
    assert out["counts"]["predictions"] == 2


def test_wtal_eval_refuses_inverted_segments_unless_lenient(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt = gt_file(tmp_path / "gt.json")
    det = det_file(tmp_path / "det.json", [BAD["inverted"]])
    args = ["eval", "--ground-truth", str(gt), "--predictions", str(det), "--tiou", "0.5"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1  # printed once
    assert str(det) in err
    assert "inverted" in err
    assert main([*args, "--lenient", "--out", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "skipped, invalid (--lenient): segment is empty or inverted (end <= start) ×1" in out
    result = json.loads((tmp_path / "m.json").read_text())
    # the inverted one (highest score) is no false positive
    assert result["mAP"] == pytest.approx([1.0])
    assert result["skipped_detections"] == {"segment is empty or inverted (end <= start)": 1}


def test_thumos14_protocol_error_names_the_file(tmp_path: Path) -> None:
    gt = gt_file(tmp_path / "gt.json")
    det = det_file(tmp_path / "my_run.json", [BAD["nan score"]])
    with pytest.raises(ValueError, match=r"my_run\.json"):
        evaluate(gt, det, subset="test", tious=[0.5], protocol="thumos14")
