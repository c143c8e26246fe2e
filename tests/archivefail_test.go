package tests

import (
	"os"
	"strings"
	"testing"
	"time"
)

// An archive that becomes unavailable (its volume unmounted, leaving the
// empty mount point) makes the master say so in /log/status and its log,
// once and then as a count, and compaction waits: the log keeps every
// entry the archive does not hold. Writes go on. Once the volume is back,
// the archive catches up, the error clears, and compaction resumes.
func TestArchiveUnavailable(t *testing.T) {
	archiveDir := t.TempDir() + "/archive"
	c := NewCluster(t)
	m := c.MustRunMaster(WithArgs("--archive", archiveDir, "--archive-every", "100ms", "--log-segment-size", "64KiB",
		"--log-retain-entries", "200", "--log-compact-every", "100ms"))
	m.MustExec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT DEFAULT CURRENT_TIMESTAMP, r DEFAULT (random()))")
	for range 500 {
		m.MustExec("INSERT INTO t (v) VALUES (hex(randomblob(64)))")
	}
	before := waitArchived(t, m)

	away := archiveDir + ".away"
	if err := os.Rename(archiveDir, away); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(archiveDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for range 1500 {
		m.MustExec("INSERT INTO t (v) VALUES (hex(randomblob(64)))")
	}
	deadline := time.Now().Add(waitTimeout)
	var st archiveStatus
	for {
		st = mustArchiveStatus(t, m)
		if st.ArchiveError != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no archive_error in /log/status %v after the archive went away", waitTimeout)
		}
		time.Sleep(pollInterval) // ok: poll interval
	}
	// Rounds of compaction (every 100 ms) and of the archive (every 25
	// ms) while it fails: the log keeps what the archive does not hold,
	// and the failure is logged once (then as a count every 10 s).
	for st.ArchiveFailingSeconds == nil || *st.ArchiveFailingSeconds < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the archive's failure did not last a second: %+v", st)
		}
		time.Sleep(pollInterval) // ok: poll interval
		st = mustArchiveStatus(t, m)
	}
	if n := strings.Count(m.Output(), "archiving failed"); n != 1 {
		t.Fatalf("the failure was logged %d times in a second, want once\n%s", n, m.Output())
	}
	if st.FirstIndex > *before.ArchiveIndex+1 || *st.ArchiveIndex != *before.ArchiveIndex {
		t.Fatalf("while the archive is away: the log starts at %d, the archive held up to %d and now says %d",
			st.FirstIndex, *before.ArchiveIndex, *st.ArchiveIndex)
	}
	if !strings.Contains(st.ArchiveError, "unmounted") {
		t.Fatalf("archive_error %q does not say why", st.ArchiveError)
	}
	if entries, _ := os.ReadDir(archiveDir); len(entries) != 0 {
		t.Fatalf("the master wrote to the empty mount point: %v", entries)
	}

	if err := os.Remove(archiveDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(away, archiveDir); err != nil {
		t.Fatal(err)
	}
	after := waitArchived(t, m)
	if after.ArchiveError != "" {
		t.Fatalf("archive_error stays once the archive is back: %q", after.ArchiveError)
	}
	m.WaitFor("compaction past what was archived before", waitTimeout, func(s *LogStatus) bool {
		return s.FirstIndex > *before.ArchiveIndex+1
	})
	if !strings.Contains(m.Output(), "archiving works again") {
		t.Fatalf("the master did not say the archive works again\n%s", m.Output())
	}
}
