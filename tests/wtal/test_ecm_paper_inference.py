"""ECM's inference as the paper defines it (Sec. 3.5, table 5, Sec. 4.3): SSN's TAG with its γ
grid, proposals scored by their outer-inner contrast alone, the independent two-network
ensembles of table 5 and the class-agnostic row, as ``ablations:`` of ecm.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from wtal.ablation import variant_settings
from wtal.infer import InferSettings
from wtal.models import build_model
from wtal.models.ecm import ECM, ECMInferOptions, ECMOutput
from wtal.postprocess import outer_inner_score
from wtal.settings import infer_settings

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"hidden": 16, "dropout": 0.0}

pytestmark = pytest.mark.usefixtures("one_thread")


def make(**kwargs: Any) -> ECM:
    torch.manual_seed(0)
    model = build_model("ecm", in_dim=8, num_classes=3, **{**SMALL, **kwargs})
    assert isinstance(model, ECM)
    return model


def one_video(cas: torch.Tensor, post_cas: torch.Tensor | None = None) -> ECMOutput:
    t = cas.shape[0]
    video_logits = torch.log(torch.tensor([[0.6, 0.3, 0.1]]))
    return ECMOutput(cas=cas[None], video_logits=video_logits, pre_logits=None,
                     post_logits=None, post_bg_logits=None, action_weights=None,
                     mask=torch.ones(1, t, dtype=torch.bool),
                     post_cas=None if post_cas is None else post_cas[None])


def test_default_grouping_uses_ssn_gamma_grid_and_merges_basins() -> None:
    options = ECMInferOptions()
    assert options.tag_gammas == tuple(round(0.05 * i, 2) for i in range(1, 20))
    cas = torch.zeros(7, 3)
    cas[:, 0] = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0])  # basins [0, 1], [3, 4]
    settings = InferSettings(class_threshold=0.5, cas_thresholds=(0.5,), video_score_weight=0.0)
    spans = sorted((s, e) for c, s, e, _ in make().eval().candidates(one_video(cas),
                                                                     settings=settings))
    # the two basins, and their union (4 of 5 snippets above τ): γ ≤ 0.8 merges them
    assert spans == [(0.0, 2.0), (0.0, 5.0), (3.0, 5.0)]


def test_config_scores_a_proposal_by_its_outer_inner_contrast_alone() -> None:
    cfg = yaml.safe_load((ROOT / "pipeline/config/models/ecm.yaml").read_text())
    settings, options = infer_settings(cfg["infer"])
    cas = torch.zeros(8, 3)
    cas[:, 0] = torch.tensor([0.0, 0.2, 1.0, 0.9, 1.0, 0.1, 0.0, 0.3])
    found = make().eval().candidates(one_video(cas), settings=settings,
                                     options=ECMInferOptions(**options))
    norm = cas[:, 0].numpy().astype(np.float64)  # already in [0, 1]
    assert found
    for c, s, e, score in found:
        assert c == 0
        assert score == pytest.approx(outer_inner_score(norm, int(s), int(e) - 1,
                                                        inflation=settings.inflation))


def test_independent_streams_share_nothing() -> None:
    model = make(shared_classifier=False, a2c=False, c2c=False, independent_streams=True)
    x = torch.randn(2, 9, 8)
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    out = model(x)
    assert out.post_cas is not None
    assert out.post_cas.shape == (2, 9, 3)
    assert out.post_logits is not None
    out.post_logits.sum().backward()  # the post stream's output: nothing of Φ_pre
    assert all(p.grad is None or not p.grad.any() for p in model.classifier.parameters())
    assert model.post_classifier is not None
    assert any(p.grad is not None and p.grad.any() for p in model.post_classifier.parameters())
    model.zero_grad()
    _, parts = model.loss(model(x), labels, torch.ones(2, 9, dtype=torch.bool), epoch=0)
    assert set(parts) == {"cls_e", "cls_o"}
    with pytest.raises(ValueError, match="independent_streams"):
        make(independent_streams=True)  # shares Φ, has L_c2c / L_a2c


def test_cas_sources_of_table_5_by_hand() -> None:
    model = make(shared_classifier=False, a2c=False, c2c=False, independent_streams=True).eval()
    pre = torch.zeros(6, 3)
    post = torch.zeros(6, 3)
    pre[:, 0] = torch.tensor([0.0, 4.0, 4.0, 0.0, 0.0, 0.0])  # → [0, 1, 1, 0, 0, 0]
    post[:, 0] = torch.tensor([0.0, 0.0, 0.0, 2.0, 2.0, 0.0])  # → [0, 0, 0, 1, 1, 0]
    out = one_video(pre, post)
    settings = InferSettings(class_threshold=0.5, cas_thresholds=(0.5,), video_score_weight=0.0)

    def spans(**opts: Any) -> list[tuple[float, float]]:
        found = model.candidates(out, settings=settings,
                                 options=ECMInferOptions(tag_gammas=(1.0,), **opts))
        return sorted((s, e) for c, s, e, _ in found)

    assert spans(cas_source="pre") == [(1.0, 3.0)]
    assert spans(cas_source="post") == [(3.0, 5.0)]
    assert spans(cas_source="merge") == [(1.0, 3.0), (3.0, 5.0)]
    # λ = 0.8: 0.8 on [1, 2], 0.2 on [3, 4] (renormalised: 1 and 0.25) → the pre basin only
    assert spans(cas_source="weighted", fusion_lambda=0.8) == [(1.0, 3.0)]
    # λ = 0.5: both at 0.5 → one basin [1, 4]
    assert spans(cas_source="weighted", fusion_lambda=0.5) == [(1.0, 5.0)]
    with pytest.raises(ValueError, match="cas_source"):
        ECMInferOptions(cas_source="mean")
    with pytest.raises(ValueError, match="fusion_lambda"):
        ECMInferOptions(fusion_lambda=1.5)


def test_table_5_and_class_agnostic_rows_in_the_config() -> None:
    cfg = yaml.safe_load((ROOT / "pipeline/config/models/ecm.yaml").read_text())
    rows = variant_settings({k: cfg[k] for k in ("args", "train", "infer")}, cfg["ablations"])
    assert rows["ECM, class-agnostic weights"]["args"]["class_specific_weights"] is False
    table5 = {"Table 5: Merge": ("merge", None)}
    table5.update({f"Table 5: λ = {lam}": ("weighted", lam) for lam in (0.2, 0.4, 0.6, 0.8)})
    for name, (source, lam) in table5.items():
        values = rows[name]
        _, options = infer_settings(values["infer"])
        opts = ECMInferOptions(**options)
        assert opts.cas_source == source, name
        if lam is not None:
            assert opts.fusion_lambda == lam, name
        model = build_model("ecm", in_dim=8, num_classes=3, **{**values["args"], **SMALL})
        assert isinstance(model, ECM), name
        assert model.independent_streams, name
    old = rows["ECM, score OIC + 0.2 × video score"]
    assert infer_settings(old["infer"])[0].video_score_weight == 0.2
    plain = rows["ECM, TAG with γ = 1 only (plain thresholding)"]
    assert ECMInferOptions(**infer_settings(plain["infer"])[1]).tag_gammas == (1.0,)
