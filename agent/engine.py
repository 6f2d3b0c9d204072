"""W&B's open-source sweep engine (`sweeps`), imported once and quietly.

The package declares a pydantic-v1 style config, which pydantic 2 warns about on
import; that warning says nothing to a user running `sweep`, so it is silenced here.
"""

from __future__ import annotations

import warnings
from types import ModuleType


def sweep_engine() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sweeps
        import sweeps.bayes_search  # next_run imports these on first use; a claim should not pay for that
        import sweeps.config
        import sweeps.grid_search
        import sweeps.hyperband_stopping
        import sweeps.params
        import sweeps.random_search
    return sweeps
