"""The CURL pixel encoder: 4 convs (3x3, 32 filters, strides 2,1,1,1) -> flatten -> Linear -> LayerNorm.

It is written as two named stages, `conv` and `head`, because the update shares one conv pass between
several losses. SEER freezes it at a named layer boundary (`split`): "convK" (after the K-th conv: the
first K convs freeze, the rest of the encoder keeps training) or "fc" (after the Linear layer, as the
paper: convs, Linear and LayerNorm all freeze and the Linear output is stored). `lower(x, split)` is what
gets stored, `upper(z, split)` what still runs in an update.

Convs run in channels_last memory format: the same math, and on this 2-core CPU a forward+backward pass at
batch 128 takes 183 ms instead of 262 ms (oneDNN's backward kernels are much faster in NHWC).
"""

from __future__ import annotations

import torch
from torch import nn


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


class PixelEncoder(nn.Module):
    """Input: float pixels already scaled to [0, 1], shape (B, C, S, S). Output: (B, feature_dim)."""

    def __init__(self, in_channels: int, image_size: int, feature_dim: int = 50, num_layers: int = 4,
                 num_filters: int = 32) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(in_channels, num_filters, 3, stride=2)])
        self.convs.extend(nn.Conv2d(num_filters, num_filters, 3, stride=1) for _ in range(num_layers - 1))
        self.convs.to(memory_format=torch.channels_last)
        out = conv_output_size(image_size, num_layers)
        self.fc = nn.Linear(num_filters * out * out, feature_dim)
        self.ln = nn.LayerNorm(feature_dim)
        self.feature_dim = feature_dim
        self.image_size = image_size

    def conv(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # a no-op for batches built by the agent
        for conv in self.convs:
            x = torch.relu(conv(x))
        return x.flatten(1)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        # CURL builds both encoders with output_logits=True: LayerNorm output, no tanh.
        return self.ln(self.fc(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x))

    # --- SEER's split -----------------------------------------------------------------------------------
    def splits(self) -> tuple[str, ...]:
        return (*(f"conv{k + 1}" for k in range(len(self.convs))), "fc")

    def _frozen_convs(self, split: str) -> int:
        if split not in self.splits():
            raise ValueError(f"unknown split {split!r}; choose from {', '.join(self.splits())}")
        return len(self.convs) if split == "fc" else int(split.removeprefix("conv"))

    def lower_modules(self, split: str) -> list[nn.Module]:
        """The modules that freeze at `split`."""
        k = self._frozen_convs(split)
        return [*self.convs[:k], *((self.fc, self.ln) if split == "fc" else ())]

    def lower(self, x: torch.Tensor, split: str) -> torch.Tensor:
        """What SEER stores for input pixels `x`: (B, latent_dim), flattened."""
        h = x.contiguous(memory_format=torch.channels_last)
        for conv in self.convs[:self._frozen_convs(split)]:
            h = torch.relu(conv(h))
        return self.fc(h.flatten(1)) if split == "fc" else h.flatten(1)

    def upper(self, z: torch.Tensor, split: str) -> torch.Tensor:
        """The encoder's output from stored latents `z`: only the layers above `split` run."""
        if split == "fc":
            return self.ln(z)
        k = self._frozen_convs(split)
        side = self._side_after(k)
        h = z.view(z.shape[0], -1, side, side).contiguous(memory_format=torch.channels_last)
        for conv in self.convs[k:]:
            h = torch.relu(conv(h))
        return self.head(h.flatten(1))

    def latent_dim(self, split: str) -> int:
        k = self._frozen_convs(split)
        return self.feature_dim if split == "fc" else self.convs[k - 1].out_channels * self._side_after(k) ** 2

    def _side_after(self, k: int) -> int:
        return conv_output_size(self.image_size, k)

    def tie_convs_to(self, source: "PixelEncoder") -> None:
        """Share conv weights with `source` (the actor uses the critic's convs, as in CURL)."""
        for mine, theirs in zip(self.convs, source.convs):
            mine.weight, mine.bias = theirs.weight, theirs.bias
