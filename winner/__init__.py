"""Using a sweep's winner: retrain its configuration, export it with its preprocessing, classify images."""
