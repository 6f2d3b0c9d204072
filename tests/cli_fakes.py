"""Training functions for the CLI tests, importable by agent subprocesses (SWEEP_TRAIN_FN=cli_fakes:...)."""

from __future__ import annotations

from typing import Any

FAILING_LR = 1.0


def fails_at_lr_1(config: Any, callbacks: Any = (), **kwargs: Any) -> Any:
    """The real training function, except that a run with lr=1.0 dies before its first epoch."""
    if config.lr == FAILING_LR:
        raise RuntimeError(f"simulated failure: the box rejects lr={config.lr}")
    from train import train

    return train(config, callbacks, **kwargs)
