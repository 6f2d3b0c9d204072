"""Building blocks shared by the networks in this package."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

# The nonlinearities a network may be built with (`activation` in the training configuration).
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"gelu": F.gelu, "silu": F.silu, "relu": F.relu}


class Network(nn.Module):
    """A classifier that tells the trainer which role each parameter plays.

    Optimisers treat roles differently (the fast recipe updates conv filters
    with Muon and everything else with SGD), so the split lives with the
    network that knows its own layers rather than in name-matching heuristics.
    """

    head: nn.Module

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by role: filters, head, norm, and optionally whiten."""
        head_ids = {id(p) for p in self.head.parameters()}
        roles: dict[str, list[nn.Parameter]] = {"filters": [], "head": [], "norm": []}
        for p in self.parameters():
            if not p.requires_grad:
                continue
            if id(p) in head_ids:
                roles["head"].append(p)
            elif p.ndim == 4:
                roles["filters"].append(p)
            else:
                roles["norm"].append(p)
        return roles

    def prepare(self, train_images: torch.Tensor) -> None:
        """Data-dependent initialisation from normalised training images; none by default."""


class FrozenScaleBatchNorm(nn.BatchNorm2d):
    """BatchNorm with a learned shift but a scale fixed at one.

    A learned scale adds little after a ReLU/GELU network's next conv can absorb
    it, and freezing it removes a parameter group the optimiser must tune.
    """

    def __init__(self, channels: int, momentum: float = 0.4, eps: float = 1e-12):
        super().__init__(channels, eps=eps, momentum=momentum)
        self.weight.requires_grad_(False)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
