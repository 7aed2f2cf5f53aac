#!/usr/bin/env bash
# Offline demo: serve the seed-model replicas on a local hub replica, then pull, verify and check one.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/weightsafe ] || { python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e '.[load]'; }
work=$(mktemp -d)
.venv/bin/python tests/hub_server.py --port 18080 --manifests-out "$work/manifests" >"$work/hub.log" 2>&1 &
hub=$!
trap 'kill $hub 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q "^hub " "$work/hub.log" 2>/dev/null && break; sleep 0.1; done
export HF_ENDPOINT=http://127.0.0.1:18080 WEIGHTSAFE_MANIFEST_PATH="$work/manifests" WEIGHTSAFE_CACHE="$work/cache"
.venv/bin/weightsafe pull "${1:-codefuse-34b}"
.venv/bin/weightsafe verify "${1:-codefuse-34b}" --full
