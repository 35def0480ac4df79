"""The op table: ``OPS[name](C_in, C_out, stride) -> nn.Module``, the one list of op names.

Every op maps ``(N, C_in, H, W)`` to ``(N, C_out, ceil(H / stride), ceil(W / stride))``, so a cell
never has to know which op it holds. Layer orders follow the TensorFlow NASNet reference
(``nasnet_utils.py``): ReLU - Conv - BN, separable convolutions stacked twice with the stride on
the first, pooling followed by a 1x1 convolution only when the channel count changes.

Ops that begin with ReLU derive from :class:`PreAct`; a cell that feeds one hidden state to
several of them rectifies it once and calls :meth:`PreAct.body` on the shared result.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice

import torch
import torch.nn.functional as F
from torch import nn

from nascli.registry import Registry

OpFactory = Callable[[int, int, int], nn.Module]


class PreAct(nn.Sequential):
    """Layers whose first one is ReLU; ``body(x)`` runs the others on an already rectified x."""

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """The op without its leading ReLU (``body(relu(x)) == forward(x)``)."""
        for layer in islice(self, 1, None):
            x = layer(x)
        return x


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c)


class ConvBN(nn.Sequential):
    """Conv - BN (no activation; for inputs that are already rectified)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), _bn(c_out)
        )


class ReLUConvBN(PreAct):
    """ReLU - Conv(k x k) - BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
            _bn(c_out),
        )


class Bottleneck(PreAct):
    """ReLU - Conv(1x1, m) - BN - ReLU - Conv(k x k, or 1 x k - BN - ReLU - k x 1) - BN - ReLU -
    Conv(1x1, C_out) - BN, with m = C_out / 4 (3 C_out / 8 for 1x3-3x1)."""

    # The AmoebaNet TF reference (network_utils.py) builds its full convolutions this way; it
    # drops the 1x1 bottleneck when m would be 0 (tiny networks). ``pair`` splits k x k into
    # 1 x k then k x 1, with the stride split the same way.

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int = 1, pair: bool = False
    ) -> None:
        mid = (3 * c_out) // 8 if pair and kernel == 3 else c_out // 4
        a, b = (mid, mid) if mid else (c_in, c_out)  # channels into and out of the spatial part
        p = kernel // 2
        if pair:
            spatial: list[nn.Module] = [
                nn.Conv2d(a, b, (1, kernel), (1, stride), (0, p), bias=False),
                _bn(b),
                nn.ReLU(inplace=True),
                nn.Conv2d(b, b, (kernel, 1), (stride, 1), (p, 0), bias=False),
            ]
        else:
            spatial = [nn.Conv2d(a, b, kernel, stride, p, bias=False)]
        if not mid:
            super().__init__(nn.ReLU(), *spatial, _bn(c_out))
            return
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, mid, 1, bias=False),
            _bn(mid),
            nn.ReLU(inplace=True),
            *spatial,
            _bn(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, c_out, 1, bias=False),
            _bn(c_out),
        )


class DilConv(PreAct):
    """ReLU - depthwise Conv(k x k, dilation 2) - pointwise Conv(1 x 1) - BN (as in DARTS)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, kernel, stride, kernel - 1, dilation=2, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            _bn(c_out),
        )


