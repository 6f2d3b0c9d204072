"""W&B sweep-file keys that this tool treats its own way: `program`/`command` (refused), `project`/`entity`.

`program:` and `command:` tell W&B's agent which script to start. Here every run calls the
built-in training function in-process (that is how it records each epoch, checkpoints under a
lease and resumes on another machine), so a script named there would silently not run: the file
is refused with one line instead. A different training function plugs in by name
(`SWEEP_TRAIN_FN=module:function`, see docs/sweep-files.md).
"""

from __future__ import annotations

from typing import Any

from agent.sweep_config import SweepConfigError

FOREIGN_KEYS = ("program", "command")


def check_runnable(config: dict[str, Any], source: str) -> None:
    """Refuse keys that ask for something this tool does not do."""
    for key in FOREIGN_KEYS:
        if key in config:
            raise SweepConfigError(
                f"{source}: '{key}: {_short(config[key])}' is not run here: each run calls the built-in training "
                f"function (train.train) with its parameters; delete '{key}:', or plug in your own function "
                f"with SWEEP_TRAIN_FN=module:function (docs/sweep-files.md)")


def with_wandb_names(config: dict[str, Any], project: str | None, entity: str | None) -> dict[str, Any]:
    """The sweep's config with --project/--entity applied: every run's W&B offline run is filed under them,
    so `wandb sync` uploads it there. Given options win over the file's own keys."""
    named = dict(config)
    if project:
        named["project"] = project
    if entity:
        named["entity"] = entity
    return named


def _short(value: Any) -> str:
    text = " ".join(value) if isinstance(value, list) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
