"""Pixel encoders: the conv stack shared by CURL and DrQ-v2 (4 convs, 3x3, 32 filters, strides 2,1,1,1 ->
flatten; `ConvNet`, DrQ-v2's whole encoder) and CURL's encoder, which adds Linear -> LayerNorm
(`PixelEncoder`).

CURL's is written as two named stages, `conv` and `head`, because the update shares one conv pass between
several losses. SEER freezes it at a named layer boundary (`split`): "convK" (after the K-th conv: the
first K convs freeze, the rest of the encoder keeps training) or "fc" (after the Linear layer, as the
paper: convs, Linear and LayerNorm all freeze and the Linear output is stored). `lower(x, split)` is what
gets stored, `upper(z, split)` what still runs in an update.

How it runs on a CPU (the same math, less memory traffic; measured on a 2-core CPU at batch 128):
- convs run in channels_last memory format: a forward+backward pass takes 183 ms instead of 262 ms
  (oneDNN's backward kernels are much faster in NHWC);
- each ReLU is fused into its conv (`ConvReLU2d`): oneDNN applies it while writing the conv's output, so
  a 27 MB activation is not read and written again (bitwise the same output; 58 ms instead of 73 ms for a
  no-grad pass of the four convs). Each conv is still a module that is called, so the FLOP ledger sees it
  run;
- the Linear layer reads the conv output in (H, W, C) order, so the channels_last map flattens without a
  copy. This permutes the Linear's input columns relative to CURL's (C, H, W) order: an equivalent
  parametrisation with the same initial distribution (orthogonal rows), not a different model.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.utils.flop_counter import conv_flop_count, register_flop_formula

try:  # oneDNN's conv with a fused post-op; absent from torch builds without mkldnn
    _FUSED = torch.ops.mkldnn._convolution_pointwise
except (AttributeError, RuntimeError):
    _FUSED = None


class _ConvReLU(torch.autograd.Function):
    """relu(conv2d(x, w, b, stride)) with oneDNN's fused forward; the backward autograd would run for the
    unfused pair (ReLU's threshold_backward on the output, then convolution_backward), so gradients are
    bitwise those of `torch.relu(F.conv2d(...))`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int) -> torch.Tensor:
        y = _FUSED(x, weight, bias, [0, 0], [stride, stride], [1, 1], 1, "relu", [], "")
        ctx.save_for_backward(x, weight, y)
        ctx.stride = stride
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, y = ctx.saved_tensors
        grad = torch.ops.aten.threshold_backward(grad, y, 0)
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad,
            x,
            weight,
            [weight.shape[0]],
            [ctx.stride] * 2,
            [0, 0],
            [1, 1],
            False,
            [0, 0],
            1,
            list(ctx.needs_input_grad[:3]),
        )
        return gx, gw, gb, None


def _fused_conv_flop(
    x_shape, w_shape, _bias, _padding, _stride, _dilation, *args, out_shape=None, **kwargs
) -> int:
    """torch's FlopCounterMode must see the fused op's cost: that of the conv (the ReLU costs no flops)."""
    return conv_flop_count(x_shape, w_shape, out_shape, transposed=False)


if _FUSED is not None:
    register_flop_formula(_FUSED)(_fused_conv_flop)


class ConvReLU2d(nn.Conv2d):
    """relu(conv2d(x)) as one module (the same parameters and state dict as nn.Conv2d): fused on CPU; the
    plain pair on other devices and while tracing (fvcore sees aten ops). The fused path handles this
    encoder's convs only: no padding, no dilation, one group, square stride."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type == "cpu"
            and _FUSED is not None
            and torch.backends.mkldnn.is_available()
            and not torch.jit.is_tracing()
        ):
            assert (
                self.padding == (0, 0)
                and self.dilation == (1, 1)
                and self.groups == 1
                and len(set(self.stride)) == 1
            )
            return _ConvReLU.apply(x, self.weight, self.bias, self.stride[0])
        return torch.relu(super().forward(x))


def rowwise(fn: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor) -> torch.Tensor:
    """`fn` on each row of `h` as a batch of one, concatenated: an evaluation batch runs its convolutions
    batched (their output per observation does not depend on the batch size, tested) and its Linear layers
    one row at a time, as `act` does. A matrix product's last bits change with its row count (a one-row
    product takes another kernel), and an action one bit off changes a DMC return in its fourth digit."""
    return torch.cat([fn(h[i : i + 1]) for i in range(len(h))])


def conv_output_size(size: int, num_layers: int) -> int:
    """Spatial size after the first 3x3 stride-2 conv and `num_layers - 1` 3x3 stride-1 convs (no padding)."""
    size = (size - 3) // 2 + 1
    return size - 2 * (num_layers - 1)


def weight_init(module: nn.Module) -> None:
    """CURL's init: orthogonal Linear weights; delta-orthogonal convs (only the kernel centre, ReLU gain)."""
    if isinstance(module, nn.Linear):
        nn.init.orthogonal_(module.weight.data)
        module.bias.data.fill_(0.0)
    elif isinstance(module, nn.Conv2d):
        module.weight.data.fill_(0.0)
        module.bias.data.fill_(0.0)
        mid = module.weight.size(2) // 2
        nn.init.orthogonal_(module.weight.data[:, :, mid, mid], nn.init.calculate_gain("relu"))


