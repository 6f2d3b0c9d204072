"""Where sweeps and runs live: the shared records, the storage interface and its backends."""
