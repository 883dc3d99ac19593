"""The encoder (CIFAR ResNet-18 with a width multiplier) and the paper's projection head.

Example:
    >>> import torch
    >>> model = ContrastiveModel(width=0.25, head_hidden=64, head_layers=3, head_out=32)
    >>> features, z = model(torch.zeros(2, 3, 32, 32))
    >>> features.shape, z.shape
    (torch.Size([2, 128]), torch.Size([2, 32]))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anobench.errors import ConfigError


class BasicBlock(nn.Module):
    """The two-convolution residual block of ResNet-18."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet18(nn.Module):
    """ResNet-18 for 32x32 inputs: 3x3 stem, no max-pool, global average pool.

    Args:
        width: Channel multiplier; 1.0 gives the standard 64-128-256-512 stages and a
            512-d feature.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        if width <= 0:
            raise ConfigError(f"width must be > 0, got {width}")
        planes = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
        self.stem = nn.Sequential(
            nn.Conv2d(3, planes[0], 3, 1, 1, bias=False), nn.BatchNorm2d(planes[0]), nn.ReLU()
        )
        layers: list[nn.Module] = []
        in_planes = planes[0]
        for stage, p in enumerate(planes):
            stride = 1 if stage == 0 else 2
            layers += [BasicBlock(in_planes, p, stride), BasicBlock(p, p, 1)]
            in_planes = p
        self.layers = nn.Sequential(*layers)
        self.feature_dim = planes[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1)


def projection_head(in_dim: int, hidden: int, out: int, layers: int) -> nn.Sequential:
    """The paper's head: bias-free linear layers, BatchNorm1d + ReLU after each but the last,
    which gets BatchNorm1d(affine=False).

    Args:
        in_dim: Encoder feature width.
        hidden: Width of the hidden layers (1024 in the paper).
        out: Output width (128 in the paper).
        layers: Number of linear layers (8 in the paper), at least 1.
    """
    if layers < 1:
        raise ConfigError(f"head_layers must be >= 1, got {layers}")
    dims = [in_dim] + [hidden] * (layers - 1) + [out]
    modules: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        modules.append(nn.Linear(a, b, bias=False))
        last = i == layers - 1
        modules.append(nn.BatchNorm1d(b, affine=not last))
        if not last:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


class ContrastiveModel(nn.Module):
    """Encoder f plus projection head g; returns (f(x), g(f(x)) / ||g(f(x))||).

    Args:
        width: Encoder width multiplier.
        head_hidden: Hidden width of the projection head.
        head_layers: Number of linear layers of the head.
        head_out: Output width of the head.
    """

    def __init__(self, width: float, head_hidden: int, head_layers: int, head_out: int) -> None:
        super().__init__()
        self.encoder = CifarResNet18(width)
        self.head = projection_head(self.encoder.feature_dim, head_hidden, head_out, head_layers)

    @property
    def feature_dim(self) -> int:
        """Width of the encoder features f(x)."""
        return self.encoder.feature_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder(x)
        z = F.normalize(self.head(features).float(), dim=1)
        return features, z
