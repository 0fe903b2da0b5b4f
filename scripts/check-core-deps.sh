#!/usr/bin/env bash
# The core is sans-IO: its dependency tree must not contain an I/O runtime, a socket library or
# a storage engine, and its source must not read clocks, OS randomness or spawn threads.
set -euo pipefail
cd "$(dirname "$0")/.."
forbidden='^(tokio|tokio-util|mio|socket2|zeromq|rocksdb|librocksdb-sys|turmoil|async-std) '
tree=$(cargo tree -p tickdb-core -e normal,build --prefix none --no-dedupe --quiet)
if bad=$(echo "$tree" | grep -E "$forbidden" | sort -u) && [ -n "$bad" ]; then
  echo "tickdb-core depends on I/O crates:" >&2
  echo "$bad" >&2
  exit 1
fi
if hits=$(grep -rnE 'Instant::now|SystemTime::now|thread_rng|rand::random|thread::spawn|tokio::|OsRng|getrandom' core/src) ; then
  echo "tickdb-core reads a clock, OS randomness or spawns threads:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "core dependency direction: ok ($(echo "$tree" | sort -u | wc -l) crates, none of them I/O)"
