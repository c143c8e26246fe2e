package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/db"
)

// pitrSize is the size of the point-in-time restore test: the entries of
// the history and the restores checked. WALSHIP_PITR_ENTRIES and
// WALSHIP_PITR_TARGETS set them (the figure in RELIABILITY.md is 100,000
// and 200); the defaults keep the test under a minute.
func pitrSize(t *testing.T) (entries, targets int) {
	t.Helper()
	entries, targets = 3000, 20
	for _, v := range []struct {
		name string
		n    *int
	}{{"WALSHIP_PITR_ENTRIES", &entries}, {"WALSHIP_PITR_TARGETS", &targets}} {
		if s := os.Getenv(v.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 10 {
				t.Fatalf("%s=%q: want an integer of at least 10", v.name, s)
			}
			*v.n = n
		}
	}
	if targets > entries {
		targets = entries
	}
	return entries, targets
}

// pitrRand is the test's random source: WALSHIP_PITR_SEED, else the clock;
// the seed is logged.
func pitrRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WALSHIP_PITR_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("WALSHIP_PITR_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (WALSHIP_PITR_SEED)", seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// pitrWorkload writes a history with schema changes (CREATE, ALTER, DROP
// of tables and indexes), triggers, CURRENT_TIMESTAMP and other "now"
// functions, random() and randomblob(): everything a restore must replay
// with the entry's pinned time and seed to get the same bytes.
type pitrWorkload struct {
	rng    *rand.Rand
	extra  []string // tables x<n> that exist
	cols   int      // columns added to t
	serial int
}

func (w *pitrWorkload) next(i int) (string, []any) {
	switch i {
	case 1:
		return "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, r INTEGER, ts TEXT DEFAULT CURRENT_TIMESTAMP)", nil
	case 2:
		return "CREATE TABLE audit (id INTEGER PRIMARY KEY, tid INTEGER, op TEXT, at TEXT, rnd INTEGER)", nil
	case 3:
		return "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN INSERT INTO audit (tid, op, at, rnd) VALUES (new.id, 'ins', CURRENT_TIMESTAMP, random()); END", nil
	case 4:
		return "CREATE TRIGGER t_upd AFTER UPDATE ON t BEGIN INSERT INTO audit (tid, op, at, rnd) VALUES (new.id, 'upd', datetime('now', '+1 hour'), random() % 1000); END", nil
	}
	w.serial++
	k := w.rng.IntN(1000)
	switch p := w.rng.Float64(); {
	case p < 0.40:
		return "INSERT INTO t (v, r) VALUES (hex(randomblob(8)), random())", nil
	case p < 0.55:
		return "INSERT INTO t (v) VALUES (?)", []any{fmt.Sprintf("row %d-%d", i, k)}
	case p < 0.65:
		return fmt.Sprintf("UPDATE t SET v = hex(randomblob(4)), r = abs(random()) %% 100 WHERE id %% 17 = %d AND id > (SELECT max(id) - 1000 FROM t)", k%17), nil
	case p < 0.73:
		return fmt.Sprintf("DELETE FROM t WHERE id %% 23 = %d AND random() %% 3 = 0 AND id > (SELECT max(id) - 2000 FROM t)", k%23), nil
	case p < 0.77:
		return "DELETE FROM audit WHERE id < (SELECT max(id) - 300 FROM audit)", nil
	case p < 0.80 && w.cols < 40:
		w.cols++
		return fmt.Sprintf("ALTER TABLE t ADD COLUMN c%d TEXT DEFAULT 'd%d'", w.serial, k), nil
	case p < 0.84 && len(w.extra) < 8:
		name := fmt.Sprintf("x%d", w.serial)
		w.extra = append(w.extra, name)
		return fmt.Sprintf("CREATE TABLE %s (a INTEGER DEFAULT (random()), b TEXT DEFAULT CURRENT_TIMESTAMP, c REAL)", name), nil
	case p < 0.87 && len(w.extra) > 0:
		j := w.rng.IntN(len(w.extra))
		name := w.extra[j]
		w.extra = slices.Delete(w.extra, j, j+1)
		return "DROP TABLE " + name, nil
	case p < 0.95 && len(w.extra) > 0:
		name := w.extra[w.rng.IntN(len(w.extra))]
		return fmt.Sprintf("INSERT INTO %s (c) VALUES (julianday('now') + random() %% 7)", name), nil
	case p < 0.97:
		return fmt.Sprintf("UPDATE t SET ts = strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now'), r = unixepoch() WHERE id %% 29 = %d AND id > (SELECT max(id) - 1000 FROM t)", k%29), nil
	case p < 0.985:
		return fmt.Sprintf("CREATE INDEX IF NOT EXISTS t_r_%d ON t (r)", k%3), nil
	default:
		return fmt.Sprintf("DROP INDEX IF EXISTS t_r_%d", k%3), nil
	}
}

// pitrPoint is a point of the history: an index, the master's checksum
// there, and (for a restore by time) the time given.
type pitrPoint struct {
	index uint64
	sum   string
	at    time.Time
}

// archiveStatus is the archive's part of the master's /log/status.
type archiveStatus struct {
	ArchiveIndex *uint64 `json:"archive_index"`
	ArchiveError string  `json:"archive_error"`
	// ArchiveFailingSeconds is how long archiving has failed.
	ArchiveFailingSeconds *float64 `json:"archive_failing_seconds"`
	LastIndex             uint64   `json:"last_index"`
	FirstIndex            uint64   `json:"first_index"`
}

func mustArchiveStatus(t *testing.T, n *Node) archiveStatus {
	t.Helper()
	st := n.MustLogStatus()
	var a archiveStatus
	if err := json.Unmarshal(st.Body, &a); err != nil {
		t.Fatalf("%s: /log/status: %v: %s", n, err, st.Body)
	}
	return a
}

// waitArchived polls the master's /log/status until its archive holds
// every entry of its log.
func waitArchived(t *testing.T, m *Node) archiveStatus {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		a := mustArchiveStatus(t, m)
		if a.ArchiveIndex != nil && *a.ArchiveIndex >= a.LastIndex {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the archive did not catch up in %v: %+v", m, waitTimeout, a)
		}
		time.Sleep(pollInterval) // ok: poll interval
	}
}

