package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
	"github.com/walship/walship/wal"
)

// benchRaw measures what this machine's parts can do without walship's
// pipeline around them, in this process and temporary files: the limits
// the other modes are compared with.
func benchRaw(ctx context.Context, cfg benchConfig, stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "walship-raw-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d := cfg.duration
	fmt.Fprintf(stdout, "raw limits of this machine (%s each, temporary files in %s)\n", d, os.TempDir())

	// 1. A log append (one bbolt update with its fsync) per entry.
	lg, err := wal.Open(filepath.Join(dir, "log.db"), wal.Options{})
	if err != nil {
		return err
	}
	entry := func(i uint64, stmts int) *wal.Entry {
		e := &wal.Entry{Index: i, Epoch: 1, Time: time.Now().UnixMilli(), Seed: i}
		for k := 0; k < stmts; k++ {
			e.Statements = append(e.Statements, wal.Statement{SQL: "INSERT INTO t (v) VALUES (?)", Params: []wal.Param{{Value: wal.Text("bench")}}, Pos: uint32(k)})
		}
		return e
	}
	var lat []time.Duration
	next := lg.LastIndex() + 1
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		t0 := time.Now()
		if err := lg.Append([]*wal.Entry{entry(next, 1)}); err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
		next++
	}
	slices.Sort(lat)
	fmt.Fprintf(stdout, "  log append + fsync, 1 entry per update:   %8.0f entries/s  p50 %s\n",
		float64(len(lat))/d.Seconds(), lat[len(lat)/2].Round(time.Microsecond))
	// 2. 1,000 entries per update.
	n := 0
	end = time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		batch := make([]*wal.Entry, 1000)
		for i := range batch {
			batch[i] = entry(next+uint64(i), 1)
		}
		if err := lg.Append(batch); err != nil {
			return err
		}
		next += 1000
		n += 1000
	}
	fmt.Fprintf(stdout, "  log append + fsync, 1,000 per update:     %8.0f entries/s\n", float64(n)/d.Seconds())
	lg.Close()

	// 3. SQLite inserts, 1,000 per transaction, through walship's db
	// package without the log: the raw speed a catch-up is compared with.
	sq, err := db.Open(filepath.Join(dir, "raw.sqlite"), db.Options{})
	if err != nil {
		return err
	}
	defer sq.Close()
	run := func(stmts []wal.Statement) error {
		tx, err := sq.Begin()
		if err != nil {
			return err
		}
		out := tx.Run(db.Request{Statements: stmts, Txn: true}, time.Now().UnixMilli(), 1)
		if out.Err != nil || out.TxnLost {
			tx.Rollback()
			return fmt.Errorf("raw insert: %v", out.Err)
		}
		return tx.Commit("raw", sq.AppliedIndex()+1)
	}
	if err := run([]wal.Statement{{SQL: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"}}); err != nil {
		return err
	}
	stmts := entry(1, 1000).Statements
	n = 0
	end = time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		if err := run(stmts); err != nil {
			return err
		}
		n += len(stmts)
	}
	fmt.Fprintf(stdout, "  SQLite INSERT, 1,000 per transaction:     %8.0f rows/s\n", float64(n)/d.Seconds())

	// 4. The log + apply pipeline: SQLite run, log append with fsync,
	// SQLite commit, as the master's group commit does, without HTTP.
	lg2, err := wal.Open(filepath.Join(dir, "pipeline.db"), wal.Options{})
	if err != nil {
		return err
	}
	defer lg2.Close()
	sp, err := db.Open(filepath.Join(dir, "pipeline.sqlite"), db.Options{})
	if err != nil {
		return err
	}
	defer sp.Close()
	for _, size := range []int{1, 10, 100, 1000} {
		n := 0
		end := time.Now().Add(d)
		for time.Now().Before(end) && ctx.Err() == nil {
			tx, err := sp.Begin()
			if err != nil {
				return err
			}
			if sp.AppliedIndex() == 0 {
				tx.Run(db.Request{Statements: []wal.Statement{{SQL: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"}}}, 1, 1)
			}
			e := entry(lg2.LastIndex()+1, size)
			out := tx.Run(db.Request{Statements: e.Statements}, e.Time, e.Seed)
			if out.Err != nil {
				tx.Rollback()
				return out.Err
			}
			if err := lg2.Append([]*wal.Entry{e}); err != nil {
				tx.Rollback()
				return err
			}
			if err := tx.Commit(lg2.ID(), e.Index); err != nil {
				return err
			}
			n += size
		}
		fmt.Fprintf(stdout, "  log + apply pipeline, %4d statements per group commit: %8.0f statements/s\n", size, float64(n)/d.Seconds())
	}

	// 5. One HTTP round trip to the no-op server, one client.
	url, stop, err := startNoop()
	if err != nil {
		return err
	}
	defer stop()
	c := &client.Client{URL: url, HTTP: &http.Client{Transport: client.NewTransport()}}
	lat = lat[:0]
	end = time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		t0 := time.Now()
		if _, err := c.DBExecute(ctx, client.DBOptions{}, client.Statement{SQL: "INSERT INTO t (v) VALUES (?)", Params: []any{"bench"}}); err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	fmt.Fprintf(stdout, "  HTTP round trip to the no-op server, 1 client: %8.0f requests/s  p50 %s\n",
		float64(len(lat))/d.Seconds(), lat[len(lat)/2].Round(time.Microsecond))
	fmt.Fprintln(stdout, strings.Repeat(" ", 2)+"(compare: bench write -c 1 p50 against log append p50 + HTTP p50)")
	return nil
}
