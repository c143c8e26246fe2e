package slave_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/walship/walship/slave"
	"github.com/walship/walship/wal"
)

// BenchmarkCatchUp times a new slave catching up with a master whose log
// holds 100,000 one-statement entries, master and slave in this process
// over loopback HTTP.
func BenchmarkCatchUp(b *testing.B) {
	const n = 100000
	dir := b.TempDir()
	lg, err := wal.Open(filepath.Join(dir, "log.db"), wal.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	batch := []*wal.Entry{{Index: 1, Epoch: 1, Time: 1, Statements: []wal.Statement{{SQL: "CREATE TABLE t (id INTEGER PRIMARY KEY, v)"}}}}
	for i := 2; i <= n+1; i++ {
		batch = append(batch, &wal.Entry{Index: uint64(i), Epoch: 1, Time: int64(i), Seed: uint64(i),
			Statements: []wal.Statement{{SQL: "INSERT INTO t (v) VALUES ('catch up')"}}})
		if len(batch) == 1000 || i == n+1 {
			if err := lg.Append(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := lg.Close(); err != nil {
		b.Fatal(err)
	}
	m := mustStartMaster(b, dir, "127.0.0.1:0")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ts := mustOpenSlave(b, filepath.Join(b.TempDir(), fmt.Sprintf("s%d.sqlite", i)), slave.Config{ID: "bench", MasterURL: m.url()})
		waitFor(b, "catch-up", func() bool { return ts.db.AppliedIndex() == n+1 })
		ts.close(b)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*(n+1))/b.Elapsed().Seconds(), "entries/s")
}
