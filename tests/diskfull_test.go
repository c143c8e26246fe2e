package tests

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mustMountSmall mounts a tmpfs of size bytes at a new directory and
// unmounts it when the test ends: a real volume that fills up. It skips the
// test where this machine cannot mount one (not root, no CAP_SYS_ADMIN),
// saying so.
func mustMountSmall(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a small volume here (%v: %s): the disk-full tests need root", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		// The nodes are killed first (cleanups run last-in first-out,
		// and the cluster registers its own after this one).
		_ = exec.Command("umount", "-l", dir).Run()
	})
	return dir
}

// fill leaves about free bytes free on the volume of dir, with a file that
// unfill removes.
func fill(t *testing.T, dir string, free int64) (unfill func()) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * int64(st.Bsize)
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for n := int64(0); n+int64(len(chunk)) <= avail-free; n += int64(len(chunk)) {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	return func() { _ = os.Remove(path) }
}

// The operator's trial: a small volume almost full, one write larger than
// what is left. The master stays up: the write is refused with 507 (or, if
// the log took it, it is applied once space returns), reads go on, /readyz
// says it cannot write; freed, the volume takes writes again by itself, and
// a slave elsewhere ends equal.
func TestMasterDiskFull(t *testing.T) {
	vol := mustMountSmall(t, 24<<20)
	c := NewCluster(t)
	m := c.MustRunMaster(WithDataDir(filepath.Join(vol, "master")), WithArgs("--min-free-space", "0"))
	s := c.MustRunSlave(1, m)
	m.MustExec("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)")
	m.MustExec("INSERT INTO t (b) VALUES (randomblob(1000))")
	unfill := fill(t, vol, 600<<10)
	var acked int
	var se *StatusError
	for i := range 5 {
		_, err := m.Exec("INSERT INTO t (b) VALUES (randomblob(1200000))")
		switch {
		case err == nil:
			acked++
		case errors.As(err, &se) && se.Status == 507:
		default:
			t.Fatalf("write %d on a full disk: %v, want 200 or 507", i, err)
		}
	}
	if got := m.Count("SELECT count(*) FROM t"); got < 1 {
		t.Fatalf("reads on a full disk: %d rows", got)
	}
	st := m.MustLogStatus()
	t.Logf("%d of 5 writes taken by the log; status %s", acked, st.Body)
	if acked > 0 && st.State != "halted" {
		t.Fatalf("a write was taken but the master does not say it cannot apply it: %s", st.Body)
	}
	unfill()
	deadline := time.Now().Add(waitTimeout)
	for {
		if _, err := m.Exec("INSERT INTO t (b) VALUES (randomblob(1000))"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the master does not take writes again after space returned: %s", m.MustLogStatus().Body)
		}
		time.Sleep(50 * time.Millisecond) // ok: polling the master's retry with a deadline
	}
	if got := m.Count("SELECT count(*) FROM t"); got != int64(acked+2) {
		t.Fatalf("%d rows, want every acknowledged write (%d) and the two around them", got, acked)
	}
	c.WaitConverged(m)
	a, _ := m.Checksum()
	b, _ := s.Checksum()
	if a.Checksum != b.Checksum {
		t.Fatal("the slave differs from the master")
	}
	if n := strings.Count(m.Output(), "request failed"); n > 20 {
		t.Fatalf("%d log lines of failed requests: the log floods", n)
	}
}

// --min-free-space refuses writes (507, state disk_low) before the volume
// is full, and lets them through again once space returns.
func TestMinFreeSpace(t *testing.T) {
	vol := mustMountSmall(t, 24<<20)
	c := NewCluster(t)
	m := c.MustRunMaster(WithDataDir(filepath.Join(vol, "master")), WithArgs("--min-free-space", "4MiB"))
	m.MustExec("CREATE TABLE t (v)")
	unfill := fill(t, vol, 2<<20)
	_, err := m.Exec("INSERT INTO t VALUES (1)")
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 507 || !strings.Contains(se.Msg, "min-free-space") {
		t.Fatalf("a write below --min-free-space: %v", err)
	}
	if st := m.MustLogStatus(); st.State != "disk_low" {
		t.Fatalf("status: %s", st.Body)
	}
	unfill()
	deadline := time.Now().Add(waitTimeout)
	for {
		if _, err := m.Exec("INSERT INTO t VALUES (2)"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes stay refused after space returned")
		}
		time.Sleep(50 * time.Millisecond) // ok: polling with a deadline
	}
}

