package api_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/api"
	"github.com/walship/walship/master"
)

// TestBodyTimeout: a body that stops arriving is answered 408 once the
// server's ReadTimeout has passed, on the seed endpoint and on /db/*, and
// nothing of it is written.
func TestBodyTimeout(t *testing.T) {
	srv, c := mustRunMasterConfig(t, master.Config{}, func(s *api.Server) { s.ReadTimeout = 300 * time.Millisecond })
	mustExec(t, c, "CREATE TABLE t (v)")
	addr := strings.TrimPrefix(srv.URL(), "http://")
	for _, tc := range []struct{ path, body string }{
		{"/", `{"command":"exec","query":"INSERT INTO t VALUES (1)"}`},
		{"/db/execute", `["INSERT INTO t VALUES (1)"]`},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		// The headers promise the whole body; half of it comes.
		half := tc.body[:len(tc.body)/2]
		start := time.Now()
		if _, err := io.WriteString(conn, "POST "+tc.path+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "+
			strconv.Itoa(len(tc.body))+"\r\n\r\n"+half); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: no answer: %v", tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "not received in time") {
			t.Fatalf("%s: %d %s, want 408 saying the body was not received in time", tc.path, resp.StatusCode, body)
		}
		if took := time.Since(start); took < 250*time.Millisecond {
			t.Fatalf("%s: answered after %s, before the read timeout", tc.path, took)
		}
	}
	if got := dump(t, c, "SELECT count(*) FROM t"); got != "[[0]]" {
		t.Fatalf("rows after the cut bodies: %s", got)
	}
}
