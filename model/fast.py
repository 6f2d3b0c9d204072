"""`fast`: a small, wide-early-pooling network built for time-to-accuracy.

The design follows what the public CIFAR-10 speed records found to work:
- a first 2x2 convolution frozen to the whitening transform of image patches
  (computed from the training data), so the network starts from decorrelated
  inputs instead of learning them;
- three conv groups (conv, max-pool, BatchNorm, GELU, conv, BatchNorm, GELU;
  SiLU or ReLU instead of GELU as an option)
  that pool early, keeping most compute at low resolution;
- BatchNorm with a frozen unit scale and low-momentum running statistics;
- convs initialised partly to the identity (Dirac), which trains faster from
  the start;
- a bias-free linear head whose output is scaled down by the feature width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.layers import ACTIVATIONS, FrozenScaleBatchNorm, Network


class IdentityInitConv(nn.Conv2d):
    """3x3 conv whose first `in_channels` filters start as the identity map."""

    def __init__(self, channels_in: int, channels_out: int):
        super().__init__(channels_in, channels_out, kernel_size=3, padding=1, bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        weight = self.weight.data
        nn.init.dirac_(weight[: min(weight.size(0), weight.size(1))])


class ConvGroup(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, activation: str = "gelu", bn_momentum: float = 0.4):
        super().__init__()
        self.conv1 = IdentityInitConv(channels_in, channels_out)
        self.norm1 = FrozenScaleBatchNorm(channels_out, momentum=bn_momentum)
        self.conv2 = IdentityInitConv(channels_out, channels_out)
        self.norm2 = FrozenScaleBatchNorm(channels_out, momentum=bn_momentum)
        self.act = ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.conv1(x), 2)
        x = self.act(self.norm1(x))
        return self.act(self.norm2(self.conv2(x)))


class FastNet(Network):
    def __init__(self, widths: tuple[int, int, int] = (64, 256, 256), num_classes: int = 10,
                 whiten_kernel: int = 2, activation: str = "gelu", bn_momentum: float = 0.4):
        super().__init__()
        self.act = ACTIVATIONS[activation]
        whiten_width = 2 * 3 * whiten_kernel**2
        # The whitening filters are set by `prepare` and never trained; only their bias is.
        self.whiten = nn.Conv2d(3, whiten_width, whiten_kernel, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.groups = nn.Sequential(
            ConvGroup(whiten_width, widths[0], activation, bn_momentum),
            ConvGroup(widths[0], widths[1], activation, bn_momentum),
            ConvGroup(widths[1], widths[2], activation, bn_momentum),
        )
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        with torch.no_grad():
            self.head.weight.div_(self.head.weight.std())
        self.output_scale = 1.0 / widths[2]

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        roles = super().parameter_roles()
        whiten_bias = self.whiten.bias
        roles["norm"] = [p for p in roles["norm"] if p is not whiten_bias]
        roles["whiten"] = [whiten_bias]
        return roles

    @torch.no_grad()
    def prepare(self, train_images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the first conv to the ZCA-like whitening of the images' patches.

        Each eigenvector of the patch covariance becomes a filter scaled by
        1/sqrt(eigenvalue), used with both signs so the nonlinearity keeps the information.
        """
        channels, (kh, kw) = train_images.size(1), self.whiten.weight.shape[2:]
        patches = train_images.float().unfold(2, kh, 1).unfold(3, kw, 1)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, channels * kh * kw)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = eigenvectors.T.reshape(-1, channels, kh, kw) / torch.sqrt(eigenvalues + eps).view(-1, 1, 1, 1)
        self.whiten.weight.copy_(torch.cat([filters, -filters]).to(self.whiten.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.whiten(x))
        x = self.groups(x)
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        return self.head(x) * self.output_scale
