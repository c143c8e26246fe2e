// Package tests is walship's end-to-end suite: real walship processes on
// loopback ports, written to over HTTP, killed, paused, restarted and
// cut off, checked only through the public API (POST /, /readyz,
// /log/status) and the files of their data directories.
//
// TestMain builds ./cmd/walship once per run. Set WALSHIP_BIN to test a
// binary built elsewhere, or WALSHIP_E2E_RACE=1 to build it with -race.
package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// walshipBin is the path of the binary under test, set by TestMain.
var walshipBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if bin := os.Getenv("WALSHIP_BIN"); bin != "" {
		walshipBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "walship-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	walshipBin = filepath.Join(dir, "walship")
	args := []string{"build", "-o", walshipBin}
	if os.Getenv("WALSHIP_E2E_RACE") == "1" {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/walship")...)
	build.Dir = ".." // the module root, seen from tests/
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/walship: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}
