"""The source paper's network: ResNet-9 with its last stage widened to 428 channels.

Layer table (3x3 convs with bias, each followed by BatchNorm and ReLU, or the configured activation):

| stage      | layer                      | output      | parameters |
|------------|----------------------------|-------------|-----------:|
| prep       | conv 3->64                 | 64x32x32    |      1,920 |
| layer1     | conv 64->128, maxpool 2    | 128x16x16   |     74,112 |
| res1       | 2 x conv 128->128 (+skip)  | 128x16x16   |    295,680 |
| layer2     | conv 128->256, maxpool 2   | 256x8x8     |    295,680 |
| layer3     | conv 256->428, maxpool 2   | 428x4x4     |    987,396 |
| res2       | 2 x conv 428->428 (+skip)  | 428x4x4     |  3,299,880 |
| classifier | global max pool, 428->10   | 10          |      4,290 |
| total      |                            |             |  4,958,958 |

The total equals the paper's 4,958,958 exactly (conv biases included; without
them it would be 4,956,970).
"""

from __future__ import annotations

import torch
from torch import nn

from model.layers import Network


ACTIVATION_MODULES = {"relu": lambda: nn.ReLU(inplace=True), "gelu": nn.GELU, "silu": lambda: nn.SiLU(inplace=True)}


def conv_bn_relu(channels_in: int, channels_out: int, pool: bool = False, activation: str = "relu",
                 bn_momentum: float = 0.1) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(channels_in, channels_out, kernel_size=3, padding=1),
        nn.BatchNorm2d(channels_out, momentum=bn_momentum),
        ACTIVATION_MODULES[activation](),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    def __init__(self, channels: int, activation: str = "relu", bn_momentum: float = 0.1):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(channels, channels, False, activation, bn_momentum),
                                  conv_bn_relu(channels, channels, False, activation, bn_momentum))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(Network):
    def __init__(self, num_classes: int = 10, last_width: int = 428, activation: str = "relu",
                 bn_momentum: float = 0.1):
        super().__init__()
        options = {"activation": activation, "bn_momentum": bn_momentum}
        self.features = nn.Sequential(
            conv_bn_relu(3, 64, **options),
            conv_bn_relu(64, 128, pool=True, **options),
            Residual(128, **options),
            conv_bn_relu(128, 256, pool=True, **options),
            conv_bn_relu(256, last_width, pool=True, **options),
            Residual(last_width, **options),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(last_width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
