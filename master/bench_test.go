package master

import (
	"context"
	"testing"

	"github.com/walship/walship/wal"
)

// BenchmarkExecuteParallel measures the write path in-process: concurrent
// single-statement requests through group commit, fsync on.
func BenchmarkExecuteParallel(b *testing.B) {
	n := mustOpen(b, b.TempDir(), wal.Options{})
	n.mustExec(b, "CREATE TABLE k (id INTEGER PRIMARY KEY, v TEXT)")
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := n.m.Execute(context.Background(), stmts("INSERT INTO k (v) VALUES ('hello')"))
			if r.Err != nil || r.Outcome.Err != nil {
				b.Fatal(r.Err, r.Outcome.Err)
			}
		}
	})
}

// BenchmarkExecute measures one caller's write latency in-process, fsync
// on: compare with wal's BenchmarkAppend, the log append alone.
func BenchmarkExecute(b *testing.B) {
	n := mustOpen(b, b.TempDir(), wal.Options{})
	n.mustExec(b, "CREATE TABLE k (id INTEGER PRIMARY KEY, v TEXT)")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := n.m.Execute(context.Background(), stmts("INSERT INTO k (v) VALUES ('hello')"))
		if r.Err != nil || r.Outcome.Err != nil {
			b.Fatal(r.Err, r.Outcome.Err)
		}
	}
}
