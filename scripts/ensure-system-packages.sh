#!/usr/bin/env bash
# The test suite needs two Debian packages: chromium (browser tests) and postgresql (the PostgreSQL
# store's tests start a throwaway server from its binaries). Install whichever is missing.
# Without root or sudo (or apt) we only warn: those tests skip themselves, except under CI=true,
# where a missing server fails the suite instead.
set -euo pipefail

missing=()
command -v chromium >/dev/null || missing+=(chromium)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null || missing+=(postgresql)
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "warning: ${missing[*]} missing and there is no apt-get; their tests will be skipped" >&2
  exit 0
fi
if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  echo "warning: ${missing[*]} missing and installing needs root or sudo; their tests will be skipped" >&2
  exit 0
fi
echo "installing ${missing[*]} with apt-get"
"${as_root[@]}" apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
