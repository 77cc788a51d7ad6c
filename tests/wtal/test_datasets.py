"""Index stage on THUMOS14-format annotation folders made in fixtures."""

from pathlib import Path

import pytest
from conftest import counter_frames, write_video

from extractors.decode import VideoError
from wtal.datasets import (
    SubsetSpec,
    build_index,
    index_dataset,
    load_index,
    parse_annotation_file,
    subset_of_split,
    videos_of_split,
)
from wtalio import read_json

CLASSES = ["Alpha", "Beta"]


@pytest.fixture
def thumos_like(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    ann_val = root / "ann" / "val"
    ann_test = root / "ann" / "test"
    ann_val.mkdir(parents=True)
    ann_test.mkdir(parents=True)
    # official quirks: double spaces, trailing whitespace, empty lines
    (ann_val / "Alpha_val.txt").write_text("video_validation_0000001  0.5 1.2\n\n")
    (ann_val / "Beta_val.txt").write_text("video_validation_0000001 1.4 1.9 \n"
                                          "video_validation_0000002 0.2 0.9\n")
    (ann_val / "Ambiguous_val.txt").write_text("video_validation_0000002  1.0 1.5\n")
    (ann_test / "Alpha_test.txt").write_text("video_test_0000001 0.1 0.8\n")
    (ann_test / "Beta_test.txt").write_text("")
    for sub, name in [("validation", "video_validation_0000001"),
                      ("validation", "video_validation_0000002"),
                      ("test", "video_test_0000001"),
                      ("test", "video_test_0000009")]:  # no annotation: not indexed
        write_video(root / sub / f"{name}.mp4", counter_frames(50), fps=25.0)
    return root


SUBSETS = [
    {"name": "validation", "split": "train", "videos": "validation",
     "annotations": "ann/val", "suffix": "val"},
    {"name": "test", "split": "test", "videos": "test", "annotations": "ann/test",
     "suffix": "test"},
]


def test_index_and_gt(thumos_like: Path, tmp_path: Path) -> None:
    index_path, gt_path = tmp_path / "w" / "index.json", tmp_path / "w" / "gt.json"
    index_dataset(index_path, gt_path, dataset="toy", classes=CLASSES, subsets=SUBSETS,
                  fps=25.0, root=thumos_like)
    index = load_index(index_path)
    assert sorted(index["videos"]) == ["video_test_0000001", "video_validation_0000001",
                                       "video_validation_0000002"]
    v1 = index["videos"]["video_validation_0000001"]
    assert v1["labels"] == ["Alpha", "Beta"]
    assert v1["split"] == "train"
    assert v1["duration"] == pytest.approx(2.0, abs=0.01)
    # no segment times reach the index: training sees labels only
    assert "annotations" not in str(index)
    gt = read_json(gt_path)
    db = gt["database"]
    assert db["video_validation_0000002"]["annotations"] == [
        {"segment": [0.2, 0.9], "label": "Beta"}
    ]
    assert db["video_test_0000001"]["subset"] == "test"
    assert gt["ambiguous"] == {"video_validation_0000002": [[1.0, 1.5]]}
    assert videos_of_split(index, "test") == ["video_test_0000001"]
    assert subset_of_split(index, "train") == "validation"


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "Alpha_val.txt"
    path.write_text("v1 0.1 0.5\nv2 zero 1.0\n")
    with pytest.raises(ValueError, match=r"Alpha_val.txt:2: start and end must be numbers"):
        parse_annotation_file(path, "Alpha")
    path.write_text("v1 0.9 0.5\n")
    with pytest.raises(ValueError, match=r"Alpha_val.txt:1: end 0.5 is not after start 0.9"):
        parse_annotation_file(path, "Alpha")
    path.write_text("v1 0.1\n")
    with pytest.raises(ValueError, match="expected 'video start end'"):
        parse_annotation_file(path, "Alpha")


def test_missing_class_file_is_clear(thumos_like: Path) -> None:
    (thumos_like / "ann" / "test" / "Beta_test.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"Beta_test\.txt"):
        build_index(dataset="toy", classes=CLASSES, subsets=[SubsetSpec(**SUBSETS[1])],
                    fps=25.0, root=thumos_like)


def test_missing_video_file(thumos_like: Path) -> None:
    (thumos_like / "validation" / "video_validation_0000002.mp4").unlink()
    with pytest.raises(VideoError,
                       match=r"video_validation_0000002: no video file in .*validation"):
        build_index(dataset="toy", classes=CLASSES, subsets=[SubsetSpec(**SUBSETS[0])],
                    fps=25.0, root=thumos_like)
