"""TSRNet as the paper defines it: per-snippet attention weights in [0, 1] so that Eq. 5's
‖a‖₁ trains the attention, Eq. 10 on the weights as they are (no rescaling), a segment scored
by its mean w̄ (Eq. 11), and table 4's overlap pretraining as ``ablations:`` rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from wtal.infer import InferSettings
from wtal.models import build_model
from wtal.models.base import PretrainInputs
from wtal.models.tsrnet import TSRNet, TSRNetInferOptions, TSRNetOutput, smoothness, sparsity
from wtal.train import TrainSettings

CONFIG = Path(__file__).resolve().parents[2] / "pipeline" / "config" / "models" / "tsrnet.yaml"
STREAMS = {"rgb": [0, 4], "flow": [4, 8]}

pytestmark = pytest.mark.usefixtures("one_thread")


def small(**kwargs: object) -> TSRNet:
    torch.manual_seed(0)
    args = {"in_dim": 8, "num_classes": 3, "streams": STREAMS, "hops": 2,
            "attention_hidden": 6, "fc_hidden": 5, "dropout": 0.0, **kwargs}
    net = build_model("tsrnet", **args)
    assert isinstance(net, TSRNet)
    return net


def test_attention_is_per_snippet_in_unit_interval() -> None:
    x = torch.randn(2, 7, 8)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False
    a = small()(x, mask).attention  # (B, S, H, T)
    assert torch.all(a[:, :, :, :5] > 0)
    assert torch.all(a < 1)
    assert torch.all(a[1, :, :, 5:] == 0)
    assert not torch.allclose(a.sum(-1), torch.ones(2, 2, 2))  # not a distribution over time


def test_sparsity_term_of_eq5_trains_the_attention() -> None:
    """‖a‖₁ (Eq. 5) has a gradient, and descending it alone lowers the weights."""
    x = torch.randn(1, 9, 8)
    mask = torch.ones(1, 9, dtype=torch.bool)
    net = small(alpha=0.0, beta=1.0)
    values = []
    for _ in range(5):
        net.zero_grad()
        out = net(x, mask)
        total = sum(sparsity(out.attention[:, s], mask).sum() for s in range(2))
        total.backward()
        grad = net.nets["rgb"].w2.weight.grad
        assert grad is not None
        assert grad.abs().sum() > 0
        with torch.no_grad():  # one plain gradient step
            for p in net.parameters():
                if p.grad is not None:
                    p -= 0.1 * p.grad
        values.append(total.item())
    assert values == sorted(values, reverse=True)
    assert values[-1] < values[0] - 1e-3


def test_regularisers_are_divided_by_the_video_length() -> None:
    x = torch.randn(2, 6, 8)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    labels = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    net = small()
    out = net(x, mask)
    _, parts = net.loss(out, labels, mask, epoch=0)
    n = torch.tensor([6.0, 4.0])
    a = out.attention[:, 0]
    assert parts["sparsity_rgb"] == pytest.approx((sparsity(a, mask) / n).mean().item(), rel=1e-5)
    assert parts["smooth_rgb"] == pytest.approx((smoothness(a, mask) / n).mean().item(),
                                                rel=1e-5)
    _, raw = small(regularizer_norm="none").loss(out, labels, mask, epoch=0)
    assert raw["sparsity_rgb"] == pytest.approx(sparsity(a, mask).mean().item(), rel=1e-5)


def one_video(attention: list[float], frame_logit: float) -> TSRNetOutput:
    t = len(attention)
    att = torch.tensor(attention).reshape(1, 1, 1, t)  # (1, S=1, H=1, T)
    frames = torch.full((1, 1, t, 2), -20.0)
    frames[..., 0] = frame_logit
    return TSRNetOutput(cas=frames[:, 0], video_logits=torch.tensor([[5.0, -5.0]]),
                        stream_logits=torch.tensor([[[5.0, -5.0]]]), frame_logits=frames,
                        attention=att, pooled=(), hidden=(),
                        mask=torch.ones(1, t, dtype=torch.bool))


def test_detection_thresholds_the_weights_as_they_are_and_scores_the_mean() -> None:
    net = build_model("tsrnet", in_dim=4, num_classes=2)
    out = one_video([0.1, 0.5, 0.9, 0.7, 0.15, 0.1], 0.0)  # σ(0) = 0.5: w = a / 2
    w, _ = net.probabilities(out)
    torch.testing.assert_close(w[0, :, 0], torch.tensor([0.05, 0.25, 0.45, 0.35, 0.075, 0.05]))
    found = net.candidates(out, settings=InferSettings(class_threshold=0.5))
    assert len(found) == 1
    c, s, e, score = found[0]
    assert (c, s, e) == (0, 1.0, 4.0)  # w ≥ 0.2 on snippets 1-3 (min-max would add none)
    assert score == pytest.approx((0.25 + 0.45 + 0.35) / 3)
    # the earlier reading: min-max rescaled a, outer-inner contrast + 0.2 × video score
    old = net.candidates(out, settings=InferSettings(class_threshold=0.5),
                         options=TSRNetInferOptions(segment_score="oic"))
    assert old[0][3] != pytest.approx(score)
    with pytest.raises(ValueError, match="segment_score"):
        TSRNetInferOptions(segment_score="max")


def test_config_is_the_paper_reading_and_has_table_4() -> None:
    cfg = yaml.safe_load(CONFIG.read_text())
    assert cfg["args"]["attention_activation"] == "sigmoid"
    assert cfg["args"]["attention_norm"] == "none"
    assert cfg["infer"]["model"]["segment_score"] == "mean"
    rows = cfg["ablations"]
    assert rows["Table 4: pretrained ResNet101@ImageNet"]["args"] == {"overlap_pretrain": False}
    assert rows["Table 4: pretrained TSRNet@overlap"]["args"] == {"overlap_pretrain": True}
    old = rows["TSRNet, softmax attention + min-max + OIC score"]
    assert old["args"]["attention_activation"] == "softmax"
    assert TSRNetInferOptions(**old["infer"]["model"]).segment_score == "oic"


def test_overlap_pretraining_trains_on_the_overlapping_classes_first() -> None:
    rng = np.random.default_rng(0)
    videos = [rng.standard_normal((6, 8)).astype(np.float32) for _ in range(6)]
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    labels[2, 0] = 1.0  # video 2: classes 0 and 2 (2 has no trimmed clip)
    clips = [rng.standard_normal((4, 8)).astype(np.float32) for _ in range(4)]
    clip_labels = np.eye(3, dtype=np.float32)[[0, 1, 0, 1]]  # trimmed clips of classes 0, 1
    settings = TrainSettings(epochs=2, batch_size=4, lr=0.01, optimizer="sgd")

    def inputs() -> PretrainInputs:
        return PretrainInputs(videos=videos, labels=labels, trimmed=(clips, clip_labels),
                              settings=settings, rng=np.random.default_rng(0),
                              device=torch.device("cpu"))

    plain = small()
    start = {k: v.clone() for k, v in plain.state_dict().items()}
    assert "overlap_pretrain" not in plain.pretrain(inputs()).log
    assert all(torch.equal(start[k], v) for k, v in plain.state_dict().items())
    net = small(overlap_pretrain=True, overlap_epochs=3)
    log = net.pretrain(inputs()).log
    assert isinstance(log, dict)
    assert log["overlap_pretrain"]["videos"] == 4  # videos 0, 1, 3, 4: classes 0 / 1 only
    assert log["overlap_pretrain"]["epochs"] == 3
    assert any(not torch.equal(start[k], v) for k, v in net.state_dict().items())
    with pytest.raises(ValueError, match="knowledge_transfer"):
        small(overlap_pretrain=True, knowledge_transfer=False)


def test_trimmed_network_makes_the_main_loops_iterations() -> None:
    """"Identical settings" for the trimmed network, whose schedule the paper gives in
    iterations (lr ÷ 10 every 5,000): as many iterations as the main loop, lr steps at the same
    iterations, whatever the number of clips; an explicit trimmed_epochs is taken as is."""
    from wtal.models.tsrnet import trimmed_schedule

    thumos = TrainSettings(epochs=1154, batch_size=16, lr_milestones=(385, 769))
    clips = trimmed_schedule(thumos, n_videos=200, n_clips=1115)  # 13 and 70 iterations/epoch
    assert clips.epochs == 214  # 214 × 70 = 14,980 ≈ 1154 × 13 = 15,002
    assert clips.lr_milestones == (72, 143)  # 5,040 and 10,010 ≈ 5,005 and 9,997
    assert (clips.lr, clips.batch_size, clips.optimizer) == (thumos.lr, 16, thumos.optimizer)
    same = trimmed_schedule(thumos, n_videos=200, n_clips=200)
    assert (same.epochs, same.lr_milestones) == (1154, (385, 769))
    fixed = trimmed_schedule(thumos, n_videos=200, n_clips=1115, epochs=30)
    assert (fixed.epochs, fixed.lr_milestones) == (30, (385, 769))
    # pretrain: 6 videos, 12 clips, batch 4: 2 and 3 iterations per epoch, 6 epochs → 4
    rng = np.random.default_rng(0)
    videos = [rng.standard_normal((6, 8)).astype(np.float32) for _ in range(6)]
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    clips12 = [rng.standard_normal((4, 8)).astype(np.float32) for _ in range(12)]
    clip_labels = np.eye(3, dtype=np.float32)[[0, 1, 2] * 4]
    log = small().pretrain(PretrainInputs(
        videos=videos, labels=labels, trimmed=(clips12, clip_labels),
        settings=TrainSettings(epochs=6, batch_size=4, lr=0.01, optimizer="sgd",
                               lr_milestones=(3,)),
        rng=np.random.default_rng(0), device=torch.device("cpu"))).log
    assert isinstance(log, dict)
    assert (log["trimmed_epochs"], log["trimmed_lr_milestones"]) == (4, [2])
    assert len(log["trimmed_loss"]) == 4
