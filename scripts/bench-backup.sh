#!/usr/bin/env bash
# Measures backups and restores (BENCHMARKS.md, "Backup and restore"): real
# walship processes on loopback ports 18200-18299, data under $OUT.
#
#   scripts/bench-backup.sh backup-writes   a 1 GB database: writes/s at 64 clients without and with backups back to back
#   scripts/bench-backup.sh restore         walship restore of a 1 GB SQLite file, and a slave's bootstrap to it
#
# Environment: WALSHIP (the binary; default: built from this checkout),
# OUT (default /tmp/walship-backup), ROWS (rows of 1,000 bytes in the big
# database, default 1,000,000: about 1 GB), SECS (seconds of each write
# run, default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/walship-backup}
ROWS=${ROWS:-1000000}
SECS=${SECS:-20}
mkdir -p "$OUT"
. scripts/lib.sh
# bigdb FILE: a SQLite file of $ROWS rows of 1,000 random bytes, made by sqlite3.
bigdb() {
	[ -f "$1" ] && return 0
	sqlite3 "$1.tmp" "CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB);
		WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $ROWS)
		INSERT INTO big (b) SELECT randomblob(1000) FROM c;"
	mv "$1.tmp" "$1"
}

case "${1:-}" in
backup-writes)
	bigdb "$OUT/big.sqlite"
	rm -rf "$OUT/m"
	start master 18200 "$OUT/m"
	"$W" restore --node http://127.0.0.1:18200 "$OUT/big.sqlite"
	du -b "$OUT/m/db.sqlite"
	"$W" bench write --url http://127.0.0.1:18200 -c 64 --count 20000 >/dev/null 2>&1
	# Each round: writes alone, then writes while backups are taken back
	# to back, saved to a file on the same disk, then to /dev/null (a
	# backup client on another machine costs this one only the sending).
	for round in 1 2; do
		for to in none file null; do
			[ $to = none ] && { "$W" bench write --url http://127.0.0.1:18200 -c 64 --duration "${SECS}s" 2>/dev/null | grep "walship " | sed "s/^/round $round, without backups: /"; continue; }
			dest=$OUT/backup.sqlite
			[ $to = null ] && dest=/dev/null
			(while [ ! -f "$OUT/stop" ]; do
				s=$(now)
				curl -sf -o "$dest" http://127.0.0.1:18200/db/backup || { echo "backup failed"; break; }
				[ -f "$OUT/stop" ] || echo "round $round: a backup to $to in $(since "$s") s"
			done) &
			loop=$!
			"$W" bench write --url http://127.0.0.1:18200 -c 64 --duration "${SECS}s" 2>/dev/null | grep "walship " | sed "s/^/round $round, backups to $to: /"
			touch "$OUT/stop"
			wait $loop
			rm -f "$OUT/stop" "$OUT/backup.sqlite"
		done
	done
	stop "$PID"
	;;
restore)
	bigdb "$OUT/big.sqlite"
	rm -rf "$OUT/r" "$OUT/rs"
	start master 18210 "$OUT/r"
	start slave 18211 "$OUT/rs" --id 1 --master http://127.0.0.1:18210
	s=$(now)
	"$W" restore --node http://127.0.0.1:18210 "$OUT/big.sqlite"
	echo "restore: $(since "$s") s"
	last=$(curl -s http://127.0.0.1:18210/log/status | sed -n 's/.*"last_index":\([0-9]*\).*/\1/p')
	until [ "$(curl -s http://127.0.0.1:18211/log/status | sed -n 's/.*"applied_index":\([0-9]*\).*/\1/p')" = "$last" ]; do sleep 0.05; done
	echo "restore and the slave's bootstrap to it: $(since "$s") s"
	;;
*)
	sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
