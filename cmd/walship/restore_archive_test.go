package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// --to-time takes RFC 3339 and SQLite's UTC form, to the millisecond, and
// refuses anything else with an example.
func TestParseRestoreTime(t *testing.T) {
	want := time.Date(2026, 11, 25, 16, 2, 0, 250e6, time.UTC)
	for _, v := range []string{"2026-11-25T16:02:00.250Z", "2026-11-25T17:02:00.250+01:00", "2026-11-25 16:02:00.250", "2026-11-25T16:02:00.25"} {
		got, err := parseRestoreTime(v)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v, %v", v, got, err)
		}
	}
	if got, err := parseRestoreTime("2026-11-25 16:02:00"); err != nil || !got.Equal(want.Truncate(time.Second)) {
		t.Errorf("without fraction: %v, %v", got, err)
	}
	for _, v := range []string{"", "yesterday", "2026-11-25", "1764086520"} {
		if _, err := parseRestoreTime(v); err == nil || !strings.Contains(err.Error(), "2026-11-25T16:55:48.250Z") {
			t.Errorf("%q: %v", v, err)
		}
	}
}

// The restore command goes to the archive mode only with --archive.
func TestHasArchiveFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"--archive", "d", "--to-index", "5"}, true},
		{[]string{"--to-index=5", "-archive=d"}, true},
		{[]string{"--node", "http://x", "backup.sqlite"}, false},
		{[]string{"--", "--archive"}, false},
		{[]string{"archive"}, false},
	} {
		if got := hasArchiveFlag(c.args); got != c.want {
			t.Errorf("%v: %v, want %v", c.args, got, c.want)
		}
	}
}

// A data directory that holds anything is refused unless --force; a new
// one, an empty one, or one holding only what a failed restore left is
// taken.
func TestCheckRestoreDir(t *testing.T) {
	dir := t.TempDir()
	if err := checkRestoreDir(filepath.Join(dir, "new"), false); err != nil {
		t.Fatal(err)
	}
	if err := checkRestoreDir(dir, false); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"lock", "db.sqlite.restored"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := checkRestoreDir(dir, false); err != nil {
		t.Fatalf("a failed restore's leftovers: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "db.sqlite"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkRestoreDir(dir, false); err == nil || !strings.Contains(err.Error(), "db.sqlite") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("a directory with a database: %v", err)
	}
	if err := checkRestoreDir(dir, true); err != nil {
		t.Fatalf("with --force: %v", err)
	}
}
