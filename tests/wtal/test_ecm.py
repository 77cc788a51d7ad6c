"""ECM (wtal/models/ecm.py): shapes, three-fold aggregation, weight transition, Eq. 3–5 by hand,
masking invariance, table 4 switches, a short training on planted features, the config file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import torch
import yaml

from wtal.infer import InferSettings
from wtal.models import build_model, list_models
from wtal.models.ecm import (
    ECM,
    ECMInferOptions,
    ECMOutput,
    a2c_loss,
    actionness_groups,
    c2c_loss,
    classification_loss,
    masked_minmax,
    three_fold_aggregate,
)
from wtal.postprocess import outer_inner_score
from wtal.settings import infer_settings
from wtal.train import TrainSettings

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"hidden": 16, "dropout": 0.0}

# table 4 rows (and the Sec. 4.3 class-agnostic variant, and a single fold) → expected loss parts
ABLATIONS: dict[str, tuple[dict[str, Any], set[str]]] = {
    "pre_only": ({"post_stream": False, "a2c": False, "c2c": False}, {"cls_e"}),
    "post_only": ({"pre_stream": False, "a2c": False, "c2c": False}, {"cls_o"}),
    "shared": ({"a2c": False, "c2c": False}, {"cls_e", "cls_o"}),
    "shared_a2c": ({"c2c": False}, {"cls_e", "cls_o", "a2c"}),
    "shared_c2c": ({"a2c": False}, {"cls_e", "cls_o", "c2c"}),
    "not_shared": ({"shared_classifier": False}, {"cls_e", "cls_o", "a2c", "c2c"}),
    "full": ({}, {"cls_e", "cls_o", "a2c", "c2c"}),
    "class_agnostic": ({"class_specific_weights": False}, {"cls_e", "cls_o", "a2c", "c2c"}),
    "one_fold": ({"folds": 1}, {"cls_e", "cls_o", "a2c", "c2c"}),
    "a2c_softmax": ({"a2c_activation": "softmax"}, {"cls_e", "cls_o", "a2c", "c2c"}),
    "weights_norm": ({"aggregation": "weights"}, {"cls_e", "cls_o", "a2c", "c2c"}),
    "sum": ({"aggregation": "none"}, {"cls_e", "cls_o", "a2c", "c2c"}),
    "sigmoid_scores": ({"scores": "sigmoid"}, {"cls_e", "cls_o", "a2c", "c2c"}),
    "a2c_absence_trains_all": ({"a2c_absence_trains": "all"}, {"cls_e", "cls_o", "a2c", "c2c"}),
    "independent": ({"shared_classifier": False, "a2c": False, "c2c": False,
                     "independent_streams": True}, {"cls_e", "cls_o"}),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def make(**kwargs: Any) -> ECM:
    torch.manual_seed(0)
    model = build_model("ecm", in_dim=kwargs.pop("in_dim", 8), num_classes=kwargs.pop("C", 3),
                        **{**SMALL, **kwargs})
    assert isinstance(model, ECM)
    return model


def test_registered_and_shapes() -> None:
    assert "ecm" in list_models()
    model = make(in_dim=8, C=3)
    x = torch.randn(2, 13, 8)
    mask = torch.ones(2, 13, dtype=torch.bool)
    mask[1, 9:] = False
    out = model(x, mask)
    assert out.cas.shape == (2, 13, 3)
    for name in ("video_logits", "pre_logits", "post_logits", "post_bg_logits"):
        assert getattr(out, name).shape == (2, 3), name
    assert out.action_weights.shape == (2, 13, 3)
    assert out.mask.shape == (2, 13)
    # the video logits are the mean of the two streams
    torch.testing.assert_close(out.video_logits, (out.pre_logits + out.post_logits) / 2)
    # switched-off parts are absent
    pre = make(post_stream=False, a2c=False, c2c=False)(x, mask)
    assert pre.post_logits is None
    assert pre.action_weights is None
    assert pre.post_bg_logits is None
    torch.testing.assert_close(pre.video_logits, pre.pre_logits)
    no_a2c = make(a2c=False)(x, mask)
    assert no_a2c.post_bg_logits is None
    assert no_a2c.post_logits is not None


def test_classifier_has_kernels_3_3_1_and_is_shared() -> None:
    model = make(in_dim=8, C=3)
    phi = model.classifier
    kernels = [phi.conv1.kernel_size, phi.conv2.kernel_size, phi.head.kernel_size]
    assert kernels == [(3,), (3,), (1,)]
    assert model.post_classifier is None  # one Φ for both streams
    assert model.transition.kernel_size == (1,)
    assert model.transition.in_channels == 3
    two = make(shared_classifier=False)
    assert two.post_classifier is not None
    assert two.post_classifier is not two.classifier


def test_three_fold_aggregation_by_hand() -> None:
    # T = 5: folds {0, 3}, {1, 4}, {2}
    x = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0], [5.0, 10.0]]])  # (1, 5, 2)
    w = torch.tensor([[[1.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 3.0], [1.0, 1.0]]])  # (1, 5, 2)
    mask = torch.ones(1, 5, dtype=torch.bool)
    sums = torch.tensor([[
        [[5.0, 0.0], [7.0, 10.0], [3.0, 0.0]],  # class 0: plain sums of each fold
        [[13.0, 0.0], [5.0, 10.0], [0.0, 0.0]],  # class 1: 1·x0 + 3·x3, 0·x1 + 1·x4, 0·x2
    ]])  # (1, C=2, 3 folds, D=2)
    got = three_fold_aggregate(x, w, mask, normalize="none")
    assert got.shape == (1, 2, 3, 2)
    torch.testing.assert_close(got, sums)
    # default: divided by the fold sizes 2, 2, 1
    sizes = torch.tensor([2.0, 2.0, 1.0])[None, None, :, None]
    torch.testing.assert_close(three_fold_aggregate(x, w, mask, eps=0.0), sums / sizes)
    # by the weight sums: class 0 → 2, 2, 1; class 1 → 4, 1, 0 (an empty fold gives 0)
    wsum = torch.tensor([[2.0, 2.0, 1.0], [4.0, 1.0, 1.0]])[None, :, :, None]
    got = three_fold_aggregate(x, w, mask, normalize="weights")
    torch.testing.assert_close(got, sums / wsum)
    # masking snippet 4 removes it from fold 1 (which then has one snippet)
    mask[0, 4] = False
    got = three_fold_aggregate(x, w, mask, eps=0.0)
    torch.testing.assert_close(got[0, :, 1], torch.tensor([[2.0, 0.0], [0.0, 0.0]]))
    torch.testing.assert_close(got[0, :, 0], sums[0, :, 0] / 2)
    # one fold: the weighted sum over the whole video divided by its length
    one = three_fold_aggregate(x, w, torch.ones(1, 5, dtype=torch.bool), folds=1, eps=0.0)
    torch.testing.assert_close(one[0, :, 0], torch.tensor([[3.0, 2.0], [18 / 5, 2.0]]))
    with pytest.raises(ValueError, match="normalize"):
        three_fold_aggregate(x, w, mask, normalize="max")


def test_per_class_classifier_is_channel_c_on_class_c_sequence() -> None:
    model = make(in_dim=8, C=3).eval()
    feats = torch.randn(2, 3, 3, 8)  # (B, C, 3, D)
    got = model.classifier.per_class(feats)  # (B, C, 3)
    for c in range(3):
        full = model.classifier(feats[:, c].transpose(1, 2))  # (B, C, 3)
        torch.testing.assert_close(got[:, c], full[:, c])


def test_post_stream_uses_phi_on_three_fold_features() -> None:
    model = make(in_dim=8, C=3).eval()
    x = torch.randn(2, 11, 8)
    mask = torch.ones(2, 11, dtype=torch.bool)
    mask[0, 7:] = False
    out = model(x, mask)
    wa = out.action_weights
    xs = x.masked_fill(~mask.unsqueeze(-1), 0.0)
    agg = {"normalize": "length"}
    s_o = model.classifier.per_class(three_fold_aggregate(xs, wa, mask, **agg)).mean(dim=2)
    torch.testing.assert_close(out.post_logits, s_o)
    # the absence score uses W^b = 1 − W^a
    s_b = model.classifier.per_class(three_fold_aggregate(xs, 1 - wa, mask, **agg)).mean(dim=2)
    torch.testing.assert_close(out.post_bg_logits, s_b)


def test_frozen_sub_classifier_same_values_no_parameter_gradient() -> None:
    phi = make(in_dim=8, C=3).classifier
    feats = torch.randn(2, 3, 3, 8, requires_grad=True)
    frozen = phi.per_class(feats, frozen=True)
    torch.testing.assert_close(frozen, phi.per_class(feats))
    frozen.sum().backward()
    assert all(p.grad is None for p in phi.parameters())
    assert feats.grad is not None
    assert feats.grad.abs().sum() > 0


@pytest.mark.parametrize("trains", ["weights", "all"])
def test_a2c_absence_term_trains_phi_only_when_asked(trains: str) -> None:
    model = make(in_dim=8, C=3, a2c_absence_trains=trains).eval()
    assert model.transition is not None
    with torch.no_grad():  # W^a = σ(bias): constant, so no gradient reaches Φ through the CAS
        model.transition.weight.zero_()
    x = torch.randn(2, 12, 8)
    mask = torch.ones(2, 12, dtype=torch.bool)
    out = model(x, mask)
    labels = torch.tensor([[1.0, 0, 0], [0, 1, 1]])
    # Eq. 4's absence term alone: −log(1 − σ(s̃^o)) of the labelled classes
    term = -(torch.nn.functional.logsigmoid(-out.post_bg_logits) * labels).sum()
    term.backward()
    grads = [p.grad for p in model.classifier.parameters()]
    if trains == "weights":
        assert all(g is None or g.abs().sum() == 0 for g in grads)
    else:
        assert all(g is not None and g.abs().sum() > 0 for g in grads)
    # the transition learns from it either way (its weight's gradient: through W^a)
    assert model.transition.weight.grad is not None
    assert model.transition.weight.grad.abs().sum() > 0
    # and the values do not depend on the choice
    other = make(in_dim=8, C=3, a2c_absence_trains="all" if trains == "weights" else "weights")
    with torch.no_grad():
        other.transition.weight.zero_()  # type: ignore[union-attr]
    torch.testing.assert_close(other.eval()(x, mask).post_bg_logits, out.post_bg_logits)


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_weights_in_unit_interval_and_complementary(scale: float) -> None:
    model = make(in_dim=8, C=4).eval()
    x = torch.randn(3, 17, 8) * scale
    mask = torch.ones(3, 17, dtype=torch.bool)
    mask[2, 10:] = False
    out = model(x, mask)
    wa = out.action_weights
    assert wa.min() >= 0
    assert wa.max() <= 1
    wb = 1 - wa
    assert wb.min() >= 0
    assert wb.max() <= 1
    torch.testing.assert_close((wa + wb)[mask], torch.ones_like(wa[mask]))
    assert (wa[~mask] == 0).all()  # padding gets no weight
    # W^a is sigmoid(k=1 conv of the CAS)
    expected = torch.sigmoid(model.transition(out.cas.transpose(1, 2))).transpose(1, 2)
    torch.testing.assert_close(wa[mask], expected[mask])
    agnostic = make(in_dim=8, C=4, class_specific_weights=False).eval()(x, mask).action_weights
    torch.testing.assert_close(agnostic[mask], agnostic[..., :1].expand_as(agnostic)[mask])


def test_classification_loss_by_hand() -> None:
    logits = torch.log(torch.tensor([[1.0, 1.0, 2.0]]))  # softmax [.25, .25, .5]
    labels = torch.tensor([[1.0, 0.0, 1.0]])  # L1-normalised [.5, 0, .5]
    assert classification_loss(logits, labels).item() == pytest.approx(1.5 * math.log(2))


def test_sigmoid_scores_by_hand() -> None:
    q = math.log(4.0)
    logits = torch.tensor([[q, 0.0, -q]])  # σ: [.8, .5, .2]
    labels = torch.tensor([[1.0, 0.0, 1.0]])  # not normalised: plain binary targets
    expected = -(math.log(0.8) + math.log(0.5) + math.log(0.2)) / 3
    got = classification_loss(logits, labels, scores="sigmoid").item()
    assert got == pytest.approx(expected, rel=1e-6)
    other = torch.zeros(1, 3)  # σ: [.5, .5, .5]
    assert c2c_loss(logits, other, scores="sigmoid").item() == pytest.approx(0.18 / 3)
    model = make(in_dim=8, C=3, scores="sigmoid").eval()
    out = model(torch.randn(2, 9, 8))
    torch.testing.assert_close(model.probabilities(out)[1], torch.sigmoid(out.video_logits))
    assert make(in_dim=8, C=1, scores="sigmoid")(torch.randn(1, 9, 8)).cas.shape == (1, 9, 1)
    with pytest.raises(ValueError, match="scores"):
        classification_loss(logits, labels, scores="tanh")


def test_c2c_loss_by_hand() -> None:
    pre = torch.log(torch.tensor([[1.0, 1.0, 2.0], [1.0, 1.0, 1.0]]))  # [.25 .25 .5], uniform
    post = torch.log(torch.tensor([[2.0, 1.0, 1.0], [1.0, 1.0, 1.0]]))  # [.5 .25 .25], uniform
    # Eq. 3: video 1 (1/3)(.0625 + 0 + .0625), video 2 zero; mean over videos
    assert c2c_loss(pre, post).item() == pytest.approx(0.125 / 3 / 2)
    assert c2c_loss(pre, pre).item() == 0


def test_a2c_loss_by_hand_sigmoid() -> None:
    q = math.log(4.0)
    post = torch.tensor([[q, 0.0, -q], [0.0, 0.0, 0.0]])  # s^o = σ: [.8, .5, .2]
    bg = torch.tensor([[0.0, q, -q], [5.0, 5.0, 5.0]])  # s̃^o = σ: [.5, .8, .2]
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])  # video 2 has no label: skipped
    # Eq. 4, k = 2: −1/4 [log .8 + log .2 + log(1 − .5) + log(1 − .2)]
    expected = -(math.log(0.8) + math.log(0.2) + math.log(0.5) + math.log(0.8)) / 4
    assert a2c_loss(post, bg, labels).item() == pytest.approx(expected, rel=1e-6)
    # absent classes do not matter
    post2, bg2 = post.clone(), bg.clone()
    post2[0, 1], bg2[0, 1] = -7.0, 9.0
    assert a2c_loss(post2, bg2, labels).item() == pytest.approx(expected, rel=1e-6)
    # extreme logits stay finite
    huge = torch.tensor([[-80.0, 80.0, 0.0]])
    assert torch.isfinite(a2c_loss(huge, huge, torch.tensor([[1.0, 1.0, 0.0]])))


def test_a2c_loss_by_hand_softmax() -> None:
    post = torch.log(torch.tensor([[1.0, 1.0, 2.0], [1.0, 1.0, 1.0]]))  # s^o [.25, .25, .5]
    bg = torch.log(torch.tensor([[1.0, 2.0, 1.0], [1.0, 1.0, 1.0]]))  # s̃^o [.25, .5, .25]
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    # Eq. 4, k = 2: −1/4 [log .25 + log .5 + log(1 − .25) + log(1 − .25)]
    expected = -(math.log(0.25) + math.log(0.5) + 2 * math.log(0.75)) / 4
    got = a2c_loss(post, bg, labels, activation="softmax").item()
    assert got == pytest.approx(expected, rel=1e-6)
    # one labelled class: −1/2 [log s^o + log(1 − s̃^o)]
    one = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    expected = -(math.log(0.25) + math.log(0.5)) / 2
    assert a2c_loss(post, bg, one, activation="softmax").item() == pytest.approx(expected, rel=1e-6)
    huge = torch.tensor([[60.0, -60.0, 0.0]])
    labels = torch.tensor([[1.0, 1.0, 0.0]])
    assert torch.isfinite(a2c_loss(huge, huge, labels, activation="softmax"))
    with pytest.raises(ValueError, match="activation"):
        a2c_loss(post, bg, labels, activation="relu")


def test_total_loss_is_eq5() -> None:
    model = make(in_dim=8, C=3)
    pre = torch.log(torch.tensor([[1.0, 1.0, 2.0]]))
    post = torch.log(torch.tensor([[2.0, 1.0, 1.0]]))
    bg = torch.log(torch.tensor([[1.0, 2.0, 1.0]]))
    labels = torch.tensor([[1.0, 0.0, 1.0]])
    out = ECMOutput(cas=torch.zeros(1, 4, 3), video_logits=(pre + post) / 2, pre_logits=pre,
                    post_logits=post, post_bg_logits=bg, action_weights=torch.zeros(1, 4, 3),
                    mask=torch.ones(1, 4, dtype=torch.bool))
    total, parts = model.loss(out, labels, out.mask, epoch=0)
    cls_e = classification_loss(pre, labels).item()
    cls_o = classification_loss(post, labels).item()
    c2c = c2c_loss(pre, post).item()
    a2c = a2c_loss(post, bg, labels).item()
    assert parts == pytest.approx({"cls_e": cls_e, "cls_o": cls_o, "c2c": c2c, "a2c": a2c})
    assert total.item() == pytest.approx(cls_e + cls_o + 0.05 * c2c + 5.0 * a2c)


def test_padding_changes_nothing() -> None:
    model = make(in_dim=8, C=3).eval()
    torch.manual_seed(1)
    a, b = torch.randn(1, 10, 8), torch.randn(1, 7, 8)
    x = torch.cat([a, torch.cat([b, torch.randn(1, 3, 8) * 1e3], dim=1)])  # (2, 10, 8)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 7:] = False
    x.requires_grad_(True)
    both = model(x, mask)
    for i, (alone_x, length) in enumerate(((a, 10), (b, 7))):
        alone = model(alone_x)
        torch.testing.assert_close(both.cas[i : i + 1, :length], alone.cas)
        torch.testing.assert_close(both.action_weights[i : i + 1, :length], alone.action_weights)
        for name in ("video_logits", "pre_logits", "post_logits", "post_bg_logits"):
            torch.testing.assert_close(getattr(both, name)[i : i + 1], getattr(alone, name))
        cas_p, scores_p = model.probabilities(alone)
        cas_b, scores_b = model.probabilities(both)
        torch.testing.assert_close(cas_b[i : i + 1, :length], cas_p)
        torch.testing.assert_close(scores_b[i : i + 1], scores_p)
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    total, _ = model.loss(both, labels, mask, epoch=0)
    total.backward()
    assert (x.grad[1, 7:] == 0).all()  # no gradient reaches padded snippets
    assert (both.cas[1, 7:] == both.cas[1, 7:]).all()  # finite, whatever it is


def test_probabilities_minmax_cas_and_softmax_scores() -> None:
    model = make(in_dim=8, C=3).eval()
    x = torch.randn(2, 9, 8)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False
    out = model(x, mask)
    cas, scores = model.probabilities(out)
    assert cas.shape == (2, 9, 3)
    assert scores.shape == (2, 3)
    torch.testing.assert_close(scores.sum(dim=1), torch.ones(2))
    for i, length in ((0, 9), (1, 6)):
        valid = cas[i, :length]
        torch.testing.assert_close(valid.amin(dim=0), torch.zeros(3))
        torch.testing.assert_close(valid.amax(dim=0), torch.ones(3))
    assert (cas[1, 6:] == 0).all()
    flat = masked_minmax(torch.ones(1, 4, 2), torch.ones(1, 4, dtype=torch.bool))
    assert (flat == 0).all()


def test_actionness_grouping_by_hand() -> None:
    seq = np.array([0.9, 0.8, 0.1, 0.7, 0.2, 0.0, 0.0, 0.6, 0.9, 0.3])
    # basins at 0.5: [0, 1], [3, 3], [7, 8]
    assert actionness_groups(seq, 0.5, 1.0) == [(0, 1), (3, 3), (7, 8)]
    # γ = 0.75: [0, 3] covers 3 of 4 snippets (kept); adding [7, 8] covers 5 of 9 (stopped)
    assert actionness_groups(seq, 0.5, 0.75) == [(0, 1), (0, 3), (3, 3), (7, 8)]
    # γ = 0.5: also [0, 8] (5 of 9) and [3, 8] (3 of 6)
    assert actionness_groups(seq, 0.5, 0.5) == [(0, 1), (0, 3), (0, 8), (3, 3), (3, 8), (7, 8)]
    assert actionness_groups(seq, 0.95, 0.5) == []


def test_detect_drops_classes_under_tau_and_groups_the_normalised_cas() -> None:
    model = make(in_dim=8, C=3).eval()
    options = ECMInferOptions(tag_gammas=(1.0, 0.5))  # an inference knob (infer.model)
    cas = torch.tensor([[0.0, 5.0, 1.0], [4.0, 0.0, 1.0], [0.0, 0.0, 1.0], [4.0, 0.0, 1.0],
                        [0.0, 1.0, 1.0], [2.0, 0.0, 1.0]])  # (T=6, C=3) logits
    video_logits = torch.log(torch.tensor([[0.6, 0.3, 0.1]]))  # softmax → 0.6, 0.3, 0.1
    out = ECMOutput(cas=cas[None], video_logits=video_logits, pre_logits=None, post_logits=None,
                    post_bg_logits=None, action_weights=None, mask=torch.ones(1, 6, dtype=bool))
    settings = InferSettings(class_threshold=0.25, cas_thresholds=(0.5, 0.9), inflation=0.25,
                             video_score_weight=0.2)
    found = model.candidates(out, settings=settings, options=options)
    assert {c for c, *_ in found} == {0, 1}  # class 2 (0.1 < τ) dropped
    norm0 = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 0.5])  # class 0 min-max normalised
    spans0 = sorted((s, e) for c, s, e, _ in found if c == 0)
    # level 0.5 basins [1], [3], [5]; γ 0.5 merges [1, 3] (2 of 3), [1, 5] (3 of 5), [3, 5]
    assert spans0 == [(1, 2), (1, 4), (1, 6), (3, 4), (3, 6), (5, 6)]
    for c, s, e, score in found:
        if c == 0:
            expected = outer_inner_score(norm0, int(s), int(e) - 1, inflation=0.25) + 0.2 * 0.6
            assert score == pytest.approx(expected)
    spans1 = sorted((s, e) for c, s, e, _ in found if c == 1)
    assert spans1 == [(0, 1)]  # 1.0 at t=0, 0.2 at t=4
    settings_high = InferSettings(class_threshold=0.9, cas_thresholds=(0.5,))
    assert {c for c, *_ in model.candidates(out, settings=settings_high,
                                            options=options)} == {0}  # best class kept
    with pytest.raises(ValueError, match="tag_gammas"):
        ECMInferOptions(tag_gammas=(0.0,))


def test_invalid_switches_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least one"):
        make(pre_stream=False, post_stream=False, a2c=False, c2c=False)
    with pytest.raises(ValueError, match="c2c"):
        make(post_stream=False, a2c=False)
    with pytest.raises(ValueError, match="a2c"):
        make(post_stream=False, c2c=False)
    with pytest.raises(ValueError, match="shared_classifier"):
        make(pre_stream=False, a2c=False, c2c=False, shared_classifier=False)
    with pytest.raises(ValueError, match="2 classes"):
        make(C=1)
    for bad in ({"scores": "tanh"}, {"aggregation": "max"}, {"a2c_activation": "relu"}):
        with pytest.raises(ValueError, match="unknown"):
            make(**bad)


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_every_ablation_trains_one_step(name: str) -> None:
    args, parts_expected = ABLATIONS[name]
    model = make(in_dim=8, C=3, **args).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(4, 12, 8)
    mask = torch.ones(4, 12, dtype=torch.bool)
    mask[3, 8:] = False
    labels = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1]])
    before = [p.detach().clone() for p in model.parameters()]
    total, parts = model.loss(model(x, mask), labels, mask, epoch=0)
    assert set(parts) == parts_expected
    assert torch.isfinite(total)
    opt.zero_grad()
    total.backward()
    opt.step()
    changed = [not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True)]
    assert all(changed)  # every parameter takes part in the objective


def planted(n: int, t: int, d: int, c: int, seed: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                torch.Tensor]:
    """Noise features with a class direction added in one run per video; (x, labels, run mask)."""
    directions = torch.randn(c, d, generator=torch.Generator().manual_seed(99)) * 3
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, t, d, generator=g)
    labels = torch.zeros(n, c)
    inside = torch.zeros(n, t, dtype=torch.bool)
    for i in range(n):
        k = i % c
        start = int(torch.randint(0, t - 8, (1,), generator=g))
        x[i, start : start + 6] += directions[k]
        labels[i, k] = 1
        inside[i, start : start + 6] = True
    return x, labels, inside


def test_short_training_on_planted_features_reduces_loss_and_localises() -> None:
    torch.manual_seed(0)
    model = build_model("ecm", in_dim=16, num_classes=3, hidden=32, dropout=0.2)
    x, labels, _ = planted(24, 32, 16, 3, seed=0)
    mask = torch.ones(24, 32, dtype=torch.bool)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=5e-4)
    losses, cls = [], []
    for _ in range(60):
        total, parts = model.loss(model(x, mask), labels, mask, epoch=0)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(total.item())
        cls.append(parts["cls_e"] + parts["cls_o"])
    assert np.mean(losses[-5:]) < 0.75 * np.mean(losses[:5])
    # the classification terms fall most (Eq. 4's absence term trains the weights only)
    assert np.mean(cls[-5:]) < 0.25 * np.mean(cls[:5])
    model.eval()
    xt, yt, inside_t = planted(12, 32, 16, 3, seed=1)
    with torch.no_grad():
        cas, scores = model.probabilities(model(xt))
    assert (scores.argmax(dim=1) == yt.argmax(dim=1)).float().mean() >= 0.9
    cls = yt.argmax(dim=1)
    own = cas[torch.arange(12), :, cls]  # (12, T): the CAS of each video's class
    assert own[inside_t].mean() > own[~inside_t].mean() + 0.3


def config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "pipeline/config/models/ecm.yaml").read_text())


def test_config_matches_paper_and_builds() -> None:
    cfg = config()
    schema = yaml.safe_load((ROOT / "pipeline/schemas/model.schema.yaml").read_text())
    jsonschema.validate(cfg, schema)
    assert cfg["name"] == "ecm"
    train = TrainSettings(**cfg["train"])
    assert (train.lr, train.weight_decay, train.batch_size) == (2e-4, 5e-4, 16)
    assert (train.epochs, train.max_seqlen) == (150, 750)
    assert (cfg["args"]["alpha"], cfg["args"]["beta"], cfg["args"]["topk_ratio"]) == (
        0.05, 5.0, 0.125)
    settings, options = infer_settings(cfg["infer"])  # generic and the model's own knobs
    assert settings.class_threshold == 0.25
    grid = tuple(round(0.05 * i, 2) for i in range(1, 20))  # SSN's TAG grid
    assert ECMInferOptions(**options).tag_gammas == grid
    assert settings.cas_thresholds == grid
    assert settings.video_score_weight == 0.0  # the proposal's outer-inner contrast alone
    for name, block in cfg["datasets"].items():
        merged = {section: {**cfg.get(section, {}), **values} for section, values in block.items()}
        jsonschema.validate({**cfg, **merged}, schema)
        TrainSettings(**merged.get("train", cfg["train"]))
        args = merged.get("args", cfg["args"])
        assert isinstance(build_model("ecm", in_dim=8, num_classes=4, **args), ECM), name


def test_ablations_are_table_4_rows_and_each_trains() -> None:
    cfg = config()
    table4 = ["Pre-Cls", "Post-Cls", "Pre + Post, shared", "+ L_a2c",
              "+ L_a2c + L_c2c, not shared", "ECM", "ECM, L_a2c absence term trains Φ"]
    order = list(cfg["ablations"])
    # ECM's two inference-only rows sit right after it (they reuse its training)
    assert order[:6] == table4[:6]
    assert order[6:8] == ["ECM, TAG with γ = 1 only (plain thresholding)",
                          "ECM, score OIC + 0.2 × video score"]
    assert order[8] == table4[6]
    parts_of = {"Pre-Cls": {"cls_e"}, "Post-Cls": {"cls_o"},
                "Pre + Post, shared": {"cls_e", "cls_o"}, "+ L_a2c": {"cls_e", "cls_o", "a2c"},
                "+ L_a2c + L_c2c, not shared": {"cls_e", "cls_o", "a2c", "c2c"},
                "ECM": {"cls_e", "cls_o", "a2c", "c2c"},
                "ECM, L_a2c absence term trains Φ": {"cls_e", "cls_o", "a2c", "c2c"}}
    torch.manual_seed(0)
    x = torch.randn(3, 10, 8)
    mask = torch.ones(3, 10, dtype=torch.bool)
    labels = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 1, 1]])
    for name in table4:
        variant = cfg["ablations"][name]
        assert set(variant) <= {"args", "train", "infer"}
        args = {**cfg["args"], **variant.get("args", {}), **SMALL}
        model = build_model("ecm", in_dim=8, num_classes=3, **args)
        assert isinstance(model, ECM)
        assert model.shared_classifier == (name != "+ L_a2c + L_c2c, not shared")
        total, parts = model.loss(model(x, mask), labels, mask, epoch=0)
        assert set(parts) == parts_of[name], name
        total.backward()
        assert all(p.grad is not None for p in model.parameters()), name
