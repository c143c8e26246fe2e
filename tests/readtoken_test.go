package tests

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// Read tokens end to end: a write's index, given to walship query
// --min-index at a slave, is seen there at once.
func TestReadTokenCommandLine(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s := c.MustRunSlave(1, m)
	m.MustExec("CREATE TABLE tok (v)")
	for i := range 10 {
		r := m.MustExec("INSERT INTO tok VALUES (?)", i)
		out, err := exec.Command(walshipBin, "query", "--node", s.URL(), "--min-index", fmt.Sprint(r.Index), "--format", "csv",
			"SELECT count(*) AS n FROM tok").CombinedOutput()
		if err != nil || !strings.Contains(string(out), fmt.Sprintf("n\n%d\n", i+1)) {
			t.Fatalf("query --min-index %d at the slave: %v\n%s", r.Index, err, out)
		}
	}
	out, err := exec.Command(walshipBin, "query", "--node", s.URL(), "--min-index", "999999", "SELECT 1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "504") {
		t.Fatalf("a token not reached: %v\n%s", err, out)
	}
}