class SepConv(PreAct):
    """(ReLU - depthwise Conv(k x k) - pointwise Conv(1 x 1) - BN) x 2, stride on the first."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        p = kernel // 2
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, kernel, stride, p, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            _bn(c_out),
            # in place is safe: BN does not keep its output for the backward pass
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, kernel, 1, p, groups=c_out, bias=False),
            nn.Conv2d(c_out, c_out, 1, bias=False),
            _bn(c_out),
        )


class Pool(nn.Sequential):
    """Avg or max Pool(k x k) [- Conv(1 x 1) - BN when the channel count changes]."""

    def __init__(self, kind: str, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        if kind == "avg":
            # count_include_pad=False matches TF's SAME average pooling
            pool: nn.Module = nn.AvgPool2d(kernel, stride, kernel // 2, count_include_pad=False)
        else:
            pool = nn.MaxPool2d(kernel, stride, kernel // 2)
        layers = [pool]
        if c_in != c_out:
            layers += [nn.Conv2d(c_in, c_out, 1, bias=False), _bn(c_out)]
        super().__init__(*layers)


class FactorizedReduce(nn.Module):
    """Conv(1 x 1) on even pixels and Conv(1 x 1) on odd pixels - concat - BN; halves H and W.

    The two paths see the input at offsets (0, 0) and (1, 1) with stride 2 (the reference's
    strided 1x1 convolutions on x and on x shifted by one pixel), so no pixel is dropped by both.
    Odd sizes round up, like every strided op. No leading ReLU: wrap it in :class:`PreAct` for
    that (the ``identity`` op at stride 2 does).
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_1 = nn.Conv2d(c_in, c_out - c_out // 2, 1, bias=False)
        # a single output channel leaves nothing for the shifted path
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, bias=False) if c_out > 1 else None
        self.bn = _bn(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # subsampling before the 1x1 convs copies a quarter of x per path instead of all of it
        a = self.conv_1(x[:, :, ::2, ::2])
        if self.conv_2 is None:
            return self.bn(a)
        b = self.conv_2(x[:, :, 1::2, 1::2])
        if b.shape[-2:] != a.shape[-2:]:
            # odd input: the shifted path is one short; pad at the end like the TF reference
            b = F.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
        return self.bn(torch.cat([a, b], dim=1))


def identity(c_in: int, c_out: int, stride: int = 1) -> nn.Module:
    """Identity; ReLU - FactorizedReduce at stride 2; ReLU - Conv(1 x 1) - BN if channels change."""
    if stride > 1:
        return PreAct(nn.ReLU(), FactorizedReduce(c_in, c_out))
    if c_in != c_out:
        return ReLUConvBN(c_in, c_out, 1)
    return nn.Identity()


#: name -> factory(C_in, C_out, stride). Spaces check their op names against it
#: (``nascli.spaces.known_ops``), so a registered op is usable in any space's ``ops``.
OPS: Registry[OpFactory] = Registry("op")
OPS.register("identity", identity)
OPS.register("conv_1x3_3x1", lambda ci, co, s: Bottleneck(ci, co, 3, s, pair=True))
OPS.register("conv_1x7_7x1", lambda ci, co, s: Bottleneck(ci, co, 7, s, pair=True))
OPS.register("dil_conv_3x3", lambda ci, co, s: DilConv(ci, co, 3, s))
OPS.register("dil_conv_5x5", lambda ci, co, s: DilConv(ci, co, 5, s))
OPS.register("avg_pool_3x3", lambda ci, co, s: Pool("avg", ci, co, 3, s))
OPS.register("max_pool_3x3", lambda ci, co, s: Pool("max", ci, co, 3, s))
OPS.register("max_pool_5x5", lambda ci, co, s: Pool("max", ci, co, 5, s))
OPS.register("max_pool_7x7", lambda ci, co, s: Pool("max", ci, co, 7, s))
OPS.register("conv_1x1", lambda ci, co, s: ReLUConvBN(ci, co, 1, s))
OPS.register("conv_3x3", lambda ci, co, s: Bottleneck(ci, co, 3, s))
OPS.register("sep_conv_3x3", lambda ci, co, s: SepConv(ci, co, 3, s))
OPS.register("sep_conv_5x5", lambda ci, co, s: SepConv(ci, co, 5, s))
OPS.register("sep_conv_7x7", lambda ci, co, s: SepConv(ci, co, 7, s))


def register_op(name: str, factory: OpFactory) -> OpFactory:
    """Add an op to the table (``factory(C_in, C_out, stride)`` must keep the shape contract);
    spaces built afterwards accept ``name`` in their ``ops``. Returns ``factory``."""
    return OPS.register(name, factory)


def build_op(name: str, c_in: int, c_out: int, stride: int = 1) -> nn.Module:
    """The op ``name``; an unknown name raises ``UnknownNameError`` (a ``KeyError`` and a
    ``ValueError``) listing the valid ones."""
    return OPS.get(name)(c_in, c_out, stride)
