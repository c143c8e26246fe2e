package api_test

import (
	"bytes"
	"context"
	"database/sql"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/walship/walship/api"
	"github.com/walship/walship/api/client"
	"github.com/walship/walship/master"
	"github.com/walship/walship/snapshot"
)

// withSnapshots gives a server a snapshot store in a temp dir.
func withSnapshots(tb testing.TB) func(*api.Server) {
	return func(s *api.Server) {
		st, err := snapshot.Open(filepath.Join(tb.TempDir(), "snapshots"), quietLogger())
		if err != nil {
			tb.Fatal(err)
		}
		s.Snapshots = st
	}
}

// GET /db/snapshot answers the database at one index, compressed, with its
// position and checksum in the headers; a Range request resumes it; a
// node without a store answers 404.
func TestSnapshotEndpoint(t *testing.T) {
	srv, mc := mustRunMasterConfig(t, master.Config{}, withSnapshots(t))
	mustExec(t, mc, "CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
	mustExec(t, mc, "INSERT INTO t (v) VALUES ('a'), (randomblob(3000))")
	status, h, body := do(t, http.MethodGet, srv.URL()+"/db/snapshot", nil)
	if status != 200 || h.Get("Content-Type") != client.SnapshotContentType || h.Get(client.HeaderIndex) != "2" ||
		h.Get(client.HeaderLogID) != srv.Master.Log().ID() || len(h.Get(client.HeaderSnapshotSHA256)) != 64 {
		t.Fatalf("%d %v", status, h)
	}
	file := filepath.Join(t.TempDir(), "snap.sqlite")
	out, _ := os.Create(file)
	n, sum, err := snapshot.Decompress(bytes.NewReader(body), out)
	out.Close()
	if err != nil || sum != h.Get(client.HeaderSnapshotSHA256) || strconv.FormatInt(n, 10) != h.Get(client.HeaderSnapshotSize) {
		t.Fatalf("decompressed %d bytes, sum %s: %v; headers %v", n, sum, err, h)
	}
	plain, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	var rows, applied int64
	if err := plain.QueryRow("SELECT count(*), (SELECT applied_index FROM _walship) FROM t").Scan(&rows, &applied); err != nil || rows != 2 || applied != 2 {
		t.Fatalf("the snapshot holds %d rows at %d: %v", rows, applied, err)
	}
	// A cut download resumes where it stopped.
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL()+"/db/snapshot", nil)
	req.Header.Set("Range", "bytes=10-")
	req.Header.Set("If-Range", h.Get("ETag"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rest := readAllBody(t, resp)
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(rest, body[10:]) {
		t.Fatalf("range: %d, %d bytes", resp.StatusCode, len(rest))
	}
	// ?fresh takes one now.
	mustExec(t, mc, "INSERT INTO t (v) VALUES ('b')")
	if _, h2, _ := do(t, http.MethodGet, srv.URL()+"/db/snapshot?fresh", nil); h2.Get(client.HeaderIndex) != "3" {
		t.Fatalf("fresh: %v", h2)
	}
	bare, _ := mustRunMaster(t)
	if status, _, _ := do(t, http.MethodGet, bare.URL()+"/db/snapshot", nil); status != http.StatusNotFound {
		t.Fatalf("a node without snapshots: %d", status)
	}
}

func readAllBody(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
