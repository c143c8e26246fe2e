package tests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/archive"
)

// bigWriter inserts rows of 512 KiB of random text into table big of m
// until stopped, so that log segments fill and seal and the archive is
// copying most of the time. Writes that fail (the master was killed) are
// dropped: the test checks the archive, not these writes.
type bigWriter struct {
	stop chan struct{}
	done sync.WaitGroup
}

func startBigWriter(m *Node) *bigWriter {
	w := &bigWriter{stop: make(chan struct{})}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		b := make([]byte, 256<<10)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			_, _ = rand.Read(b)
			if _, err := m.Exec("INSERT INTO big (b) VALUES (?)", hex.EncodeToString(b)); err != nil {
				select {
				case <-w.stop:
					return
				case <-time.After(5 * time.Millisecond): // ok: backoff while the master is down
				}
			}
		}
	}()
	return w
}

func (w *bigWriter) Stop() {
	close(w.stop)
	w.done.Wait()
}

// archiveLeftovers returns the archive's temporary files and the files
// that have no description.
func archiveLeftovers(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, name := range names {
		switch {
		case strings.HasSuffix(name, ".tmp"):
			out = append(out, name)
		case strings.HasSuffix(name, ".db") || strings.HasSuffix(name, ".sqlite.zst"):
			desc := strings.TrimSuffix(strings.TrimSuffix(name, ".db"), ".sqlite.zst") + ".json"
			if _, err := os.Stat(desc); err != nil {
				out = append(out, name)
			}
		}
	}
	return out
}

// The master SIGKILLed while it copies a segment or a snapshot to its
// archive, three times: each time it restarts, the copy the kill cut short
// is removed, every file the archive describes matches its size and
// SHA-256, the archive resumes and catches up with the log, and no
// leftover stays. At the end a restore to the last index equals the
// master's content.
func TestMasterKilledWhileArchiving(t *testing.T) {
	archiveDir := filepath.Join(t.TempDir(), "archive")
	c := NewCluster(t)
	m := c.MustRunMaster(WithArgs("--archive", archiveDir, "--archive-every", "100ms", "--log-segment-size", "4MiB",
		"--archive-snapshot-every", "16"))
	m.MustExec("CREATE TABLE big (id INTEGER PRIMARY KEY, b TEXT)")
	// Kill while a segment (4 MiB), a snapshot, and a segment again are
	// copied.
	for cycle, copying := range []string{"log-", "snapshot-", "log-"} {
		cycle++
		w := startBigWriter(m)
		killWhen(t, m, "copying a "+strings.TrimSuffix(copying, "-")+" to the archive", func() bool {
			tmp, _ := filepath.Glob(filepath.Join(archiveDir, "*", copying+"*.tmp"))
			return len(tmp) > 0
		})
		w.Stop()
		cut := archiveLeftovers(t, archiveDir)
		if len(cut) == 0 {
			t.Fatalf("cycle %d: the kill left no copy in progress", cycle)
		}
		m.Start()
		if !strings.Contains(m.Output(), "removed what a crash left") {
			t.Fatalf("cycle %d: the restarted master did not remove %v\n%s", cycle, cut, m.Output())
		}
		st := waitArchived(t, m)
		if left := archiveLeftovers(t, archiveDir); len(left) > 0 {
			t.Fatalf("cycle %d: left in the archive once it caught up: %v", cycle, left)
		}
		a, err := archive.OpenReadOnly(archiveDir)
		if err != nil {
			t.Fatal(err)
		}
		files := 0
		err = a.Verify(context.Background(), func(path string, err error) {
			files++
			if err != nil {
				t.Errorf("cycle %d: %v", cycle, err)
			}
		})
		if err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		t.Logf("cycle %d: killed while copying %v; restarted, the archive holds up to %d, %d files match their checksums",
			cycle, cut, *st.ArchiveIndex, files)
	}
	cs, err := m.Checksum()
	if err != nil {
		t.Fatal(err)
	}
	st := waitArchived(t, m)
	if *st.ArchiveIndex < cs.Index {
		t.Fatalf("the archive holds up to %d, the master is at %d", *st.ArchiveIndex, cs.Index)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	out, code := runRestore(t, "--archive", archiveDir, "--data", dir, "--to-index", strconv.FormatUint(cs.Index, 10))
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}
	if _, index, sum := restoredChecksum(t, filepath.Join(dir, "db.sqlite")); index != cs.Index || sum != cs.Checksum {
		t.Fatalf("restored to %d: index %d, checksum %s; the master's %s", cs.Index, index, sum, cs.Checksum)
	}
}