class ConvNet(nn.Module):
    """The conv stack of CURL's and DrQ-v2's encoders: `num_layers` 3x3 convs of `num_filters` filters, stride
    2 then 1, no padding, each followed by a ReLU; the output map flattened in (H, W, C) order.

    SEER can freeze it at a conv boundary `split` = "convK" (the first K convs freeze and their map is
    stored): `lower(x, split)` is what gets stored, `upper_conv(z, split)` the convs that still run on it.
    """

    def __init__(self, in_channels: int, image_size: int, num_layers: int = 4, num_filters: int = 32) -> None:
        super().__init__()
        self.convs = nn.ModuleList([ConvReLU2d(in_channels, num_filters, 3, stride=2)])
        self.convs.extend(ConvReLU2d(num_filters, num_filters, 3, stride=1) for _ in range(num_layers - 1))
        self.convs.to(memory_format=torch.channels_last)
        self.image_size = image_size

    @property
    def repr_dim(self) -> int:
        """Features of the whole stack's flattened output map."""
        return self._map_dim(len(self.convs))

    def conv(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) pixels -> (B, repr_dim) conv output, flattened in (H, W, C) order."""
        return self._convs(x, self.convs)

    @staticmethod
    def _convs(x: torch.Tensor, convs) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # a no-op for batches built by the agent
        for conv in convs:
            x = conv(x)
        return x.permute(0, 2, 3, 1).flatten(1)  # a view of the channels_last map

    # --- SEER's split -----------------------------------------------------------------------------------
    def splits(self) -> tuple[str, ...]:
        return tuple(f"conv{k + 1}" for k in range(len(self.convs)))

    def _frozen_convs(self, split: str) -> int:
        if split not in self.splits():
            raise ValueError(f"unknown split {split!r}; choose from {', '.join(self.splits())}")
        return int(split.removeprefix("conv"))

    def lower_modules(self, split: str) -> list[nn.Module]:
        """The modules that freeze at `split`."""
        return list(self.convs[: self._frozen_convs(split)])

    def lower(self, x: torch.Tensor, split: str) -> torch.Tensor:
        """What SEER stores for input pixels `x`: (B, latent_dim), the map flattened in (H, W, C) order."""
        return self._convs(x, self.convs[: self._frozen_convs(split)])

    def upper_conv(self, z: torch.Tensor, split: str) -> torch.Tensor:
        """The convs above a conv split, on stored conv maps `z` (flattened in (H, W, C) order)."""
        k = self._frozen_convs(split)
        side = self._side_after(k)
        h = z.view(z.shape[0], side, side, -1).permute(0, 3, 1, 2)  # channels_last (B, C, S, S)
        return self._convs(h, self.convs[k:])

    def latent_dim(self, split: str) -> int:
        return self._map_dim(self._frozen_convs(split))

    def _map_dim(self, k: int) -> int:
        return self.convs[k - 1].out_channels * self._side_after(k) ** 2

    def _side_after(self, k: int) -> int:
        return conv_output_size(self.image_size, k)

    def tie_convs_to(self, source: "ConvNet") -> None:
        """Share conv weights with `source` (the actor uses the critic's convs, as in CURL)."""
        for mine, theirs in zip(self.convs, source.convs):
            mine.weight, mine.bias = theirs.weight, theirs.bias


class PixelEncoder(ConvNet):
    """CURL's encoder: the conv stack, then Linear -> LayerNorm. Input: float pixels already scaled to [0, 1],
    shape (B, C, S, S). Output: (B, feature_dim). Adds SEER's split "fc" (after the Linear layer: convs,
    Linear and LayerNorm all freeze and the Linear output is stored, as the paper)."""

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        feature_dim: int = 50,
        num_layers: int = 4,
        num_filters: int = 32,
    ) -> None:
        super().__init__(in_channels, image_size, num_layers, num_filters)
        self.fc = nn.Linear(self.repr_dim, feature_dim)
        self.ln = nn.LayerNorm(feature_dim)
        self.feature_dim = feature_dim

    def head(self, h: torch.Tensor) -> torch.Tensor:
        # CURL builds both encoders with output_logits=True: LayerNorm output, no tanh.
        return self.ln(self.fc(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x))

    # --- SEER's split -----------------------------------------------------------------------------------
    def splits(self) -> tuple[str, ...]:
        return (*super().splits(), "fc")

    def _frozen_convs(self, split: str) -> int:
        return len(self.convs) if split == "fc" else super()._frozen_convs(split)

    def lower_modules(self, split: str) -> list[nn.Module]:
        return [*super().lower_modules(split), *((self.fc, self.ln) if split == "fc" else ())]

    def lower(self, x: torch.Tensor, split: str) -> torch.Tensor:
        h = super().lower(x, split)
        return self.fc(h) if split == "fc" else h

    def upper(self, z: torch.Tensor, split: str) -> torch.Tensor:
        """The encoder's output from stored latents `z`: only the layers above `split` run."""
        return self.ln(z) if split == "fc" else self.head(self.upper_conv(z, split))

    def latent_dim(self, split: str) -> int:
        return self.feature_dim if split == "fc" else super().latent_dim(split)
