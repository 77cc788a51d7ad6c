"""A new model added from nothing but the README's "How a model plugs in" page: its code block
is executed as written, its settings block resolved as the workflow resolves settings, and the
model is trained and run through inference by the stages."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from extractors.grid import SnippetGrid
from wtal.infer import infer
from wtal.models import list_models
from wtal.settings import infer_settings, resolve_model_settings, train_settings
from wtal.train import train
from wtalio import save_npy, write_json

README = Path(__file__).resolve().parents[2] / "README.md"


def page() -> str:
    text = README.read_text()
    start = text.index("### How a model plugs in")
    end = text.index("\n#", start + 10)
    return text[start:end]


def block(kind: str) -> str:
    found = re.search(rf"```{kind}\n(.*?)```", page(), re.DOTALL)
    assert found, f"no {kind} block on the page"
    return found.group(1)


@pytest.fixture(scope="module")
def plugin() -> types.ModuleType:
    module = types.ModuleType("readme_peaknet")
    if "peaknet" not in list_models():  # the registry is per process
        sys.modules[module.__name__] = module  # as an imported module is
        exec(compile(block("python"), str(README), "exec"), module.__dict__)
    return module


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Any]:
    """Four training videos of two classes, two test videos; an action of class k lights up
    feature column k over snippets 6..9."""
    rng = np.random.default_rng(0)
    videos, paths = {}, {"train": [], "test": []}
    for i in range(6):
        split = "train" if i < 4 else "test"
        c = i % 2
        x = rng.normal(size=(20, 4)).astype(np.float32) * 0.3
        x[6:10, c] += 3.0
        grid = SnippetGrid(fps=25.0, n_frames=16 * 20, length=16, stride=16)
        save_npy(tmp_path / f"v{i}.npy", x)
        write_json(tmp_path / f"v{i}.json", {"shape": [20, 4], "grid": grid.to_dict(),
                                             "extractor": "toy"})
        videos[f"v{i}"] = {"labels": ["AB"[c]], "split": split, "subset": split}
        paths[split].append(tmp_path / f"v{i}.npy")
    write_json(tmp_path / "index.json", {"dataset": "toy", "classes": ["A", "B"],
                                          "videos": videos})
    return {"root": tmp_path, **paths}


def test_the_readme_model_trains_and_infers(plugin, data, tmp_path: Path) -> None:
    assert "peaknet" in list_models()
    settings_file = tmp_path / "peaknet.yaml"
    settings_file.write_text(block("yaml"))
    cfg = resolve_model_settings(settings_file, None)  # validated as the workflow does
    assert cfg["infer"]["model"] == {"width": 2}
    log = train(data["root"] / "index.json", data["train"], tmp_path / "m.pt",
                tmp_path / "t.json", model="peaknet", model_args=cfg["args"],
                settings=train_settings({**cfg["train"], "batch_size": 2, "lr": 0.05}),
                device="cpu")
    assert log["loss"][-1] < log["loss"][0]
    assert set(log["loss_parts"]) == {"bce"}  # the model's own loss was used
    settings, options = infer_settings(cfg["infer"])
    sub = infer(tmp_path / "m.pt", data["test"], tmp_path / "d.json", tmp_path / "cas",
                settings=settings, model_options=options, device="cpu")
    assert sub["settings"]["model"] == {"width": 2}
    for video, label in (("v4", "A"), ("v5", "B")):
        best = sub["results"][video][0]
        assert best["label"] == label
        # the peak lies in snippets 6..9 and the segment spans 2 · width + 1 snippets
        start, end = (t / 0.64 for t in best["segment"])
        assert end - start == pytest.approx(5.0, abs=0.01)
        assert 3.99 <= start <= 7.01  # (times are rounded to the millisecond)
    # the knob is an inference setting: other width, other segments, same model
    wide = infer(tmp_path / "m.pt", data["test"], tmp_path / "w.json", tmp_path / "cas2",
                 settings=settings, model_options={"width": 1}, device="cpu")
    start, end = wide["results"]["v4"][0]["segment"]
    assert (end - start) / 0.64 == pytest.approx(3.0, abs=0.01)
    with pytest.raises(ValueError, match="no inference knobs \\['depth'\\]"):
        infer(tmp_path / "m.pt", data["test"], tmp_path / "x.json", tmp_path / "cas3",
              settings=settings, model_options={"depth": 3}, device="cpu")


def test_a_builder_must_make_a_localizer() -> None:
    from torch import nn

    from wtal.models import build_model, register_model

    register_model("test_not_a_localizer")(lambda **_: nn.Identity())
    with pytest.raises(TypeError, match=r"not a wtal\.models\.base\.Localizer"):
        build_model("test_not_a_localizer", in_dim=2, num_classes=2)
