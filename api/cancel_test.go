package api_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/api"
	"github.com/walship/walship/master"
)

// lockedBuffer collects a logger's lines from the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A client that goes away (Ctrl-C, a closed connection) while its read
// runs is no failure of the node: its request is logged at debug, not as a
// warning, and counted as 499 (client closed), not 500.
func TestClientCancelIsNoFailure(t *testing.T) {
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, c := mustRunMasterConfig(t, master.Config{}, func(s *api.Server) {
		s.Logger = logger
		s.QueryTimeout = 30 * time.Second
	})
	mustExec(t, c, "CREATE TABLE t (v)")
	// A read that runs until it is stopped.
	endless := seedJSON(t, "query", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c")
	for _, path := range []string{"/", "/db/query?q=" + url.QueryEscape("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c")} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond) // the client's Ctrl-C
		method, body := http.MethodGet, []byte(nil)
		if path == "/" {
			method, body = http.MethodPost, endless
		}
		req, err := http.NewRequestWithContext(ctx, method, srv.URL()+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		started := time.Now()
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s: answered %d before the client went away", path, resp.StatusCode)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: %v", path, err)
		}
		route := strings.SplitN(path, "?", 2)[0]
		waitFor(t, route+" to be counted as a client that went away", func() bool {
			v, _ := metric(t, srv.URL(), `walship_http_requests_total{code="499",route="`+route+`"}`)
			return v == 1
		})
		if took := time.Since(started); took > 10*time.Second {
			t.Fatalf("%s: the read ran %s after its client went away", path, took)
		}
		if v, ok := metric(t, srv.URL(), `walship_http_requests_total{code="500",route="`+route+`"}`); ok {
			t.Fatalf("%s: %v answers counted 500", path, v)
		}
	}
	out := logs.String()
	if strings.Contains(out, "level=WARN") || strings.Contains(out, "level=ERROR") {
		t.Fatalf("a client going away was logged as a failure:\n%s", out)
	}
	if !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "client went away") {
		t.Fatalf("a client going away is not logged at debug:\n%s", out)
	}
}
