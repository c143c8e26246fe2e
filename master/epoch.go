package master

import (
	"context"
	"errors"
	"fmt"

	"github.com/walship/walship/wal"
)

// ErrFenced is returned for a write to a master that was replaced: a node
// of a higher epoch was promoted (walship promote, or an election), and
// this one takes no more writes; it steps down to follow the new master.
var ErrFenced = errors.New("fenced: a master of a higher epoch replaced this one; send writes to the new master")

// Fence stops the master taking writes because epoch, above its own, was
// started elsewhere (a promotion): from when Fence returns, the log gets
// no more entries, and every write is answered ErrFenced. Reads and the
// feed go on, so that the node being promoted can catch up. It returns
// the log's last index.
func (m *Master) Fence(ctx context.Context, epoch uint64) (uint64, error) {
	var last uint64
	err := m.do(ctx, func() error {
		m.mu.Lock()
		if m.fenced == nil {
			m.fenced = fmt.Errorf("%w (epoch %d replaced this master's %d)", ErrFenced, epoch, m.log.Epoch())
		}
		m.mu.Unlock()
		last = m.log.LastIndex()
		return nil
	})
	if err == nil {
		m.cfg.Logger.Warn("fenced: a master of a higher epoch replaced this one; writes are refused", "epoch", epoch,
			"own_epoch", m.log.Epoch(), "last_index", last)
	}
	return last, err
}

// Fenced returns why the master takes no writes because it was replaced,
// nil while it was not.
func (m *Master) Fenced() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fenced
}

// StartEpoch appends an entry without statements at the log's epoch and
// applies it: the first entry of a new master's generation, which records
// the epoch in the log. A follower whose entries from there on are of an
// older epoch learns from it that a replaced master wrote them. It
// returns the entry's index.
func (m *Master) StartEpoch(ctx context.Context) (uint64, error) {
	var index uint64
	err := m.do(ctx, func() error {
		if err := m.Fenced(); err != nil {
			return err
		}
		e := &wal.Entry{Index: m.log.LastIndex() + 1, Epoch: m.log.Epoch(), Time: m.cfg.Now().UnixMilli(), Seed: randomSeed()}
		if err := m.log.Append([]*wal.Entry{e}); err != nil {
			return fmt.Errorf("%w: %w", ErrAppend, err)
		}
		if err := m.db.Apply(m.log.ID(), []*wal.Entry{e}); err != nil {
			m.halt(fmt.Errorf("apply the epoch's first entry %d: %w", e.Index, err))
		}
		m.publish()
		index = e.Index
		return nil
	})
	return index, err
}

// Leads returns nil while the master is certainly the cluster's: not
// fenced, and its write gate (the failover lease) open. A read that must
// see every acknowledged write (strong) asks it.
func (m *Master) Leads() error {
	if err := m.Fenced(); err != nil {
		return err
	}
	if m.cfg.Gate != nil {
		if err := m.cfg.Gate(); err != nil {
			return fmt.Errorf("%w: %w", ErrNotLeading, err)
		}
	}
	return nil
}
