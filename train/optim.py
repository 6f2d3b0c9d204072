"""Optimisers and learning-rate schedules, built from a TrainConfig."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable

import torch
from torch import nn

from model.layers import Network
from train.config import TrainConfig

# Coefficients of the quintic Newton-Schulz iteration used by Muon (Jordan et al., 2024):
# chosen to push singular values towards one in very few steps, not to converge exactly.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


@functools.cache
def native_bf16(device: torch.device) -> bool:
    """Whether the device multiplies bf16 matrices in hardware; elsewhere bf16 is emulated, and on a
    CPU without it one Newton-Schulz pass in bf16 took 20x longer than in fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def ns_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of Muon's Newton-Schulz iteration: bf16 where it is native ("auto"), or as set."""
    if precision == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    return torch.bfloat16 if precision == "bf16" else torch.float32


def orthogonalize(matrix: torch.Tensor, steps: int = 3, eps: float = 1e-7,
                  dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """Approximately replace a matrix's singular values by ones (U S V^T -> U V^T)."""
    a, b, c = NS_COEFFICIENTS
    x = matrix.to(dtype)
    transposed = x.size(0) > x.size(1)
    if transposed:
        x = x.T
    x = x / (x.norm() + eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if transposed else x).to(matrix.dtype)


class Muon(torch.optim.Optimizer):
    """Momentum on conv filters with orthogonalised updates and weight renormalisation.

    torch.optim.Muon handles 2-D weights only; conv filters are flattened to
    (out, in*k*k) here. Each filter bank is rescaled to a fixed norm before its
    step (every `renorm_every` steps): BatchNorm follows every conv, so only the
    direction matters and the fixed norm keeps the effective step size constant
    without weight decay.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: float, momentum: float = 0.6,
                 nesterov: bool = True, ns_steps: int = 3, renorm_every: int = 1,
                 ns_precision: str = "auto") -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                                      renorm_every=renorm_every, ns_precision=ns_precision))

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                buffer = state.setdefault("momentum_buffer", torch.zeros_like(p.grad))
                buffer.mul_(group["momentum"]).add_(p.grad)
                grad = p.grad.add(buffer, alpha=group["momentum"]) if group["nesterov"] else buffer
                steps = state.get("steps", 0)
                if steps % group["renorm_every"] == 0:
                    p.mul_(math.sqrt(p.size(0)) / p.norm())
                state["steps"] = steps + 1
                dtype = ns_dtype(group["ns_precision"], p.device)
                update = orthogonalize(grad.reshape(len(grad), -1), group["ns_steps"], dtype=dtype).view_as(p)
                p.add_(update, alpha=-group["lr"])


def build_optimizers(model: Network, config: TrainConfig) -> list[torch.optim.Optimizer]:
    """One optimiser, or two with muon (Muon for filters, Nesterov SGD for the rest)."""
    roles = model.parameter_roles()
    scales = {"filters": 1.0, "head": config.head_lr_scale, "norm": config.bias_lr_scale,
              "whiten": config.bias_lr_scale}
    groups = [{"params": params, "lr": config.lr * scales[role], "role": role}
              for role, params in roles.items() if params]
    if config.optimizer == "muon":
        muon_groups = [g for g in groups if g["role"] == "filters"]
        other = [g for g in groups if g["role"] != "filters"]
        for group in other:
            # Weight decay is given as a per-step shrink at peak rate; torch multiplies it by lr.
            group["weight_decay"] = config.weight_decay / group["lr"]
        optimizers: list[torch.optim.Optimizer] = [Muon(muon_groups, lr=config.lr, momentum=config.muon_momentum,
                                                        ns_steps=config.muon_ns_steps,
                                                        renorm_every=config.muon_renorm_every,
                                                        ns_precision=config.muon_ns_precision)]
        if other:
            optimizers.append(torch.optim.SGD(other, lr=config.lr, momentum=config.momentum, nesterov=True))
        return optimizers
    if config.optimizer in ("sgd", "nesterov"):
        return [torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                                nesterov=config.optimizer == "nesterov", weight_decay=config.weight_decay)]
    adam = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return [adam(groups, lr=config.lr, betas=(config.momentum, 0.999), weight_decay=config.weight_decay)]


def lr_factor(config: TrainConfig, step: int, total_steps: int) -> float:
    """Multiplier of the peak rate at `step` for the linear and constant schedules."""
    if config.schedule == "constant":
        return 1.0
    warmup_steps = round(config.warmup * total_steps)
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 1.0 - (1.0 - config.final_lr) * min(1.0, progress)


def build_schedulers(optimizers: list[torch.optim.Optimizer], config: TrainConfig, total_steps: int,
                     whiten_steps: int) -> list[torch.optim.lr_scheduler.LRScheduler]:
    """One scheduler per optimiser. The whitening bias decays to zero over its own steps."""
    schedulers: list[torch.optim.lr_scheduler.LRScheduler] = []
    for optimizer in optimizers:
        if config.schedule == "onecycle":
            schedulers.append(torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total_steps,
                pct_start=max(config.warmup, 1e-6),
                # Cycle momentum as torch does for SGD (the paper's setting); Muon keeps its own.
                cycle_momentum=isinstance(optimizer, torch.optim.SGD)))
            continue

        def whiten_factor(step: int) -> float:
            return max(0.0, 1.0 - step / whiten_steps) if whiten_steps else 0.0

        def main_factor(step: int) -> float:
            return lr_factor(config, step, total_steps)

        factors = [whiten_factor if g.get("role") == "whiten" else main_factor for g in optimizer.param_groups]
        schedulers.append(torch.optim.lr_scheduler.LambdaLR(optimizer, factors))
    return schedulers


def clip_gradients(model: nn.Module, max_norm: float) -> None:
    if max_norm > 0:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], max_norm)


class Lookahead:
    """Every `every` steps, pull the network's floating-point state towards a running average of it
    and continue from the average (the lookahead of the airbench94 record).

    The average's weight grows with the cube of training progress, so it smooths the late,
    low-learning-rate steps and leaves the early ones alone; `finish` ends the run on the average.
    """

    def __init__(self, model: nn.Module, every: int, decay: float, total_steps: int) -> None:
        self.model, self.every, self.decay, self.total_steps = model, every, decay, total_steps
        self.average = {name: value.detach().clone() for name, value in self._floating(model).items()}

    @staticmethod
    def _floating(model: nn.Module) -> dict[str, torch.Tensor]:
        return {name: value for name, value in model.state_dict().items() if value.is_floating_point()}

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        """Called with the number of steps taken so far."""
        if step % self.every == 0:
            self._pull(self.decay ** self.every * (step / self.total_steps) ** 3)

    @torch.no_grad()
    def finish(self) -> None:
        self._pull(1.0)

    def _pull(self, weight: float) -> None:
        for name, value in self._floating(self.model).items():
            average = self.average[name]
            average.lerp_(value, 1 - weight)
            value.copy_(average)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.average

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, value in state.items():
            self.average[name].copy_(value)
