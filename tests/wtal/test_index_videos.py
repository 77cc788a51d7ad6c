"""The index stage checks every video at once: all unusable ones are listed in one error."""

from pathlib import Path

import pytest
from conftest import counter_frames, write_video

from extractors.decode import VideoError
from wtal.datasets import index_from_config
from wtalio import read_json

CLASSES = ["Alpha", "Beta"]


def thumos_config(root: Path, **extra: object) -> dict:
    return {
        "name": "toy", "format": "thumos14", "classes": CLASSES, "fps": 25.0, "root": str(root),
        "subsets": [
            {"name": "validation", "split": "train", "videos": "validation",
             "annotations": "ann/val", "suffix": "val"},
            {"name": "test", "split": "test", "videos": "test", "annotations": "ann/test",
             "suffix": "test"},
        ],
        **extra,
    }


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Four annotated videos: one fine, one shorter than a snippet, one broken, one missing."""
    root = tmp_path / "ds"
    (root / "ann/val").mkdir(parents=True)
    (root / "ann/test").mkdir(parents=True)
    (root / "ann/val/Alpha_val.txt").write_text("video_validation_0000001 0.1 0.5\n"
                                                "video_validation_0000002 0.1 0.3\n")
    (root / "ann/val/Beta_val.txt").write_text("video_validation_0000003 0.2 0.4\n")
    (root / "ann/test/Alpha_test.txt").write_text("video_test_0000001 0.1 0.5\n")
    (root / "ann/test/Beta_test.txt").write_text("video_test_0000002 0.1 0.5\n")
    write_video(root / "validation/video_validation_0000001.mp4", counter_frames(40, 32, 32),
                fps=25.0)
    write_video(root / "validation/video_validation_0000002.mp4", counter_frames(10, 32, 32),
                fps=25.0)  # 0.4 s: fewer than 16 frames
    (root / "validation/video_validation_0000003.mp4").write_bytes(b"\x00garbage" * 100)
    write_video(root / "test/video_test_0000001.mp4", counter_frames(40, 32, 32), fps=25.0)
    # video_test_0000002 has no file at all
    return root


def test_every_bad_video_is_listed_in_one_error(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(VideoError) as info:
        index_from_config(tmp_path / "index.json", tmp_path / "gt.json",
                          thumos_config(dataset, min_frames=16))
    message = str(info.value)
    assert message.startswith("3 video(s) cannot be used")
    assert "video_validation_0000002.mp4: 0.400 s long, 10 frame(s) at 25.0 fps" in message
    assert "video_validation_0000003.mp4: cannot be opened" in message
    assert "video_test_0000002: no video file in" in message
    assert ("exclude: [video_test_0000002, video_validation_0000002, video_validation_0000003]"
            in message)
    assert "video_validation_0000001:" not in message
    assert not (tmp_path / "index.json").exists()


def test_the_listed_exclusion_makes_the_index(dataset: Path, tmp_path: Path) -> None:
    bad = ["video_test_0000002", "video_validation_0000002", "video_validation_0000003"]
    index = index_from_config(tmp_path / "index.json", tmp_path / "gt.json",
                              thumos_config(dataset, min_frames=16, known_bad={"exclude": bad}))
    assert sorted(index["videos"]) == ["video_test_0000001", "video_validation_0000001"]
    assert index["videos"]["video_test_0000001"]["duration"] == pytest.approx(1.6)
    assert sorted(e["video"] for e in read_json(tmp_path / "index.json")["excluded"]) == bad


def test_without_a_snippet_length_short_videos_pass_the_index(dataset: Path,
                                                              tmp_path: Path) -> None:
    bad = ["video_test_0000002", "video_validation_0000003"]
    index = index_from_config(tmp_path / "index.json", tmp_path / "gt.json",
                              thumos_config(dataset, known_bad={"exclude": bad}))
    assert "video_validation_0000002" in index["videos"]
