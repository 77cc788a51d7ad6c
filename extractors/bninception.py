"""BN-Inception (Ioffe & Szegedy, 2015) with the Caffe layer names of the public checkpoints.

The module names are those of Cadene's ``pretrainedmodels.models.bninception.BNInception`` and
of TSN's ``tf_model_zoo/bninception`` (both generated from the same Caffe prototxt), so their
ImageNet checkpoints load with strict key matching:

* stem ``conv1_7x7_s2``, ``conv2_3x3_reduce``, ``conv2_3x3`` (each with a ``_bn`` BatchNorm);
* inception blocks ``inception_{3a,3b,3c,4a,4b,4c,4d,4e,5a,5b}`` with units ``_1x1``,
  ``_3x3_reduce``, ``_3x3``, ``_double_3x3_reduce``, ``_double_3x3_1``, ``_double_3x3_2``,
  ``_pool_proj`` (each ``{weight,bias}`` plus ``_bn.{weight,bias,running_mean,running_var}``);
  ``3c`` and ``4e`` are the stride-2 reduction blocks (no ``_1x1``, a max pool and no
  ``_pool_proj``); ``5b``'s pool branch is a max pool, the others' an average pool;
* the classifier, ``last_linear`` (Cadene) or ``fc`` (TSN), 1024 -> ``num_classes``.

Every convolution has a bias (Caffe), BN uses ``eps=1e-5``, pools round up (``ceil_mode``), so a
224x224 input reaches ``inception_5b`` as 7x7x1024. As in Caffe, the stride-2 blocks only fit
together when their convolution (rounding down) and pooling (rounding up) agree: input sizes
that are multiples of 32 do; others (e.g. 112) raise a clear error. TSN's released ImageNet
file stores some tensors with a leading singleton axis, which TSN squeezes before loading; so does
:func:`prepare_state_dict`. For optical flow TSN rebuilds the first convolution with
``2 * new_length`` input channels initialised with the RGB kernel averaged over its three input
channels (cross-modality pre-training): :func:`expand_first_conv`.

Input conventions of the public weights (not applied here; see :mod:`extractors.features`):
BGR in [0, 255] minus ``[104, 117, 128]`` for RGB; flow pixels in [0, 255] minus 128.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FEATURE_DIM",
    "HEAD_NAMES",
    "BNInception",
    "expand_first_conv",
    "head_name_of",
    "prepare_state_dict",
]

FEATURE_DIM = 1024  # channels out of inception_5b
HEAD_NAMES: tuple[str, ...] = ("last_linear", "fc")  # Cadene, TSN
FIRST_CONV = "conv1_7x7_s2"

# (name, in, 1x1, 3x3_reduce, 3x3, double_3x3_reduce, double_3x3_1/2, pool_proj, pool)
# 1x1 = 0 and pool_proj = 0 mark the stride-2 reduction blocks (3c, 4e).
_BLOCKS: tuple[tuple[str, int, int, int, int, int, int, int, str], ...] = (
    ("3a", 192, 64, 64, 64, 64, 96, 32, "avg"),
    ("3b", 256, 64, 64, 96, 64, 96, 64, "avg"),
    ("3c", 320, 0, 128, 160, 64, 96, 0, "max"),
    ("4a", 576, 224, 64, 96, 96, 128, 128, "avg"),
    ("4b", 576, 192, 96, 128, 96, 128, 128, "avg"),
    ("4c", 576, 160, 128, 160, 128, 160, 128, "avg"),
    ("4d", 608, 96, 128, 192, 160, 192, 128, "avg"),
    ("4e", 608, 0, 128, 192, 192, 256, 0, "max"),
    ("5a", 1056, 352, 192, 320, 160, 224, 128, "avg"),
    ("5b", 1024, 352, 192, 320, 192, 224, 128, "max"),
)


class ConvBN(nn.Module):
    """Caffe ``Convolution`` (with bias) + ``BatchNorm`` + ``ReLU``, as two sibling modules.

    The parent registers ``<name>`` (the convolution) and ``<name>_bn`` so that the keys are
    the checkpoint's flat Caffe names; this class only groups the forward pass.
    """

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        self._pair = (conv, bn)  # plain attribute: not registered twice

    def forward(self, x: Tensor) -> Tensor:
        conv, bn = self._pair
        return F.relu(bn(conv(x)))


class BNInception(nn.Module):
    """BN-Inception with flat Caffe names (see the module docstring for the layout)."""

    def __init__(
        self, *, num_classes: int = 1000, in_channels: int = 3, head: str = "last_linear"
    ) -> None:
        """Build the network (PyTorch's default initialisation).

        Args:
            num_classes: outputs of the classifier (1000 for ImageNet).
            in_channels: 3 for RGB, ``2 * new_length`` for stacked flow (10 in TSN).
            head: name of the classifier, ``last_linear`` (Cadene) or ``fc`` (TSN).
        """
        super().__init__()
        if head not in HEAD_NAMES:
            raise ValueError(f"BNInception: head must be one of {HEAD_NAMES}, got {head!r}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.head = head
        self._units: dict[str, ConvBN] = {}
        self._unit("conv1_7x7_s2", in_channels, 64, kernel=7, stride=2)
        self._unit("conv2_3x3_reduce", 64, 64)
        self._unit("conv2_3x3", 64, 192, kernel=3)
        for name, cin, w1, w3r, w3, wdr, wd, wp, _ in _BLOCKS:
            p = f"inception_{name}"
            stride = 2 if w1 == 0 else 1
            if w1:
                self._unit(f"{p}_1x1", cin, w1)
            self._unit(f"{p}_3x3_reduce", cin, w3r)
            self._unit(f"{p}_3x3", w3r, w3, kernel=3, stride=stride)
            self._unit(f"{p}_double_3x3_reduce", cin, wdr)
            self._unit(f"{p}_double_3x3_1", wdr, wd, kernel=3)
            self._unit(f"{p}_double_3x3_2", wd, wd, kernel=3, stride=stride)
            if wp:
                self._unit(f"{p}_pool_proj", cin, wp)
        self.add_module(head, nn.Linear(FEATURE_DIM, num_classes))

    def _unit(self, name: str, cin: int, cout: int, *, kernel: int = 1, stride: int = 1) -> None:
        conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)
        bn = nn.BatchNorm2d(cout, eps=1e-5)
        self.add_module(name, conv)
        self.add_module(f"{name}_bn", bn)
        self._units[name] = ConvBN(conv, bn)

    def _block(self, name: str, x: Tensor) -> Tensor:
        spec = next(b for b in _BLOCKS if b[0] == name)
        w1, wp, pool = spec[2], spec[7], spec[8]
        p, u = f"inception_{name}", self._units
        outs = []
        if w1:
            outs.append(u[f"{p}_1x1"](x))
        outs.append(u[f"{p}_3x3"](u[f"{p}_3x3_reduce"](x)))
        d = u[f"{p}_double_3x3_reduce"](x)
        outs.append(u[f"{p}_double_3x3_2"](u[f"{p}_double_3x3_1"](d)))
        if wp:  # stride-1 block: 3x3 pool (stride 1, pad 1), then a 1x1 projection
            if pool == "avg":
                pooled = F.avg_pool2d(x, 3, stride=1, padding=1, ceil_mode=True,
                                      count_include_pad=True)
            else:
                pooled = F.max_pool2d(x, 3, stride=1, padding=1, ceil_mode=True)
            outs.append(u[f"{p}_pool_proj"](pooled))
        else:  # reduction block: the pooled input itself
            outs.append(F.max_pool2d(x, 3, stride=2, ceil_mode=True))
        sizes = {tuple(o.shape[2:]) for o in outs}
        if len(sizes) > 1:  # Caffe's floor (convolution) and ceil (pooling) rounding disagree
            raise ValueError(
                f"BNInception: a {tuple(x.shape[2:])} map reaching {p} gives branches of "
                f"sizes {sorted(sizes)}; use an input size that is a multiple of 32 (e.g. 224)"
            )
        return torch.cat(outs, dim=1)

    def features(self, x: Tensor) -> Tensor:
        """Run the network up to ``inception_5b``.

        Args:
            x: images ``# (B, in_channels, H, W)``.

        Returns:
            Feature map ``# (B, 1024, H', W')`` (7x7 for a 224x224 input).
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"BNInception expects (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        u = self._units
        x = u["conv1_7x7_s2"](x)
        x = F.max_pool2d(x, 3, stride=2, ceil_mode=True)  # pool1_3x3_s2
        x = u["conv2_3x3"](u["conv2_3x3_reduce"](x))
        x = F.max_pool2d(x, 3, stride=2, ceil_mode=True)  # pool2_3x3_s2
        for spec in _BLOCKS:
            x = self._block(spec[0], x)
        return x

    def extract_features(self, x: Tensor) -> Tensor:
        """Globally averaged ``inception_5b`` (``global_pool`` for a 224x224 input).

        Args:
            x: images ``# (B, in_channels, H, W)``.

        Returns:
            Features ``# (B, 1024)``.
        """
        return F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)

    def logits(self, features: Tensor) -> Tensor:
        """The classifier on pooled features: ``# (B, 1024)`` -> ``# (B, num_classes)``."""
        return self.get_submodule(self.head)(features)

    def forward(self, x: Tensor) -> Tensor:
        """Class scores ``# (B, num_classes)`` (Cadene's ``forward`` without dropout)."""
        return self.logits(self.extract_features(x))


