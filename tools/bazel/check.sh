#!/usr/bin/env bash
# Offline Bazel check: list every target, build them all, run a fast test through Bazel.
#   tools/bazel/check.sh [TEST_TARGET...]     (default: //tools/bazel:selftest; `bazel test //...` runs every test)
# Needs only Bazel 4.2.x (Debian: apt-get install bazel-bootstrap) and the python3 on PATH; no network.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if ! command -v bazel >/dev/null 2>&1; then
  echo "check.sh: bazel is not on PATH (Debian: apt-get install bazel-bootstrap)" >&2
  exit 1
fi

targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(//tools/bazel:selftest)
fi

bazel query //... --noshow_progress
bazel build //... --noshow_progress
bazel test "${targets[@]}" --noshow_progress
