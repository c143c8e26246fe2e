package tests

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// TestFailingWritesAmongGoodOnes sends failing writes concurrently with
// good ones, so that they share group commits: statements that end the
// whole transaction (OR ROLLBACK), a failing second statement after a
// good first one, an OR FAIL that wrote a row before failing. Every good
// write succeeds exactly once, no failing request leaves a row or a log
// entry, and the slave holds the master's content.
func TestFailingWritesAmongGoodOnes(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s := c.MustRunSlave(1, m)
	m.MustExec(`CREATE TABLE g (name TEXT NOT NULL UNIQUE, w INTEGER NOT NULL)`)
	m.MustExec(`INSERT INTO g (name, w) VALUES ('taken', -1)`)
	setup := c.WaitConverged(m)

	bad := []string{
		`INSERT OR ROLLBACK INTO g (name, w) VALUES ('taken', %[1]d)`,
		`INSERT INTO g (name, w) VALUES ('bad-%[1]d-%[2]d', %[1]d); INSERT OR ROLLBACK INTO g (name, w) VALUES ('taken', %[1]d)`,
		`INSERT INTO g (name, w) VALUES ('bad-%[1]d-%[2]d', %[1]d); INSERT INTO g (name, w) VALUES ('taken', %[1]d)`,
		`INSERT OR FAIL INTO g (name, w) SELECT 'bad-%[1]d-%[2]d', %[1]d UNION ALL SELECT 'taken', %[1]d`,
		`INSERT INTO g (name, w) VALUES ('bad-%[1]d-%[2]d', %[1]d); SELECT RAISE(ROLLBACK, 'refused')`,
		`INSERT INTO g (name, w) VALUES ('bad-%[1]d-%[2]d', %[1]d); INSERT INTO g (name, w) VALUES (NULL, %[1]d)`,
	}
	const (
		writers = 8
		each    = 60
	)
	// Writers 0-3 and 6 write good rows, 4, 5 and 7 failing ones; 6 and 7
	// go through the slave.
	targets := [writers]*Node{m, m, m, m, m, m, s, s}
	good := func(w int) bool { return w < 4 || w == 6 }
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range each {
				var err error
				if good(w) {
					_, err = targets[w].Exec(`INSERT INTO g (name, w) VALUES (?, ?)`, fmt.Sprintf("good-%d-%d", w, k), w)
					if err == nil {
						continue
					}
				} else {
					sql := fmt.Sprintf(bad[k%len(bad)], w, k)
					_, err = targets[w].Exec(sql)
					if se, ok := err.(*StatusError); ok && se.Status == http.StatusBadRequest && se.Msg != "" {
						continue
					}
					err = fmt.Errorf("%s: want 400 with an error, got %v", sql, err)
				}
				mu.Lock()
				errs = append(errs, fmt.Sprintf("writer %d (via %s), write %d: %v", w, targets[w].Name(), k, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for i, e := range errs {
		if i == 20 {
			t.Errorf("… %d more", len(errs)-i)
			break
		}
		t.Error(e)
	}

	goods := int64(5 * each)
	if n := m.Count(`SELECT count(*) FROM g WHERE name LIKE 'good-%'`); n != goods {
		t.Errorf("%d good rows on the master, want %d", n, goods)
	}
	if r := m.MustQuery(`SELECT name, w FROM g WHERE name NOT LIKE 'good-%' AND name <> 'taken' OR name IS NULL`); len(r.Values) != 0 {
		t.Errorf("failed writes left rows on the master: %s", r.Body)
	}
	if n := m.Count(`SELECT count(*) FROM g WHERE name = 'taken'`); n != 1 {
		t.Errorf("%d rows named 'taken', want 1", n)
	}
	// Only the good requests are in the log: one entry each.
	last := c.WaitConverged(m)
	if want := setup + uint64(goods); last != want {
		t.Errorf("master's last_index is %d, want %d (%d entries of setup and %d good writes)", last, want, setup, goods)
	}
	const q = `SELECT rowid, * FROM g ORDER BY rowid`
	if got, want := s.Dump(q), m.Dump(q); got != want {
		t.Errorf("the slave differs from the master:\nmaster: %.3000s\nslave:  %.3000s", want, got)
	}
}
