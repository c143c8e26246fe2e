package tests

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// With w=1&applied no acknowledged write is lost by losing the master
// alone: writes answered that way, the master SIGKILLed at once after the
// last answer and never started again, the slave holds every one.
func TestWriteConcernSurvivesMasterLoss(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s := c.MustRunSlave(1, m)
	m.MustExec("CREATE TABLE wc (v)")
	for i := range 50 {
		body := fmt.Sprintf(`["INSERT INTO wc VALUES (%d)"]`, i)
		resp, err := httpClient.Post(m.URL()+"/db/execute?w=1&applied", "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		b := readAll(resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"replicas":{"wanted":1,"applied":1}`) {
			t.Fatalf("write %d: %d %s", i, resp.StatusCode, b)
		}
	}
	m.Kill()
	if got := s.Count("SELECT count(*) FROM wc"); got != 50 {
		t.Fatalf("the slave holds %d of the 50 acknowledged writes once the master is lost", got)
	}
}
