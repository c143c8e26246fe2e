package db

import (
	"container/list"
	"fmt"
)

// stmtCacheSize bounds the prepared statements a conn keeps.
const stmtCacheSize = 128

// prepared is a compiled statement with what SQLite's authorizer and
// sqlite3_stmt_readonly said of it when it was compiled.
type prepared struct {
	key     string
	s       *stmt
	ro      bool   // sqlite3_stmt_readonly
	pragma  bool   // it runs a PRAGMA
	refusal string // why it may not run as a replicated write; "" if it may
	dml     bool   // it inserts, updates or deletes rows itself
	insert  bool   // it inserts rows itself
	schema  bool   // it creates, alters or drops an object
	// analyze and statWrite: see authState.
	analyze, statWrite bool
	cached             bool
	elem               *list.Element
}

// prepareCached returns sql compiled under policy p, from the conn's cache
// when it was compiled before. A nil result means sql holds no statement.
// Preparing a statement once per text, not once per entry, is what lets a
// slave apply a stream of the same INSERT quickly.
func (c *conn) prepareCached(sql string, p policy) (*prepared, error) {
	key := string(rune('0'+p)) + sql
	if pr := c.stmts[key]; pr != nil {
		c.lru.MoveToFront(pr.elem)
		return pr, nil
	}
	c.auth.reset(p)
	s, tail, err := c.prepare(sql)
	if err != nil {
		if c.auth.refused != "" {
			return nil, refused(c.auth.refused)
		}
		return nil, err
	}
	if s == nil {
		return nil, nil // white space and comments only
	}
	if more, err := Split(tail); err != nil || len(more) > 0 {
		s.finalize()
		return nil, fmt.Errorf("%w: send one statement at a time, or let walship split the text", ErrMultiple)
	}
	pr := &prepared{key: key, s: s}
	pr.recompiled(c)
	// Schema statements run once; keep the cache for the statements that
	// repeat.
	if !pr.schema && tail == "" {
		if c.stmts == nil {
			c.stmts = make(map[string]*prepared)
			c.lru = list.New()
		}
		if c.lru.Len() >= stmtCacheSize {
			old := c.lru.Remove(c.lru.Back()).(*prepared)
			delete(c.stmts, old.key)
			old.s.finalize()
		}
		pr.cached = true
		pr.elem = c.lru.PushFront(pr)
		c.stmts[key] = pr
	}
	return pr, nil
}

// recompiled sets what pr remembers of its statement from what the
// authorizer saw while SQLite compiled it: when prepared, or again while it
// ran (the authorizer is reset before each run).
func (pr *prepared) recompiled(c *conn) {
	a := &c.auth
	pr.ro = pr.s.readonly()
	pr.pragma = a.pragma != ""
	pr.dml, pr.insert, pr.schema = a.dml, a.insert, a.schema
	pr.analyze, pr.statWrite = a.analyze, a.statWrite
	pr.refusal = ""
	if !pr.ro {
		pr.refusal = a.writeRefusal(pr.s.vacuums())
	}
}

// release makes a statement ready to run again, or finalizes it when it is
// not cached.
func (c *conn) release(pr *prepared) {
	if pr.cached {
		pr.s.reset()
		return
	}
	pr.s.finalize()
}

// dropStmts finalizes every cached statement.
func (c *conn) dropStmts() {
	for _, pr := range c.stmts {
		pr.s.finalize()
	}
	c.stmts, c.lru = nil, nil
}
