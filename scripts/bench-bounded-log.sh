#!/usr/bin/env bash
# Measures the bounded log (BENCHMARKS.md, "The bounded log"): real walship
# processes on loopback ports 18100-18199, data under $OUT.
#
#   scripts/bench-bounded-log.sh disk              log size after 2,000,000 writes with a retention of 100,000
#   scripts/bench-bounded-log.sh bootstrap         a new slave at 1,000,000 entries: replay, snapshot, cp
#   scripts/bench-bounded-log.sh line              replay vs snapshot for 10,000 to 1,000,000 entries
#   scripts/bench-bounded-log.sh snapshot-writes   writes/s at 64 clients with and without snapshots back to back
#   scripts/bench-bounded-log.sh compact-writes    writes/s at 64 clients with and without compaction
#
# Environment: WALSHIP (the binary; default: built from this checkout),
# OUT (default /tmp/walship-bounded-log), PAYLOAD (bytes of each row for
# bootstrap, default 200).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/walship-bounded-log}
mkdir -p "$OUT"
. scripts/lib.sh
field() { curl -s "$1/log/status" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"; }
# join PORT MASTER DATA ARGS...: time for a new slave to apply all the master has; prints seconds and peak RSS.
join() {
	local port=$1 master=$2 data=$3
	shift 3
	local last s pid
	last=$(field "$master" last_index)
	rm -rf "$data"
	s=$(now)
	"$W" slave --id 1 --addr "127.0.0.1:$port" --master "$master" --data "$data" "$@" >"$data.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	until [ "$(field "http://127.0.0.1:$port" applied_index 2>/dev/null)" = "$last" ]; do sleep 0.01; done
	echo "$(since "$s") s, peak RSS $(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status)"
	stop "$pid"
}

case "${1:-}" in
disk)
	rm -rf "$OUT/ref" "$OUT/d"
	start master 18100 "$OUT/ref" --log-retain-entries 0
	"$W" bench write --url http://127.0.0.1:18100 -c 64 --count 100000 2>/dev/null | grep "walship "
	echo "100,000 entries kept whole:"
	du -b "$OUT"/ref/log*.db "$OUT/ref/db.sqlite"
	stop "$PID"
	start master 18101 "$OUT/d" --log-retain-entries 100000 --log-compact-every 2s
	"$W" bench write --url http://127.0.0.1:18101 -c 64 --count 2000000 2>/dev/null | grep "walship "
	sleep 5 # two compaction rounds
	echo "2,000,000 entries with a retention of 100,000:"
	du -b "$OUT"/d/log*.db "$OUT/d/db.sqlite" "$OUT"/d/snapshots/*
	curl -s http://127.0.0.1:18101/log/status
	echo
	stop "$PID"
	;;
bootstrap)
	rm -rf "$OUT/b"
	start master 18110 "$OUT/b" --log-retain-entries 0
	"$W" bench write --url http://127.0.0.1:18110 -c 64 --count 1000000 --payload "${PAYLOAD:-200}" 2>/dev/null | grep "walship "
	du -b "$OUT/b/db.sqlite" "$OUT"/b/log*.db
	for i in 1 2 3; do
		s=$(now)
		cp "$OUT/b/db.sqlite" "$OUT/copy.sqlite"
		sync "$OUT/copy.sqlite"
		echo "cp + sync: $(since "$s") s"
		rm "$OUT/copy.sqlite"
	done
	for i in 1 2 3; do echo "replay: $(join 18111 http://127.0.0.1:18110 "$OUT/r" --join-from-snapshot 0)"; done
	stop "$PID"
	# The master compacts: a snapshot, and a log that no longer starts at 1.
	start master 18110 "$OUT/b" --log-retain-entries 1000 --log-compact-every 500ms
	until [ "$(field http://127.0.0.1:18110 first_index)" -gt 1 ]; do sleep 0.1; done
	grep "snapshot taken" "$OUT/b.log" | tail -1
	for i in 1 2 3; do echo "snapshot: $(join 18112 http://127.0.0.1:18110 "$OUT/s")"; done
	stop "$PID"
	;;
line)
	for payload in 0 200; do
		for n in 10000 30000 100000 300000 1000000; do
			rm -rf "$OUT/l"
			start master 18120 "$OUT/l" --log-retain-entries 0
			"$W" bench write --url http://127.0.0.1:18120 -c 64 --count $n --payload $payload >/dev/null 2>&1
			curl -s -o /dev/null "http://127.0.0.1:18120/db/snapshot?fresh"
			size=$(stat -c %s "$OUT/l/db.sqlite")
			for i in 1 2 3; do echo "payload $payload, $n entries, database $size bytes: replay $(join 18121 http://127.0.0.1:18120 "$OUT/ls" --join-from-snapshot 0)"; done
			for i in 1 2 3; do echo "payload $payload, $n entries, database $size bytes: snapshot $(join 18121 http://127.0.0.1:18120 "$OUT/ls" --join-from-snapshot 1)"; done
			stop "$PID"
		done
	done
	;;
snapshot-writes)
	# A database of about 250 MB (1,000,000 rows of 200 bytes), then 15 s of
	# writes without snapshots and 15 s with snapshots taken back to back.
	rm -rf "$OUT/w"
	start master 18130 "$OUT/w" --log-retain-entries 0 "${@:2}"
	"$W" bench write --url http://127.0.0.1:18130 -c 64 --count 1000000 --payload 200 >/dev/null 2>&1
	"$W" bench write --url http://127.0.0.1:18130 -c 64 --duration 15s 2>/dev/null | grep "walship " | sed 's/^/without: /'
	(while [ ! -f "$OUT/stop" ]; do curl -s -o /dev/null "http://127.0.0.1:18130/db/snapshot?fresh"; done) &
	loop=$!
	"$W" bench write --url http://127.0.0.1:18130 -c 64 --duration 15s 2>/dev/null | grep "walship " | sed 's/^/snapshots: /'
	touch "$OUT/stop"
	wait $loop
	rm -f "$OUT/stop"
	grep "snapshot taken" "$OUT/w.log" | tail -2
	stop "$PID"
	;;
compact-writes)
	for mode in without with without with; do
		rm -rf "$OUT/c"
		args=(--log-retain-entries 0)
		[ $mode = with ] && args=(--log-retain-entries 5000 --log-segment-size 256KiB --log-compact-every 100ms)
		start master 18140 "$OUT/c" "${args[@]}"
		"$W" bench write --url http://127.0.0.1:18140 -c 64 --count 100000 >/dev/null 2>&1
		"$W" bench write --url http://127.0.0.1:18140 -c 64 --duration 15s 2>/dev/null | grep "walship " | sed "s/^/$mode compaction: /"
		echo "  $(grep -c 'log compacted' "$OUT/c.log") compactions, $(grep -c 'snapshot taken' "$OUT/c.log") snapshots"
		stop "$PID"
	done
	;;
*)
	sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
