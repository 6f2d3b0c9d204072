"""A training process stand-in: writes epochs of a leased run through the store, as an agent does.

    python tests/dashboard_writer.py HOME LEASE_JSON EPOCHS(1,2,...) new|same

Prints `written <unix time>` once every write has committed (and `new <run id>` for a new run).
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from dashboard_runs import add_epochs, epoch_metrics, open_store, start_run  # noqa: E402
from store.protocol import Lease  # noqa: E402


def main() -> None:
    home, lease_json, epochs, mode = sys.argv[1:5]
    store = open_store(Path(home))
    lease = Lease(**json.loads(lease_json))
    rng = random.Random(7)
    add_epochs(store, lease, [epoch_metrics(int(n), 0.2, rng) for n in epochs.split(",")])
    if mode == "new":
        fresh = start_run(store, lease.sweep_id, {"lr": 0.05, "optimizer": "sgd", "epochs": 30}, owner="writer@box:2")
        add_epochs(store, fresh, [epoch_metrics(1, 0.05, rng)])
        print(f"new {fresh.run_id}", flush=True)
    print(f"written {time.time()}", flush=True)
    store.close()


if __name__ == "__main__":
    main()
