#!/usr/bin/env bash
# Offline demo: serve the seed-model replicas on a local hub replica (on a free port), then pull,
# verify and load-check one, and place it where transformers finds it by repo id.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/weightsafe ] || { python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e '.[load]'; }
work=$(mktemp -d)
.venv/bin/python tests/hub_server.py --port 0 --manifests-out "$work/manifests" >"$work/hub.log" 2>&1 &
hub=$!
trap 'kill $hub 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 200); do grep -q "^hub " "$work/hub.log" 2>/dev/null && break; sleep 0.1; done
url=$(awk '/^hub /{print $2; exit}' "$work/hub.log")
[ -n "$url" ] || { echo "demo: the hub replica did not start:" >&2; cat "$work/hub.log" >&2; exit 1; }
export HF_ENDPOINT=$url WEIGHTSAFE_MANIFEST_PATH="$work/manifests" WEIGHTSAFE_CACHE="$work/cache" HF_HOME="$work/hf"
model=${1:-codefuse-34b}
echo "== hub replica at $url"
.venv/bin/weightsafe pull "$model" --hf-cache
.venv/bin/weightsafe verify "$model" --full
.venv/bin/weightsafe check "$model"
.venv/bin/weightsafe cache ls
