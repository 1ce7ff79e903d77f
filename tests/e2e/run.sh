#!/bin/sh
# Runs end-to-end test files with node's built-in test runner: tests/e2e/run.sh FILE...
# Exits 77 (ctest's SKIP_RETURN_CODE) when Node.js or the npm client packages are not installed.
# Environment: LOOM_BINARY (the loom executable), LOOM_NODE_MODULES (default: the repository's node_modules).
here=$(cd "$(dirname "$0")" && pwd)
node_modules=${LOOM_NODE_MODULES:-$here/../../node_modules}
if ! command -v node >/dev/null 2>&1; then
  echo "e2e: node not found; skipping"
  exit 77
fi
for package in openai @anthropic-ai/sdk; do
  if [ ! -f "$node_modules/$package/index.mjs" ]; then
    echo "e2e: $package not found in $node_modules (run scripts/setup); skipping"
    exit 77
  fi
done
export LOOM_NODE_MODULES="$node_modules"
exec node --test "$@"
