#!/usr/bin/env bash
# The cost of slaves keeping the log (each entry fsynced in the slave's own
# log before it is applied) and of the write concern: a master and two
# slaves on this machine, 64 clients writing at the master.
#
#   scripts/bench-replication.sh [OLD_BINARY]
#
# With OLD_BINARY (a walship built before slaves kept the log), the same
# load runs against it first, in the same run, for the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(mktemp -d)
. scripts/lib.sh
OLD=${1:-}
D=${DURATION:-15s}

run() { # run LABEL BINARY BENCH-ARGS...
	local label=$1 bin=$2
	shift 2
	local dir=$OUT/$label
	mkdir -p "$dir"
	W=$bin
	start master 18480 "$dir/m"
	local m=$PID
	start slave 18481 "$dir/s1" --id 1 --master http://127.0.0.1:18480
	local s1=$PID
	start slave 18482 "$dir/s2" --id 2 --master http://127.0.0.1:18480
	local s2=$PID
	echo "== $label"
	"$bin" bench write --url http://127.0.0.1:18480 -c 64 --duration "$D" "$@" | grep -v '^\s*$' | sed -n '1,4p'
	"$bin" bench lag --url http://127.0.0.1:18480 -c 64 --duration "$D" | grep -v '^\s*$'
	stop "$s2"
	stop "$s1"
	stop "$m"
	W=$WALSHIP
}

if [ -n "$OLD" ]; then
	run "before: slaves without a log" "$OLD"
fi
run "slaves keep the log" "$WALSHIP"
run "slaves keep the log, w=1" "$WALSHIP" -w 1
run "slaves keep the log, w=1&applied" "$WALSHIP" -w 1 --applied
