package db

import (
	"fmt"
	"testing"

	"github.com/walship/walship/wal"
)

const benchSchema = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, r INTEGER DEFAULT (random()))"

// BenchmarkApply applies one entry per iteration, as a slave streaming the
// master's log does, with 1 or 100 INSERT statements in each entry.
func BenchmarkApply(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("statements=%d", n), func(b *testing.B) {
			d := mustOpenDB(b)
			if err := d.Apply(testLogID, []*wal.Entry{entry(1, benchSchema)}); err != nil {
				b.Fatal(err)
			}
			sts := make([]wal.Statement, n)
			for i := range sts {
				sts[i] = wal.Statement{SQL: "INSERT INTO users (name) VALUES (?)", Params: []wal.Param{{Value: wal.Text("someone")}}, Pos: uint32(i)}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e := &wal.Entry{Index: uint64(i) + 2, Epoch: 1, Time: pinnedMS + int64(i), Seed: uint64(i), Statements: sts}
				if err := d.Apply(testLogID, []*wal.Entry{e}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "stmts/s")
		})
	}
}

// BenchmarkTxRun runs one single-statement request per iteration in a Tx,
// committing every 100 requests, as the master's group commit does.
func BenchmarkTxRun(b *testing.B) {
	d := mustOpenDB(b)
	if err := d.Apply(testLogID, []*wal.Entry{entry(1, benchSchema)}); err != nil {
		b.Fatal(err)
	}
	r := Request{Statements: []wal.Statement{{SQL: "INSERT INTO users (name) VALUES (?)", Params: []wal.Param{{Value: wal.Text("someone")}}}}}
	b.ReportAllocs()
	b.ResetTimer()
	var tx *Tx
	applied := d.AppliedIndex()
	for i := 0; i < b.N; i++ {
		if tx == nil {
			var err error
			if tx, err = d.Begin(); err != nil {
				b.Fatal(err)
			}
		}
		if out := tx.Run(r, pinnedMS+int64(i), uint64(i)); out.Err != nil || len(out.Logged) != 1 {
			b.Fatalf("%+v", out)
		}
		applied++
		if i%100 == 99 || i == b.N-1 {
			if err := tx.Commit(testLogID, applied); err != nil {
				b.Fatal(err)
			}
			tx = nil
		}
	}
}
