"""UCF101 trimmed clips for knowledge transfer (KT-MGFN Sec. IV-A, TSRNet "Datasets").

Standard UCF101 layout: ``<root>/<UcfClass>/v_<UcfClass>_g<GG>_c<CC>.avi`` (the ``UCF-101``
folder of the official archive), optionally with the official ``classInd.txt``
(``<id> <UcfClass>`` per line, CRLF line endings) to check the class ids.

The untrimmed dataset's class ``c`` takes the clips of UCF101 class ``mapping[c]``:

* THUMOS14: its 20 classes are UCF101 classes with the same names (:data:`THUMOS14_TO_UCF101`).
* ActivityNet-1.3: the papers use "the 30 overlapping classes" but do not list them. Our list,
  :data:`ACTIVITYNET13_TO_UCF101`, pairs the 30 ActivityNet classes whose UCF101 counterpart is
  the same action under another name; it is a default, overridable per dataset config
  (``trimmed.classes``). Near matches we left out, because the UCF101 class is narrower or
  different: Diving → Springboard diving / Plataform diving, Billiards → Playing pool,
  TableTennisShot → Ping-pong, Bowling → Playing ten pins, Drumming → Playing drums,
  PlayingGuitar → Playing guitarra, PlayingFlute → Playing flauta, FieldHockeyPenalty →
  Playing field hockey, ParallelBars / BalanceBeam / PommelHorse / UnevenBars → Using ... .

Indexed clips get split ``trimmed``, subset ``ucf101`` and the untrimmed dataset's class as label.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wtal.datasets import THUMOS14_UCF101_IDS, VIDEO_EXTENSIONS, probe_duration
from wtalio import read_text

THUMOS14_TO_UCF101: dict[str, str] = {c: c for c in THUMOS14_UCF101_IDS}

#: ActivityNet-1.3 class → UCF101 class (30 pairs; see the module docstring).
ACTIVITYNET13_TO_UCF101: dict[str, str] = {
    "Archery": "Archery",
    "Blow-drying hair": "BlowDryHair",
    "Brushing teeth": "BrushingTeeth",
    "Clean and jerk": "CleanAndJerk",
    "Discus throw": "ThrowDiscus",
    "Doing fencing": "Fencing",
    "Getting a haircut": "Haircut",
    "Hammer throw": "HammerThrow",
    "High jump": "HighJump",
    "Horseback riding": "HorseRiding",
    "Hula hoop": "HulaHoop",
    "Javelin throw": "JavelinThrow",
    "Kayaking": "Kayaking",
    "Knitting": "Knitting",
    "Long jump": "LongJump",
    "Mooping floor": "MoppingFloor",  # sic: ActivityNet spells it "Mooping"
    "Playing piano": "PlayingPiano",
    "Playing violin": "PlayingViolin",
    "Pole vault": "PoleVault",
    "Rafting": "Rafting",
    "Rock climbing": "RockClimbingIndoor",
    "Rope skipping": "JumpRope",
    "Shaving": "ShavingBeard",
    "Shot put": "Shotput",
    "Skateboarding": "SkateBoarding",
    "Skiing": "Skiing",
    "Sumo": "SumoWrestling",
    "Surfing": "Surfing",
    "Tai chi": "TaiChi",
    "Walking the dog": "WalkingWithDog",
}

CLIP_NAME = re.compile(r"^v_(?P<cls>[A-Za-z]+)_g(?P<group>\d+)_c(?P<clip>\d+)$")


def read_class_index(path: str | Path) -> dict[str, int]:
    """UCF101 ``classInd.txt``: ``{class: 1-based id}``; errors name the file and line."""
    path = Path(path)
    ids: dict[str, int] = {}
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[0].isdigit():
            raise ValueError(f"{path}:{lineno}: expected '<id> <Class>', got {line.strip()!r}")
        ids[fields[1]] = int(fields[0])
    return ids


def default_mapping(classes: Sequence[str]) -> dict[str, str]:
    """The known mapping of a class list: identity for THUMOS14 names, the 30 ActivityNet pairs."""
    if set(classes) <= set(THUMOS14_TO_UCF101):
        return {c: THUMOS14_TO_UCF101[c] for c in classes}
    known = {c: u for c, u in ACTIVITYNET13_TO_UCF101.items() if c in classes}
    if known:
        return known
    return {c: c for c in classes}  # same names (e.g. the demo)


def clip_files(folder: Path, *, extensions: Sequence[str] = VIDEO_EXTENSIONS,
               kind: str = "video") -> list[Path]:
    """Clip files of one UCF101 class folder, checked against the ``v_<Class>_gGG_cCC`` form.

    ``extensions``: the videos' (default) or, for clips given as features, ``(".npy",)``;
    ``kind`` names them in errors. The class part of the file name is not compared with the
    folder name: the official archive has ``HandstandPushups/v_HandStandPushups_g01_c01.avi``.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: UCF101 class folder does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in extensions)
    for path in files:
        if not CLIP_NAME.match(path.stem):
            raise ValueError(f"{path}: not a UCF101 clip name (v_<Class>_g<GG>_c<CC>)")
    if not files:
        raise ValueError(f"{folder}: no {kind} files ({', '.join(extensions)})")
    return files


def clips_by_class(
    root: Path,
    *,
    classes: Sequence[str],
    mapping: Mapping[str, str] | None = None,
    class_index: str | None = None,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
    kind: str = "video",
) -> dict[str, tuple[str, list[Path]]]:
    """Dataset class → (its UCF101 class, the clip files of that class folder), for the
    ``classes`` present in the mapping, in class order (see :func:`index_trimmed`)."""
    mapping = dict(mapping) if mapping else default_mapping(classes)
    unknown = sorted(set(mapping) - set(classes))
    if unknown:
        raise ValueError(f"trimmed.classes maps unknown dataset classes {unknown}")
    if class_index is not None:
        ids = read_class_index(class_index)
        absent = sorted(u for u in mapping.values() if u not in ids)
        if absent:
            raise ValueError(f"{class_index}: UCF101 classes {absent} are not in the class index")
    return {cls: (mapping[cls], clip_files(root / mapping[cls], extensions=extensions, kind=kind))
            for cls in classes if cls in mapping}


def index_trimmed(
    root: Path,
    *,
    classes: Sequence[str],
    mapping: Mapping[str, str] | None = None,
    class_index: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Index records of the trimmed clips of ``classes`` (those present in the mapping).

    Args:
        root: the UCF101 video root (class folders).
        classes: the untrimmed dataset's classes.
        mapping: dataset class → UCF101 class; None = :func:`default_mapping`.
        class_index: optional path of ``classInd.txt``; every mapped class must be in it.
    """
    records: dict[str, dict[str, Any]] = {}
    for cls, (ucf, files) in clips_by_class(root, classes=classes, mapping=mapping,
                                            class_index=class_index).items():
        for path in files:
            records[path.stem] = {
                "path": str(path),
                "subset": "ucf101",
                "split": "trimmed",
                "duration": probe_duration(path),
                "labels": [cls],
                "ucf101_class": ucf,
            }
    return records
