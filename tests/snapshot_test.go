package tests

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/walship/walship/snapshot"
)

// Every node serves a snapshot of its database (GET /db/snapshot): a slave's
// is at the index it applied, and is the master's database at that index.
func TestSnapshotOfEveryNode(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s := c.MustRunSlave(1, m)
	m.MustExec("CREATE TABLE t (id INTEGER PRIMARY KEY, v); CREATE VIRTUAL TABLE f USING fts5(a)")
	writeConcurrently(t, m, 200, 8, func(i int) (string, []any) {
		return fmt.Sprintf("INSERT INTO t (v) VALUES (%d); INSERT INTO f VALUES ('word %d')", i, i), nil
	})
	last := c.WaitConverged(m)
	for _, n := range []*Node{m, s} {
		resp, err := httpClient.Get(n.URL() + "/db/snapshot")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Walship-Index") != strconv.FormatUint(last, 10) {
			t.Fatalf("%s: %d %v", n, resp.StatusCode, resp.Header)
		}
		file := filepath.Join(t.TempDir(), "snap.sqlite")
		out, _ := os.Create(file)
		_, sum, err := snapshot.Decompress(bytes.NewReader(body), out)
		out.Close()
		if err != nil || sum != resp.Header.Get("X-Walship-Snapshot-Sha256") {
			t.Fatalf("%s: checksum %s: %v", n, sum, err)
		}
		plain, err := sql.Open("sqlite", file)
		if err != nil {
			t.Fatal(err)
		}
		var rows, words int
		err = plain.QueryRow("SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM f WHERE f MATCH 'word')").Scan(&rows, &words)
		plain.Close()
		if err != nil || rows != 200 || words != 200 {
			t.Fatalf("%s's snapshot: %d rows, %d words: %v", n, rows, words, err)
		}
		if _, err := os.Stat(filepath.Join(n.DataDir, "snapshots")); err != nil {
			t.Fatalf("%s keeps no snapshots directory: %v", n, err)
		}
	}
}
