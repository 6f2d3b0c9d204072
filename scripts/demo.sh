#!/usr/bin/env bash
# The main job end to end: create the smoke sweep, run one agent until it is done, write the report.
# `make demo` runs this with .venv/bin first on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

sweep_file=${DEMO_SWEEP:-sweeps/smoke.yaml}
out=${DEMO_OUT:-out/demo}

# Data: $SWEEP_DATA_DIR if set, else the checkout's sibling ../shared/data when it holds CIFAR-10
# (as on our CI machines), else `sweep data` downloads it into the user cache.
if [[ -z ${SWEEP_DATA_DIR:-} && -d ../shared/data/cifar-10-batches-py ]]; then
  SWEEP_DATA_DIR=$(cd ../shared/data && pwd)
  export SWEEP_DATA_DIR
fi
echo "data: ${SWEEP_DATA_DIR:-download into the user cache}"
sweep data  # checks (or downloads) CIFAR-10 before anything is created in the store

id=$(sweep create "$sweep_file" --json | python -c 'import json, sys; print(json.load(sys.stdin)["id"])')
echo "sweep $id created from $sweep_file"
sweep agent "$id"
sweep report "$id" --out "$out"
if [[ ! -f $out/report.html ]]; then
  echo "error: sweep report wrote no $out/report.html" >&2
  exit 1
fi
echo "report written: $out/report.html"
