"""KT-MGFN as its paper defines it (issue 18): joint BRM training (§III.E, table VII), Soft-NMS
over the kept anchors in training (§III.E), p_class of the trained classifiers for every class
(Eq. 5-7, §III.F), uniform test-time sampling (§III.F), the cascade of table VI and the
ablation rows of tables VI-VIII. Hand-sized inputs only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wtal.ablation import variant_settings
from wtal.infer import infer_options, predict_video
from wtal.models import build_model
from wtal.models.kt_mgfn import KTMGFNInferOptions, KTMGFNOutput, erase_mask, soft_nms_weights
from wtal.sampling import uniform_indices
from wtal.settings import CONFIG_DIR, InferSettings, resolve_model_settings


def small(**kwargs: object) -> torch.nn.Module:
    return build_model("kt_mgfn", in_dim=8, num_classes=3, hidden=16, **kwargs)


def logit(p: list[float]) -> torch.Tensor:
    t = torch.tensor(p, dtype=torch.float32)
    return torch.log(t / (1 - t))


def _one_class_output(act: list[float], regression: torch.Tensor) -> KTMGFNOutput:
    t = len(act)
    cas = logit(act).view(1, t, 1)
    return KTMGFNOutput(
        cas=cas, video_logits=torch.zeros(1, 1), stage_cas=cas.unsqueeze(1),
        branch_logits=torch.zeros(1, 1, 1, 1), embedding=torch.zeros(1, 4),
        erased=torch.zeros(1, t, dtype=torch.bool), regression=regression,
        mask=torch.ones(1, t, dtype=torch.bool))


def hand_net(**kwargs: object) -> torch.nn.Module:
    """One class, anchors of length 1 inflated by γ = 1, activation σ(cas)."""
    return build_model("kt_mgfn", in_dim=4, num_classes=1, hidden=4, brm=True,
                       anchor_scales=(1,), inflation=1.0, activation="sigmoid", **kwargs)


# ------------------------------------------------------------------ BRM training (§III.E)


def test_soft_nms_weights_decay_an_anchor_overlapping_a_better_one() -> None:
    segs = torch.tensor([[[0.0, 4.0], [0.0, 4.0], [1.0, 4.0], [10.0, 12.0]]])
    scores = torch.tensor([[1.5, 1.4, 1.3, 1.2]])
    keep = torch.tensor([[True, True, True, True]])
    w = soft_nms_weights(segs, scores, keep, iou_threshold=0.5, epsilon=0.75)
    # 0 is taken first: 1 (IoU 1) drops to 1.4·e^(−1/0.75) = 0.37, 2 (IoU 0.75) to
    # 1.3·e^(−0.75) = 0.61; so 2 is taken next and decays 1 once more (IoU 0.75); 3 overlaps
    # nothing
    d1 = math.exp(-1 / 0.75) * math.exp(-0.75)
    d2 = math.exp(-0.75)
    np.testing.assert_allclose(w[0].numpy(), [1.0, d1, d2, 1.0], rtol=1e-6)
    # anchors not kept neither take part nor are weighted
    keep[0, 0] = False
    w = soft_nms_weights(segs, scores, keep, iou_threshold=0.5, epsilon=0.75)
    np.testing.assert_allclose(w[0].numpy(), [1.0, 1.0, math.exp(-0.75**2 / 0.75), 1.0],
                               rtol=1e-6)


def test_training_soft_nms_counts_anchors_on_one_segment_about_once() -> None:
    act = [0.05, 0.2, 0.95, 0.3, 0.05, 0.05]
    reg = torch.zeros(1, 6, 1, 2)
    reg[0, 3, 0, 0] = -1.0  # the anchor at t = 3 regressed onto [2, 3), the one of t = 2
    out = _one_class_output(act, reg)
    oic = (0.2 + 0.3) / 2 - 0.95  # of [2, 3), kept at t = 2 and t = 3; nothing else is kept
    loss, n = hand_net().oic_objective(out, torch.ones(1, 1), out.mask)
    assert n == 2
    assert loss.item() == pytest.approx(oic * (1 + math.exp(-1 / 0.75)), abs=1e-5)
    plain, _ = hand_net(train_soft_nms=False).oic_objective(out, torch.ones(1, 1), out.mask)
    assert plain.item() == pytest.approx(2 * oic, abs=1e-5)


def test_joint_training_lets_the_oic_loss_reach_the_classification_network() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 16, 8)
    mask = torch.ones(2, 16, dtype=torch.bool)
    labels = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    grads = {}
    for joint in (True, False):
        torch.manual_seed(1)
        net = small(brm=True, max_oic=1.0, joint=joint)  # untrained CAS: keep every anchor
        loss, n = net.oic_objective(net(x, mask), labels, mask)
        assert n > 0
        loss.backward()
        grads[joint] = sum(float(p.grad.abs().sum()) for p in net.stages.parameters()
                           if p.grad is not None)
        assert all(p.grad is not None for p in net.brm.parameters())
    assert grads[True] > 0  # end-to-end (the paper's model, table VII)
    assert grads[False] == 0  # stage-wise: the CAS is detached


def test_end_to_end_is_the_default_stage_wise_thumos14s_and_both_table_vii_rows() -> None:
    # the paper's end-to-end training is the default; THUMOS14's block chooses stage-wise
    # (measured on the benchmark's training curves, kt_mgfn.yaml)
    assert small(brm=True).joint is True
    for dataset, joint in (("demo", True), ("activitynet13", True), ("thumos14", False)):
        settings = resolve_model_settings(CONFIG_DIR / "models" / "kt_mgfn.yaml", dataset)
        assert settings["args"]["joint"] is joint, dataset
        rows = variant_settings(settings, settings["ablations"])
        assert rows["VII end-to-end (the paper's)"]["args"]["joint"] is True
        assert rows["VII stage-wise"]["args"]["joint"] is False
        assert rows["+BRM"]["args"]["joint"] is joint


# -------------------------------------------------------------- p_class, classes (§III.F)


def test_p_class_is_the_mean_probability_of_the_trained_classifiers() -> None:
    torch.manual_seed(0)
    net = small(brm=True).eval()
    out = net(torch.randn(2, 12, 8))
    _, p_class = net.probabilities(out)
    expected = torch.sigmoid(out.branch_logits).mean(dim=(1, 2))  # (B, C) over stages, branches
    torch.testing.assert_close(p_class, expected, rtol=1e-5, atol=1e-6)
    # the video scores are what L_class trains: its gradient reaches them
    loss, _ = net.loss(out, torch.eye(3)[:2], out.mask, epoch=0)
    assert loss.grad_fn is not None
    assert out.video_logits.grad_fn is not None


def test_every_class_is_localised_whatever_its_video_score() -> None:
    act0 = [0.05, 0.2, 0.95, 0.3, 0.05, 0.05]
    act1 = [0.05, 0.05, 0.1, 0.9, 0.2, 0.05]
    cas = torch.stack([logit(act0), logit(act1)], dim=-1).unsqueeze(0)  # (1, 6, 2)
    out = KTMGFNOutput(
        cas=cas, video_logits=logit([0.9, 0.01]).view(1, 2), stage_cas=cas.unsqueeze(1),
        branch_logits=torch.zeros(1, 1, 1, 2), embedding=torch.zeros(1, 4),
        erased=torch.zeros(1, 6, dtype=torch.bool), regression=torch.zeros(1, 6, 1, 2),
        mask=torch.ones(1, 6, dtype=torch.bool))
    net = build_model("kt_mgfn", in_dim=4, num_classes=2, hidden=4, brm=True,
                      anchor_scales=(1,), inflation=1.0, activation="sigmoid")
    got = net.candidates(out, settings=InferSettings(class_threshold=0.2))
    by_class = {c: (s, e, sc) for c, s, e, sc in got}
    assert set(by_class) == {0, 1}  # class 1's video score 0.01 is far under 0.2
    s, e, score = by_class[1]
    assert (s, e) == (3.0, 4.0)
    assert score == pytest.approx(0.9 * (1 - ((0.1 + 0.2) / 2 - 0.9)) * 0.01, rel=1e-4)
    assert "class_threshold" in net.unread_infer_settings()


# ------------------------------------------------------------ test-time sampling (§III.F)


def test_test_indices_follow_the_training_sampling() -> None:
    net = small(brm=True)
    sparse = {"sampling": "sparse", "num_segments": 8, "feature_length": None}
    np.testing.assert_array_equal(net.test_indices(32, train_settings=sparse),
                                  uniform_indices(32, length=8))
    assert len(net.test_indices(5, train_settings=sparse)) == 8  # short videos: units repeat
    assert net.test_indices(32, train_settings={"sampling": "all", "num_segments": 8}) is None
    native = KTMGFNInferOptions(test_sampling="native")
    assert net.test_indices(32, train_settings=sparse, options=native) is None
    with pytest.raises(ValueError, match="test_sampling"):
        KTMGFNInferOptions(test_sampling="dense")


def test_a_sampled_test_video_is_mapped_back_to_its_own_snippets() -> None:
    torch.manual_seed(0)
    net = small(brm=True, max_oic=1.0).eval()
    torch.nn.init.normal_(net.brm.out.weight, std=0.3)
    features = np.random.default_rng(0).normal(size=(24, 8)).astype(np.float32)
    ckpt = {"train_settings": {"sampling": "sparse", "num_segments": 8, "feature_length": None},
            "feature_norm": None}
    cas, scores, cands = predict_video(net, ckpt, features, torch.device("cpu"),
                                       InferSettings())
    assert cas.shape == (24, 3)
    idx = uniform_indices(24, length=8)
    assert idx.tolist() == [1, 4, 7, 10, 13, 16, 19, 22]  # unit j: snippet 3j + 1
    with torch.no_grad():
        out = net(torch.from_numpy(features[idx]).unsqueeze(0))
        want = net.candidates(out, settings=InferSettings())
        act, p_class = net.probabilities(out)
    assert cands == pytest.approx([(c, 3 * s, 3 * e, sc) for c, s, e, sc in want])
    assert max(e for _, _, e, _ in cands) <= 24.0
    np.testing.assert_allclose(scores, p_class[0].numpy(), rtol=1e-6)
    # unit j of 8 stands for snippets [3j, 3j + 3): at their centres the CAS is the unit's,
    # linearly interpolated between them
    np.testing.assert_allclose(cas[[1, 4, 22]], act[0, [0, 1, 7]].numpy(), rtol=1e-5)
    np.testing.assert_allclose(cas[2], (2 * act[0, 0] + act[0, 1]).numpy() / 3, rtol=1e-5)
    # native: the video read as it is
    native = predict_video(net, ckpt, features, torch.device("cpu"), InferSettings(),
                           KTMGFNInferOptions(test_sampling="native"))
    assert not np.allclose(native[0], cas)


# ----------------------------------------------------------------- tables VI-VIII


def test_three_classifiers_erase_what_every_earlier_stage_found() -> None:
    torch.manual_seed(0)
    net = small(num_stages=3).eval()
    x = torch.randn(2, 20, 8)
    mask = torch.ones(2, 20, dtype=torch.bool)
    labels = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])
    out = net(x, mask, labels=labels)
    assert out.stage_cas.shape == (2, 3, 20, 3)
    assert out.branch_logits.shape == (2, 3, 4, 3)
    first = erase_mask(out.stage_cas[:, 0], mask, labels > 0.5, threshold=0.8)
    second = erase_mask(out.stage_cas[:, 1], mask, labels > 0.5, threshold=0.8)
    assert torch.equal(out.erased, first | second)
    torch.testing.assert_close(out.cas, out.stage_cas.amax(dim=1))
    assert "mining_cas_3" in net.score_sequences(x, mask)
    with pytest.raises(ValueError, match="num_stages"):
        small(ccm=False, num_stages=2)
    assert len(small(ccm=False).stages) == 1
    assert len(small().stages) == 2


def test_tables_vi_vii_viii_are_rows_of_the_ablation_block() -> None:
    settings = resolve_model_settings(CONFIG_DIR / "models" / "kt_mgfn.yaml", "demo")
    rows = variant_settings(settings, settings["ablations"])
    assert list(rows)[:5] == ["baseline", "+MDCM", "+CCM", "+KTM", "+BRM"]  # table V kept
    stages = {}
    factors = set()
    for name, values in rows.items():
        net = build_model("kt_mgfn", in_dim=8, num_classes=3, **{**values["args"], "hidden": 4})
        options = infer_options(net, values["infer"].get("model"), name)
        stages[name] = len(net.stages)
        if net.brm is not None and len(net.stages) == 2:
            factors.add((options.score_act, options.score_class, options.score_oic))
    assert stages["VI one classifier"] == 1
    assert stages["+BRM"] == 2
    assert stages["VI three classifiers"] == 3
    assert rows["VII end-to-end (the paper's)"]["args"]["joint"]
    assert not rows["VII stage-wise"]["args"]["joint"]
    # table VIII: every non-empty combination of the three factors of Eq. (6)
    assert factors == {(a, c, o) for a in (True, False) for c in (True, False)
                       for o in (True, False)} - {(False, False, False)}