// runRestore runs walship restore with args and returns its output and
// exit code.
func runRestore(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(walshipBin, append([]string{"restore"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("walship restore %v: %v", args, err)
	}
	return string(out), 0
}

// restoredChecksum opens the database a restore built and returns its
// position and checksum.
// restoredChecksum opens a restored database and returns the log it
// left (the archived history it was restored from: a restore starts a new
// one), its applied index and its checksum.
func restoredChecksum(t *testing.T, path string) (string, uint64, string) {
	t.Helper()
	d, err := db.Open(path, db.Options{})
	if err != nil {
		t.Fatalf("open the restored %s: %v", path, err)
	}
	defer d.Close()
	c, err := d.Checksum(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	steps := d.History()
	if len(steps) == 0 || !d.Fresh() {
		t.Fatalf("the restored %s does not start a new history: %+v", path, steps)
	}
	last := steps[len(steps)-1]
	if last.To != d.LogID() || last.Index != d.AppliedIndex() {
		t.Fatalf("the restored %s: history %+v, at %s %d", path, last, d.LogID(), d.AppliedIndex())
	}
	return last.From, d.AppliedIndex(), c.Sum
}

// Point-in-time restore, end to end: a master with an archive, small log
// segments and a small log retention (so that compaction removes what the
// archive holds), written by one sequential client (so that the master's
// /db/checksum after a write is the content at that write's index);
// then `walship restore --archive` to each chosen index, and once to a
// time, into a new data directory: the restored database's checksum equals
// the master's at that point in every case, and its _walship row says the
// master's log_id and the index. A restore beyond the archive is refused,
// naming the last index it holds.
func TestPointInTimeRestore(t *testing.T) {
	entries, targets := pitrSize(t)
	rng := pitrRand(t)
	archiveDir := filepath.Join(t.TempDir(), "archive")
	c := NewCluster(t)
	snapEvery := max(entries/8, 200)
	m := c.MustRunMaster(WithArgs("--archive", archiveDir, "--archive-every", "200ms",
		"--archive-snapshot-every", strconv.Itoa(snapEvery), "--log-segment-size", "64KiB",
		"--log-retain-entries", "500", "--log-compact-every", "200ms",
		// The test must be the only writer of the log: no replica checks.
		"--verify-every", "0"))

	chosen := map[int]bool{entries: true}
	for len(chosen) < targets {
		chosen[1+rng.IntN(entries)] = true
	}
	byTime := 1 + entries/2 + rng.IntN(entries/4)
	w := &pitrWorkload{rng: rng}
	var points []pitrPoint
	var timed pitrPoint
	start := time.Now()
	for i := 1; i <= entries; i++ {
		sql, params := w.next(i)
		r := m.MustExec(sql, params...)
		if r.Index != uint64(i) {
			t.Fatalf("write %d (%s) has index %d: the test must be the only writer", i, sql, r.Index)
		}
		if chosen[i] || i == byTime {
			cs, err := m.Checksum()
			if err != nil {
				t.Fatal(err)
			}
			if cs.Index != r.Index {
				t.Fatalf("/db/checksum after write %d is at index %d", r.Index, cs.Index)
			}
			p := pitrPoint{index: r.Index, sum: cs.Checksum}
			if chosen[i] {
				points = append(points, p)
			}
			if i == byTime {
				// A time after this entry's and before the next one's:
				// the next write is stamped once the clock passed it.
				at := time.UnixMilli(time.Now().UnixMilli())
				for time.Now().UnixMilli() <= at.UnixMilli() {
					// ok: waits less than a millisecond for the clock to tick
				}
				p.at = at
				timed = p
			}
		}
		if i%10000 == 0 {
			t.Logf("%d entries written in %v", i, time.Since(start).Round(time.Millisecond))
		}
	}
	wrote := time.Since(start)
	st := waitArchived(t, m)
	if st.FirstIndex <= 1 {
		t.Fatalf("the log was never compacted (first index %d): the restores would not need the archive's copies", st.FirstIndex)
	}
	logID := m.MustLogStatus().LogID
	t.Logf("%d entries written in %v; the log starts at %d, the archive holds up to %d", entries, wrote.Round(time.Millisecond), st.FirstIndex, *st.ArchiveIndex)

	restoreStart := time.Now()
	check := func(p pitrPoint, args ...string) {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "restored")
		out, code := runRestore(t, append([]string{"--archive", archiveDir, "--data", dir}, args...)...)
		if code != 0 {
			t.Fatalf("walship restore %v: exit %d\n%s", args, code, out)
		}
		gotLog, gotIndex, sum := restoredChecksum(t, filepath.Join(dir, "db.sqlite"))
		if gotLog != logID || gotIndex != p.index || sum != p.sum {
			t.Fatalf("walship restore %v: log %s index %d checksum %s; the master had log %s index %d checksum %s\n%s",
				args, gotLog, gotIndex, sum, logID, p.index, p.sum, out)
		}
	}
	for _, p := range points {
		check(p, "--to-index", strconv.FormatUint(p.index, 10))
	}
	check(timed, "--to-time", timed.at.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	t.Logf("%d restores by index and one by time equal the master's checksum; they took %v",
		len(points), time.Since(restoreStart).Round(time.Millisecond))

	// Into a directory that holds a database: refused, then replaced with
	// --force.
	dir := filepath.Join(t.TempDir(), "again")
	first, second := points[0], points[len(points)-1]
	if out, code := runRestore(t, "--archive", archiveDir, "--data", dir, "--to-index", strconv.FormatUint(first.index, 10)); code != 0 {
		t.Fatalf("restore to %d: exit %d\n%s", first.index, code, out)
	}
	args := []string{"--archive", archiveDir, "--data", dir, "--to-index", strconv.FormatUint(second.index, 10)}
	if out, code := runRestore(t, args...); code != 1 || !strings.Contains(out, "not empty") {
		t.Fatalf("a restore into a directory that holds a database: exit %d\n%s", code, out)
	}
	if _, index, sum := restoredChecksum(t, filepath.Join(dir, "db.sqlite")); index != first.index || sum != first.sum {
		t.Fatalf("the refused restore changed the database: index %d", index)
	}
	if out, code := runRestore(t, append(args, "--force")...); code != 0 {
		t.Fatalf("restore --force: exit %d\n%s", code, out)
	}
	if _, index, sum := restoredChecksum(t, filepath.Join(dir, "db.sqlite")); index != second.index || sum != second.sum {
		t.Fatalf("restore --force to %d: index %d, checksum equal %v", second.index, index, sum == second.sum)
	}
	// A master started on the restored directory serves that content, as
	// a new history whose log goes on from the index.
	rm := c.MustRunMaster(WithDataDir(dir))
	rs, err := rm.Checksum()
	if err != nil {
		t.Fatal(err)
	}
	if rs.Index != second.index || rs.Checksum != second.sum {
		t.Fatalf("a master on the restored directory: checksum %s at %d, the master had %s at %d", rs.Checksum, rs.Index, second.sum, second.index)
	}
	if r := rm.MustExec("CREATE TABLE after_restore (v)"); r.Index != second.index+1 {
		t.Fatalf("the first write on the restored master is at %d, want %d", r.Index, second.index+1)
	}
	if st := rm.MustLogStatus(); st.LogID == logID || st.FirstIndex != second.index+1 {
		t.Fatalf("the restored master's log: %s", st.Body)
	}

	last := *st.ArchiveIndex
	ls, err := exec.Command(walshipBin, "archive", "ls", archiveDir).CombinedOutput()
	if err != nil || !strings.Contains(string(ls), "log "+logID) || !strings.Contains(string(ls), fmt.Sprintf(" to %d,", last)) {
		t.Fatalf("walship archive ls: %v\n%s", err, ls)
	}
	out, code := runRestore(t, "--archive", archiveDir, "--data", filepath.Join(t.TempDir(), "beyond"),
		"--to-index", strconv.FormatUint(last+1000, 10))
	if code != 1 || !strings.Contains(out, fmt.Sprintf("the last index it holds is %d", last)) {
		t.Fatalf("a restore beyond the archive: exit %d\n%s", code, out)
	}
}
