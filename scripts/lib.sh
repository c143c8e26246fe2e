# Shared by the measurement scripts (sourced, not run): the walship binary,
# nodes started on loopback ports and stopped at exit, and timing.
#
# Needs OUT set; WALSHIP names the binary (default: built from this
# checkout into $OUT).
if [ -z "${WALSHIP:-}" ]; then
	WALSHIP=$OUT/walship
	go build -o "$WALSHIP" ./cmd/walship
fi
W=$WALSHIP
PIDS=()
trap 'for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done' EXIT

waitready() { for _ in $(seq 1 600); do curl -sf "$1/readyz?noleader" >/dev/null && return 0; sleep 0.05; done; echo "$1 not ready" >&2; return 1; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
# start ROLE PORT DATA ARGS...: starts a node in the background, sets PID.
start() {
	local role=$1 port=$2 data=$3
	shift 3
	"$W" "$role" --addr "127.0.0.1:$port" --data "$data" "$@" >"$data.log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	waitready "http://127.0.0.1:$port"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