def head_name_of(state_dict: Mapping[str, Tensor]) -> str:
    """``last_linear`` or ``fc``: the classifier's name in a BN-Inception checkpoint.

    Raises:
        ValueError: the checkpoint has neither (or both).
    """
    found = [h for h in HEAD_NAMES if f"{h}.weight" in state_dict]
    if len(found) != 1:
        raise ValueError(
            f"not a BN-Inception checkpoint in the Cadene (last_linear) or TSN (fc) layout: "
            f"classifier keys found {found}"
        )
    return found[0]


def prepare_state_dict(
    state_dict: Mapping[str, Tensor], model: nn.Module
) -> dict[str, Tensor]:
    """Squeeze a leading singleton axis where that makes a tensor fit ``model``, as TSN does.

    TSN's ``bn_inception-9f5701afb96c8044.pth`` keeps Caffe's (1, C) blob shapes for some
    tensors; TSN's loader applies ``torch.squeeze(v, dim=0)`` to every entry. Only entries
    whose squeezed shape equals the model's are changed, so a shape error stays an error.
    """
    own = model.state_dict()
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if (
            key in own
            and value.ndim == own[key].ndim + 1
            and value.shape[0] == 1
            and value.shape[1:] == own[key].shape
        ):
            value = value.squeeze(0)
        out[key] = value
    return out


