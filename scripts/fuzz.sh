#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20), starting from and adding to the kept
# corpus in fuzz/corpus/TARGET. Fails on the first crash, leak or out-of-memory and shows it.
#   scripts/fuzz.sh [SECONDS] [--minimize]
#   --minimize: afterwards merge each corpus down to the inputs that add coverage (cmin), so
#               the committed corpora stay small.
# The long runs behind docs/PERFORMANCE.md ("Fuzzing") used SECONDS=240.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
minimize="${2:-}"
nightly=$(cargo xtask nightly)
mkdir -p target
for target in $(cd fuzz && cargo "+$nightly" fuzz list); do
  log="target/fuzz-$target.log"
  mkdir -p "fuzz/corpus/$target"
  (cd fuzz && cargo "+$nightly" fuzz run "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=1024 -malloc_limit_mb=1024) > "$log" 2>&1 \
    || { tail -40 "$log"; echo "fuzz target $target failed (input kept in fuzz/artifacts/$target)" >&2; exit 1; }
  echo "fuzz $target: $(grep -E '^Done [0-9]+ runs' "$log" || tail -1 "$log"), corpus $(ls "fuzz/corpus/$target" | wc -l) inputs"
  if [ "$minimize" = "--minimize" ]; then
    (cd fuzz && cargo "+$nightly" fuzz cmin "$target" "corpus/$target") > "target/fuzz-cmin-$target.log" 2>&1 \
      || { tail -20 "target/fuzz-cmin-$target.log"; exit 1; }
    echo "fuzz $target: minimized to $(ls "fuzz/corpus/$target" | wc -l) inputs"
  fi
done
