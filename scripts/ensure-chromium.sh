#!/usr/bin/env bash
# The HTML-report browser test needs Debian's chromium: install it when it is missing.
# Without root or sudo (or apt) we only warn, and that test skips itself.
set -euo pipefail

if command -v chromium >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "warning: chromium is missing and there is no apt-get; the browser test will be skipped" >&2
  exit 0
fi
if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  echo "warning: chromium is missing and installing it needs root or sudo; the browser test will be skipped" >&2
  exit 0
fi
echo "installing chromium with apt-get"
"${as_root[@]}" apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
