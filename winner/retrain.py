"""`sweep train --from ID`: a finished run's whole configuration, with overrides, for one more run.

The usual case is the sweep's winner trained again on all 50,000 training images
(`--set val_size=0`): the validation images were only held out to choose it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from winner.errors import WinnerError
from winner.source import Origin, StoreFactory, find_run, full_config

if TYPE_CHECKING:
    from train import TrainConfig


class DerivedConfig(BaseModel):
    """The config to train and the run it came from (written into the result as `derived_from`)."""

    values: dict[str, Any]  # the run's full config with the overrides on top
    derived_from: Origin
    overridden: dict[str, Any]  # only the keys the overrides changed, with their new values

    def config(self) -> TrainConfig:
        from train import TrainConfig

        return TrainConfig.resolve(self.values)


def derive_config(ident: str, overrides: dict[str, Any], open_store: StoreFactory) -> DerivedConfig:
    """The run's (or the sweep's best finished run's) full config, `overrides` on top.

    The base is the config the run actually trained with (its result's `config`), so a later
    change to a model's recipe does not change what "the same run" means.
    """
    store = open_store()
    try:
        run, origin = find_run(store, ident)
    finally:
        store.close()
    base = run.summary.get("config") or full_config(run.config)
    if not isinstance(base, dict):
        raise WinnerError(f"run {run.id}: its stored config is not a mapping")
    values = {**base, **overrides}
    changed = {key: value for key, value in overrides.items() if base.get(key) != value}
    return DerivedConfig(values=values, derived_from=origin, overridden=changed)
