"""'did you mean ...?' for a misspelt or foreign setting name (`learning_rate` -> `lr`)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# What other tools call our settings. difflib alone cannot get there: 'learning_rate' and 'lr' share
# two letters of fifteen. Keys are compared lower-case with '-' read as '_'.
ALIASES = {
    "learning_rate": "lr", "learningrate": "lr", "base_lr": "lr", "max_lr": "lr", "peak_lr": "lr",
    "num_epochs": "epochs", "n_epochs": "epochs", "max_epochs": "epochs", "epoch": "epochs",
    "batch": "batch_size", "bs": "batch_size", "batchsize": "batch_size", "train_batch_size": "batch_size",
    "wd": "weight_decay", "decay": "weight_decay", "l2": "weight_decay",
    "optim": "optimizer", "optimiser": "optimizer", "opt": "optimizer",
    "scheduler": "schedule", "lr_schedule": "schedule", "lr_scheduler": "schedule",
    "clip": "grad_clip", "clip_grad_norm": "grad_clip", "max_grad_norm": "grad_clip",
    "gradient_clipping": "grad_clip", "grad_norm": "grad_clip",
    "arch": "model", "architecture": "model", "network": "model", "net": "model",
    "smoothing": "label_smoothing", "ls": "label_smoothing",
    "warmup_epochs": "warmup", "warmup_ratio": "warmup",
    "random_seed": "seed", "amp": "precision", "dtype": "precision",
}


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """The one valid name `name` most likely stands for, or None."""
    valid = list(choices)
    key = str(name).strip().lower().replace("-", "_")
    if key in valid:
        return key
    alias = ALIASES.get(key)
    if alias in valid:
        return alias
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.7)
    return close[0] if close else None


def unknown_name_hint(name: str, choices: Iterable[str], noun: str = "names") -> str:
    """'; did you mean 'lr'?' when one name fits, else the list of valid names."""
    valid = list(choices)
    guess = did_you_mean(name, valid)
    if guess is not None:
        return f"; did you mean '{guess}'?"
    return f"; valid {noun}: {', '.join(valid)}"
