"""Agent defaults, in a module light enough for the CLI to import before parsing arguments."""

DEFAULT_LEASE_S = 60.0  # a run with no heartbeat for this long is offered again; beats come every quarter
DEFAULT_MAX_CONSECUTIVE_FAILURES = 3  # then the agent stops itself instead of draining the queue (W&B #5088)
TRAIN_FN_ENV = "SWEEP_TRAIN_FN"  # module:function replacing train.train (tests, benchmarks)