def expand_first_conv(
    state_dict: Mapping[str, Tensor], *, key: str, in_channels: int
) -> tuple[dict[str, Tensor], str | None]:
    """TSN's cross-modality initialisation of a flow network from RGB weights.

    The RGB kernel ``# (C_out, 3, k, k)`` is averaged over its input channels and replicated
    ``in_channels`` times (TSN ``models.py``: ``params[0].data.mean(dim=1, keepdim=True)
    .expand(...)``). A kernel that already has ``in_channels`` inputs is left as it is.

    Args:
        state_dict: checkpoint tensors.
        key: the first convolution's weight, e.g. ``conv1_7x7_s2.weight`` or ``conv1.weight``.
        in_channels: input channels of the flow network (``2 * new_length``).

    Returns:
        The state dict (a copy) and a note of what was done (None when nothing was).

    Raises:
        KeyError: ``key`` is not in the checkpoint.
    """
    out = dict(state_dict)
    if key not in out:
        raise KeyError(f"checkpoint has no first convolution {key!r}")
    weight = out[key]
    if weight.shape[1] == in_channels:
        return out, None
    mean = weight.mean(dim=1, keepdim=True)  # (C_out, 1, k, k)
    out[key] = mean.expand(-1, in_channels, *weight.shape[2:]).contiguous()
    note = (
        f"{key}: {weight.shape[1]} -> {in_channels} input channels "
        "(TSN cross-modality: mean over the RGB channels, replicated)"
    )
    return out, note
