#!/usr/bin/env bash
# Runs every cargo-fuzz target briefly: about a minute in all. Needs the nightly toolchain.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
total=${FUZZ_SECONDS:-60}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
targets=$(cargo fuzz list)
n=$(echo "$targets" | wc -w)
per=$(( total / (n > 0 ? n : 1) ))
[ "$per" -lt 10 ] && per=10
# Fuzz builds use their own target directory: they need nightly and sanitizer flags.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/tickdb-fuzz-target}"
for t in $targets; do
  echo "fuzzing $t for ${per}s"
  cargo +nightly fuzz run "$t" -- -max_total_time="$per" -print_final_stats=0 >"/tmp/fuzz-$t.log" 2>&1 || {
    tail -50 "/tmp/fuzz-$t.log"; echo "fuzz target $t failed" >&2; exit 1; }
  grep -E "^(#[0-9]+|Done)" "/tmp/fuzz-$t.log" | tail -1
done
