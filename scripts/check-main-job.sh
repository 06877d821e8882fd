#!/usr/bin/env bash
# CI's check of the README's main job, as a newcomer runs it: on a fresh HOME (no caches of ours: the Kafka
# jars, the Triton binary and the stack's state are fetched and made again), it must end with search results,
# a good match among them, and no traceback. The stack it started is stopped whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
fresh=$(mktemp -d)
log="$fresh/main-job.log"
trap 'HOME="$fresh" .venv/bin/clipstream stack down >/dev/null 2>&1 || true' EXIT
started=$(date +%s)
# the README's main-job command, verbatim
HOME="$fresh" COLUMNS=200 bash -c './scripts/bootstrap.sh && .venv/bin/clipstream demo' 2>&1 | tee "$log"
echo "main job: $(($(date +%s) - started)) s on a fresh HOME"
grep -q "a good match" "$log" || { echo "main job: no good match in its results" >&2; exit 1; }
if grep -q "Traceback" "$log"; then echo "main job: a traceback in its output" >&2; exit 1; fi
