package tests

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape returns the value of the first sample of GET /metrics whose line
// starts with prefix (a metric name with its labels).
func scrape(t *testing.T, n *Node, prefix string) (float64, string) {
	t.Helper()
	resp, err := http.Get(n.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, prefix+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, prefix)), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v, string(body)
		}
	}
	return -1, string(body)
}

// /metrics reports what the node did: writes, group commits, applied
// indexes, and a stopped slave's lag on the master.
func TestMetrics(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s := c.MustRunSlave(1, m)
	m.MustExec("CREATE TABLE t (v)")
	for i := 0; i < 5; i++ {
		m.MustExec("INSERT INTO t VALUES (?)", i)
	}
	s.WaitForApplied(6, 10*time.Second)
	if v, body := scrape(t, m, "walship_applied_index"); v != 6 {
		t.Fatalf("master walship_applied_index = %v\n%s", v, body)
	}
	if v, _ := scrape(t, m, "walship_log_last_index"); v != 6 {
		t.Fatalf("walship_log_last_index = %v", v)
	}
	if v, _ := scrape(t, m, "walship_write_batch_requests_count"); v < 1 || v > 6 {
		t.Fatalf("group commits counted: %v, want 1..6", v)
	}
	if v, _ := scrape(t, m, "walship_log_append_seconds_count"); v < 1 {
		t.Fatalf("log appends counted: %v", v)
	}
	if v, _ := scrape(t, m, `walship_http_requests_total{code="200",route="/"}`); v < 6 {
		t.Fatalf("POST / counted %v times, want at least 6", v)
	}
	if v, _ := scrape(t, m, `walship_http_request_seconds_count{route="/"}`); v < 6 {
		t.Fatalf("POST / timed %v times, want at least 6", v)
	}
	if v, _ := scrape(t, m, `walship_http_request_seconds_sum{route="/"}`); v <= 0 || v > 60 {
		t.Fatalf("POST / took %v s in all, want a plausible time", v)
	}
	if v, _ := scrape(t, m, "walship_process_rss_anon_bytes"); v < 1<<20 || v > 1<<30 {
		t.Fatalf("walship_process_rss_anon_bytes = %v, want a plausible size", v)
	}
	if v, _ := scrape(t, s, "walship_applied_index"); v != 6 {
		t.Fatalf("slave walship_applied_index = %v", v)
	}
	// A stopped slave falls behind: the master reports its lag in entries
	// and seconds.
	s.Stop()
	for i := 0; i < 3; i++ {
		m.MustExec("INSERT INTO t VALUES (?)", i)
	}
	lagRe := regexp.MustCompile(`walship_slave_lag_entries\{slave="1"\} 3`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := scrape(t, m, "walship_slave_lag_entries")
		if lagRe.MatchString(body) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no lag of 3 entries for slave 1:\n%s", body)
		}
		time.Sleep(20 * time.Millisecond) // ok: poll interval
	}
	if v, _ := scrape(t, m, `walship_slave_lag_seconds{slave="1"}`); v <= 0 {
		t.Fatalf("walship_slave_lag_seconds = %v, want > 0 while behind", v)
	}
	s.Cont()
	s.WaitForApplied(9, 10*time.Second)
	if v, _ := scrape(t, s, "walship_lag_entries"); v != 0 {
		t.Fatalf("slave's own lag after catching up: %v", v)
	}
}
