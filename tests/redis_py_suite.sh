#!/usr/bin/env bash
# redis-py's own time-series tests, unpatched, against a fresh single tickdb node, in RESP2,
# RESP3 and redis-py's default protocol: tests/test_timeseries.py and tests/test_asyncio/test_timeseries.py of redis-py
# $REDIS_PY_VERSION (default 8.1.0).
#
# The tests come from redis-py's source distribution on PyPI, which ships its tests/ folder
# (the same files as the release tag in github.com/redis/redis-py); it is checked against a
# pinned SHA-256 and unpacked under $REDIS_PY_WORK, never into this repository. Needs python3
# with venv and pip, PyPI (or a mirror pip is configured for), and the release binary
# (`make build`).
#
#   tests/redis_py_suite.sh                      # or: make redis-py-suite
#   REDIS_PY_VERSION=8.2.0 REDIS_PY_SHA256= tests/redis_py_suite.sh   # another release, unchecked
#
# Prints each run's pytest summary with the reason of every skip and failure, then one line of
# totals; exits non-zero if any test failed or errored.
set -euo pipefail
cd "$(dirname "$0")/.."

version="${REDIS_PY_VERSION:-8.1.0}"
# sha256 of redis-8.1.0.tar.gz as PyPI serves it; set REDIS_PY_SHA256= to skip the check.
sha256="${REDIS_PY_SHA256-6e1a19beef9225c83efd689c7e6b7da2d5215b1f42cd13b7fc3714d0a09c7b25}"
work="${REDIS_PY_WORK:-${TMPDIR:-/tmp}/tickdb-redis-py-$version}"
tickdb="${TICKDB:-${CARGO_TARGET_DIR:-$HOME/.cache/tickdb-target}/release/tickdb}"
python="${PYTHON:-python3}"
# The test runner versions this suite was last run with (any recent pair works).
pytest_pins=(${REDIS_PY_PYTEST_PINS:-pytest==9.2.0 pytest-asyncio==1.5.0})
files=(tests/test_timeseries.py tests/test_asyncio/test_timeseries.py)

[[ -x "$tickdb" ]] || { echo "no tickdb binary at $tickdb: run make build" >&2; exit 2; }

src="$work/redis-$version"
venv="$work/venv"
if [[ ! -f "$src/tests/test_timeseries.py" || ! -x "$venv/bin/python" ]]; then
    mkdir -p "$work"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" download -q --no-binary :all: --no-deps -d "$work" "redis==$version"
    tarball="$work/redis-$version.tar.gz"
    if [[ -n "$sha256" ]]; then
        echo "$sha256  $tarball" | sha256sum -c --quiet -
    fi
    tar xzf "$tarball" -C "$work"
    "$venv/bin/pip" install -q "$src" "${pytest_pins[@]}"
fi

data=$(mktemp -d)
log="$data/tickdb.log"
# A port below the ephemeral range (32768-60999), which outgoing connections of tests running
# beside cannot take between this pick and the server's bind (tests/src/lib.rs, free_ports).
port=$("$venv/bin/python" -c '
import random, socket
while True:
    p = random.randrange(10000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        s.close()
')
"$tickdb" --port "$port" --zmq-port 0 --data-dir "$data/node" >"$log" 2>&1 &
pid=$!
stop() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$data"
}
trap stop EXIT
for _ in $(seq 1 100); do
    if "$venv/bin/python" -c "import redis; redis.Redis(port=$port).ping()" 2>/dev/null; then
        break
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "tickdb exited" >&2; exit 2; }
    sleep 0.1
done

url="redis://127.0.0.1:$port"
echo "redis-py $version ($src) against tickdb on $url"
failed=0
totals=()
# RESP2, RESP3, and redis-py's default (no --protocol: the client picks; from 8.2 that is
# RESP3 with RESP2-shaped results, and some tests expect exactly that).
for protocol in 2 3 default; do
    opt=(--protocol="$protocol")
    [[ $protocol == default ]] && opt=()
    for file in "${files[@]}"; do
        echo
        echo "=== $file, protocol $protocol"
        out=$(cd "$src" && "$venv/bin/python" -m pytest "$file" --redis-url="$url" \
            --redis-mod-url="$url" "${opt[@]}" -q -rfEs -p no:cacheprovider \
            -W ignore 2>&1) || failed=1
        # The short summary (every skip, failure and error with its reason) and the counts.
        echo "$out" | grep -E '^(SKIPPED|FAILED|ERROR) |[0-9]+ (passed|failed|skipped|error)' || true
        totals+=("protocol $protocol, $file: $(echo "$out" | grep -E '[0-9]+ (passed|failed|error)' | tail -1)")
    done
done
echo
printf '%s\n' "${totals[@]}"
if [[ $failed -ne 0 ]]; then
    echo "redis-py suite: FAILED (tickdb log: kept below)"
    tail -50 "$log"
    exit 1
fi
echo "redis-py suite: passed"