// A slave whose volume fills up is stalled, not diverged: it says why,
// retries, and catches up once space returns.
func TestSlaveDiskFull(t *testing.T) {
	vol := mustMountSmall(t, 16<<20)
	c := NewCluster(t)
	m := c.MustRunMaster()
	s := c.MustRunSlave(1, m, WithDataDir(filepath.Join(vol, "slave")))
	m.MustExec("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)")
	c.WaitConverged(m)
	unfill := fill(t, vol, 256<<10)
	for range 4 {
		m.MustExec("INSERT INTO t (b) VALUES (randomblob(500000))")
	}
	s.WaitFor("stalled", waitTimeout, func(st *LogStatus) bool { return st.State == "stalled" })
	unfill()
	c.WaitConverged(m)
	a, _ := m.Checksum()
	b, _ := s.Checksum()
	if a.Checksum != b.Checksum {
		t.Fatal("the slave differs from the master")
	}
}

// A volume too full for a snapshot: the compaction's snapshot does not
// start (it would fail, after taking the space the writes need), the log
// is not cut, writes go on and are all kept; once space returns the master
// compacts by itself, and a slave elsewhere ends equal.
func TestDiskFullWhileSnapshotting(t *testing.T) {
	vol := mustMountSmall(t, 48<<20)
	c := NewCluster(t)
	m := c.MustRunMaster(WithDataDir(filepath.Join(vol, "master")), WithArgs("--min-free-space", "1MiB",
		"--log-retain-entries", "300", "--log-segment-size", "64KiB", "--log-compact-every", "50ms"))
	s := c.MustRunSlave(1, m)
	m.MustExec("CREATE TABLE big (b BLOB); CREATE TABLE t (v)")
	for range 8 {
		m.MustExec("INSERT INTO big VALUES (randomblob(1048576))")
	}
	// Room for the writes below, not for an 8 MiB copy of the database.
	unfill := fill(t, vol, 7<<20)
	first := m.MustLogStatus().FirstIndex
	writeConcurrently(t, m, 1000, 8, func(i int) (string, []any) {
		return "INSERT INTO t VALUES (?)", []any{i}
	})
	m.WaitFor("a compaction refused for lack of space", waitTimeout, func(*LogStatus) bool {
		out := m.Output()
		return strings.Contains(out, "log compaction failed") && strings.Contains(out, "not enough free space for a snapshot")
	})
	if st := m.MustLogStatus(); st.FirstIndex != first {
		t.Fatalf("the log was cut without a snapshot: first index %d, was %d: %s", st.FirstIndex, first, st.Body)
	}
	if left, _ := filepath.Glob(filepath.Join(m.DataDir, "snapshots", "*.tmp")); len(left) > 0 {
		t.Fatalf("a refused snapshot left files: %v", left)
	}
	resp, err := httpClient.Get(m.URL() + "/db/snapshot?fresh")
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(resp); resp.StatusCode != 507 || !strings.Contains(string(body), "not enough free space") {
		t.Fatalf("a snapshot asked for on a full volume: %d %s", resp.StatusCode, body)
	}
	unfill()
	waitCompacted(t, m, first)
	m.MustExec("INSERT INTO t VALUES ('after')")
	if got := m.Count("SELECT count(*) FROM t"); got != 1001 {
		t.Fatalf("%d rows, want the 1,000 acknowledged writes and one more", got)
	}
	if divergent := checkChecksums(t, c, m); divergent != 0 {
		t.Fatalf("%s differs from the master", s)
	}
}
