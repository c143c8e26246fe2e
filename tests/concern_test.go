package tests

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
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

// With --min-replicas 1 a write that names no concern is answered once the
// slave holds it fsynced in its own log. Writers acknowledged that way,
// then the master and the slave SIGKILLed together, the master never
// started again: the restarted slave holds every acknowledged write (those
// its SQLite had not applied come from its log).
func TestMinReplicasSurvivesMasterLoss(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster(WithArgs("--min-replicas", "1"))
	s := c.MustRunSlave(1, m)
	m.MustExec("CREATE TABLE wc (v INTEGER PRIMARY KEY)")
	var mu sync.Mutex
	var acked []int
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				v := w*1000 + i
				resp, err := httpClient.Post(m.URL()+"/db/execute", "application/json", bytes.NewBufferString(fmt.Sprintf(`["INSERT INTO wc VALUES (%d)"]`, v)))
				if err != nil {
					t.Error(err)
					return
				}
				b := readAll(resp)
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"replicas":{"wanted":1,"received":1}`) {
					t.Errorf("write %d: %d %s", v, resp.StatusCode, b)
					return
				}
				mu.Lock()
				acked = append(acked, v)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	m.Kill()
	s.Kill()
	// The slave serves without its master (it is not ready: no leader).
	s.StartNoWait()
	s.WaitFor("the slave to serve again", startTimeout, func(*LogStatus) bool { return true })
	for _, v := range acked {
		if got := s.Count(fmt.Sprintf("SELECT count(*) FROM wc WHERE v = %d", v)); got != 1 {
			t.Fatalf("acknowledged write %d is not on the slave once the master is lost", v)
		}
	}
	if got := s.Count("SELECT count(*) FROM wc"); got != int64(len(acked)) || len(acked) != 320 {
		t.Fatalf("the slave holds %d rows, %d writes were acknowledged, want 320", got, len(acked))
	}
}
