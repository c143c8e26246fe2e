package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
)

// queueBatch bounds the queued requests run together.
const queueBatch = 128

// writeQueue holds queued writes (POST /db/execute?queue): the request is
// answered at once with a sequence number, and the writes are run in the
// background, in order, many requests together, retried every second while
// they cannot be written (rqlite's queued writes, RQLITE_API.md §1.4).
//
// It owns one goroutine (run), started by start and stopped by stop.
type writeQueue struct {
	s       *Server
	items   chan *queued
	nextSeq atomic.Int64
	lastSeq atomic.Int64 // the last sequence number written
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type queued struct {
	seq   int64
	elems []json.RawMessage // the request's elements, as sent
	auth  string            // its Authorization header: a slave sends it on
	done  chan struct{}     // closed once written
}

func newWriteQueue(s *Server) *writeQueue {
	q := &writeQueue{s: s, items: make(chan *queued, 1024)}
	q.nextSeq.Store(time.Now().UnixNano())
	return q
}

func (q *writeQueue) start() {
	ctx, cancel := context.WithCancel(context.Background())
	q.cancel = cancel
	q.wg.Add(1)
	go func() { defer q.wg.Done(); q.run(ctx) }()
}

func (q *writeQueue) stop() {
	if q.cancel != nil {
		q.cancel()
		q.wg.Wait()
	}
}

func (q *writeQueue) run(ctx context.Context) {
	var held *queued // of other credentials than the batch before it
	for {
		var batch []*queued
		if held != nil {
			batch, held = append(batch, held), nil
		} else {
			select {
			case <-ctx.Done():
				return
			case it := <-q.items:
				batch = append(batch, it)
			}
		}
		// One batch, one client's credentials: the master checks them.
	more:
		for len(batch) < queueBatch {
			select {
			case it := <-q.items:
				if it.auth != batch[0].auth {
					held = it
					break more
				}
				batch = append(batch, it)
			default:
				break more
			}
		}
		var elems []json.RawMessage
		for _, it := range batch {
			elems = append(elems, it.elems...)
		}
		for attempt := 0; ; attempt++ {
			err := q.write(ctx, elems, batch[0].auth)
			if err == nil {
				break
			}
			if attempt%10 == 0 {
				q.s.logger.Warn("queued writes not written yet; retrying every second", "requests", len(batch), "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		for _, it := range batch {
			q.lastSeq.Store(it.seq)
			close(it.done)
		}
	}
}

// write runs elements as one write request (without a transaction) on the
// master, or sends them to it from a slave. Statements that fail are only
// logged, as rqlite does; an error means nothing was written.
func (q *writeQueue) write(ctx context.Context, elems []json.RawMessage, authorization string) error {
	rl := q.s.roles()
	if len(elems) == 0 {
		return nil
	}
	body, err := json.Marshal(elems)
	if err != nil {
		return err
	}
	if rl.sl != nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, rl.sl.MasterURL()+"/db/execute", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		resp, err := q.s.fwd.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("master answered %s", resp.Status)
		}
		if idx, err := strconv.ParseUint(resp.Header.Get(client.HeaderIndex), 10, 64); err == nil {
			rl.sl.WaitApplied(ctx, idx)
		}
		return nil
	}
	r, _ := http.NewRequest(http.MethodPost, "/", nil)
	parsed, err := parseRqBody(r, body)
	if err != nil {
		return err
	}
	plan := planRq(parsed)
	plan.frame()
	res := q.s.execute(ctx, rl.m, db.Request{Statements: plan.stmts, Txn: plan.txn, NoForeignKeys: plan.noFK})
	if res.Err != nil {
		return res.Err
	}
	for i, r := range res.Results {
		if r.Err != nil {
			q.s.logger.Log(ctx, slog.LevelWarn, "queued statement failed", "sql", plan.stmts[i].SQL, "err", r.Err)
		}
	}
	return nil
}

// handleQueue serves POST /db/execute?queue.
func (s *Server) handleQueue(w http.ResponseWriter, r *http.Request, p *rqParams, body []byte, start time.Time) {
	var elems []json.RawMessage
	if len(bytes.TrimSpace(body)) > 0 {
		if _, err := parseRqBody(r, body); err != nil {
			s.writeRqError(w, r, err)
			return
		}
		if strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "text/plain") {
			b, _ := json.Marshal(string(body))
			elems = []json.RawMessage{b}
		} else if err := json.Unmarshal(body, &elems); err != nil {
			s.writeRqError(w, r, badRequest("invalid JSON body"))
			return
		}
	} else if !p.wait {
		s.writeRqError(w, r, badRequest("no statements"))
		return
	}
	it := &queued{seq: s.queue.nextSeq.Add(1), elems: elems, auth: r.Header.Get("Authorization"), done: make(chan struct{})}
	select {
	case s.queue.items <- it:
	case <-r.Context().Done():
		return
	}
	if p.wait {
		t := time.NewTimer(p.timeout)
		defer t.Stop()
		select {
		case <-it.done:
		case <-t.C:
			http.Error(w, "queue wait timeout", http.StatusRequestTimeout)
			return
		case <-r.Context().Done():
			return
		}
	}
	writeRq(w, p, rqResponse{Results: []any{}, SequenceNum: it.seq, Time: seconds(time.Since(start), p.opts.timings)})
}
