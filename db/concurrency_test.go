package db

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/wal"
)

// TestQueryWhileCommitting runs queries from several goroutines while the
// writer commits: every read sees a whole transaction or none of it, and
// never goes back in time.
func TestQueryWhileCommitting(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE pair (id INTEGER PRIMARY KEY, n INTEGER)", "INSERT INTO pair VALUES (1, 0), (2, 0)")
	const commits = 100
	const readers = 6
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	// Every reader has read once before the commits start, so that reads
	// and commits overlap however fast the commits are.
	var ready sync.WaitGroup
	ready.Add(readers)
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var first sync.Once
			defer first.Do(ready.Done)
			last := int64(-1)
			for i := 0; ; i++ {
				select {
				case <-done:
					if last < 0 {
						errs <- errors.New("no read succeeded")
					}
					return
				default:
				}
				if i%10 == 0 {
					if cl, err := d.Classify(context.Background(), "UPDATE pair SET n = n + 1"); err != nil || !cl.Write {
						errs <- fmt.Errorf("classify: %+v, %v", cl, err)
						return
					}
				}
				res, err := d.Query(context.Background(), stmts("SELECT min(n), max(n) FROM pair", "SELECT count(*) FROM pair"))
				if err != nil {
					errs <- err
					return
				}
				lo, hi := res[0].Rows[0][0].Int, res[0].Rows[0][1].Int
				if lo != hi {
					errs <- fmt.Errorf("read half a transaction: n = %d and %d", lo, hi)
					return
				}
				if lo < last {
					errs <- fmt.Errorf("read went back from %d to %d", last, lo)
					return
				}
				last = lo
				first.Do(ready.Done)
			}
		}()
	}
	ready.Wait()
	for i := 1; i <= commits; i++ {
		m.batch(
			timed{req(false, "UPDATE pair SET n = n + 1 WHERE id = 1"), pinnedMS + int64(i), uint64(i)},
			timed{req(false, "UPDATE pair SET n = n + 1 WHERE id = 2"), pinnedMS + int64(i), uint64(i)},
		)
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if rows := mustQuery(t, d, "SELECT n FROM pair WHERE id = 1"); rows[0][0].Int != commits {
		t.Fatalf("n = %d, want %d", rows[0][0].Int, commits)
	}
}

// TestApplyWhileQuerying is the replica's side: Apply from one goroutine,
// queries from others.
func TestApplyWhileQuerying(t *testing.T) {
	d := mustOpenDB(t)
	if err := d.Apply(testLogID, []*wal.Entry{entry(1, "CREATE TABLE c (n)", "INSERT INTO c VALUES (0)")}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := d.Query(context.Background(), stmts("SELECT n FROM c")); err != nil {
					t.Error(err)
					return
				}
				_ = d.AppliedIndex()
				_ = d.LogID()
			}
		}()
	}
	for i := uint64(2); i <= 100; i++ {
		if err := d.Apply(testLogID, []*wal.Entry{entry(i, "UPDATE c SET n = n + 1")}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if rows := mustQuery(t, d, "SELECT n FROM c"); rows[0][0].Int != 99 {
		t.Fatalf("n = %d, want 99", rows[0][0].Int)
	}
}

// TestQueryCanceled checks that a query that would run for ever stops when
// its context ends, and that the cancellation does not reach the next query
// on the same reader.
func TestQueryCanceled(t *testing.T) {
	d, err := Open(t.TempDir()+"/db.sqlite", Options{Readers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	forever := stmts("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n")
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := d.Query(ctx, forever)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Query: %v, want context.DeadlineExceeded", err)
		}
		// The reader is usable again, not interrupted.
		if rows := mustQuery(t, d, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) SELECT count(*) FROM n"); rows[0][0].Int != 5000 {
			t.Fatal(rows)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Query(ctx, forever); !errors.Is(err, context.Canceled) {
		t.Fatalf("Query with a canceled context: %v, want context.Canceled", err)
	}
}

// TestCloseWhileWaiting checks that Begin and Query waiting for a busy
// writer or reader get ErrClosed when the DB closes, instead of running on
// closed connections or hanging.
func TestCloseWhileWaiting(t *testing.T) {
	d, err := Open(t.TempDir()+"/db.sqlite", Options{Readers: 1})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := d.Begin()
	if err != nil {
		t.Fatal(err)
	}
	begun := make(chan error, 1)
	go func() {
		tx2, err := d.Begin()
		if err == nil {
			_ = tx2.Rollback()
		}
		begun <- err
	}()
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	// Close waits for the open Tx.
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := <-begun; err != nil && !errors.Is(err, ErrClosed) {
		t.Fatalf("Begin waiting during Close: %v, want nil or ErrClosed", err)
	}
	if _, err := d.Query(context.Background(), stmts("SELECT 1")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Query after Close: %v", err)
	}
	if _, err := d.Classify(context.Background(), "SELECT 1"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Classify after Close: %v", err)
	}
}
