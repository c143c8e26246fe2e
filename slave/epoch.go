package slave

import (
	"errors"
	"fmt"
	"time"

	"github.com/walship/walship/api/client"
)

// errStale is fetch's error when the node asked is at a lower epoch than
// this slave knows: a master that a promotion replaced. The slave does
// not follow it, and waits to be pointed at the new master.
var errStale = errors.New("the node asked was replaced by a master of a higher epoch")

// errDuplicateID is fetch's error when another live slave uses this
// slave's id at its master: it retries, in case that one goes.
var errDuplicateID = errors.New("another slave uses this slave's id")

// Superseded says which entries this node dropped because a new master's
// history replaced them (a promotion after a master that wrote them was
// lost or cut off): From..To, of epoch Epoch and earlier, against the new
// master's epoch NewEpoch.
type Superseded struct {
	From, To        uint64
	Epoch, NewEpoch uint64
	At              time.Time
}

// knownEpoch is the highest epoch the slave knows of: its log's; 0
// without a log.
func (s *Slave) knownEpoch() uint64 {
	if s.log == nil {
		return 0
	}
	return s.log.Epoch()
}

// learnEpoch records the master's epoch in the slave's log when it is
// higher than the slave knew: the slave then refuses any node of a lower
// one (a replaced master).
func (s *Slave) learnEpoch(epoch uint64) error {
	if s.log == nil || epoch <= s.log.Epoch() {
		return nil
	}
	if err := s.log.SetEpoch(epoch); err != nil {
		s.setState(client.StateStalled, err)
		return fmt.Errorf("%w: %w", errStalled, err)
	}
	s.cfg.Logger.Info("following a new master generation", "epoch", epoch, "master", s.cfg.MasterURL)
	return nil
}

// conflict decides what a 409 of the feed means for this slave:
//   - the node asked is at a lower epoch than the slave knows (fenced):
//     a replaced master; the slave does not follow it and retries;
//   - the node's history supersedes the slave's last entries (a new
//     master's entries of a higher epoch stand where the slave has older
//     ones, written by a master that was replaced): the slave drops them,
//     says which, and bootstraps from the node's snapshot;
//   - the node is of a higher epoch and has no entry of it yet (a master
//     being promoted): the slave retries;
//   - anything else: another history; the slave stops (diverged).
func (s *Slave) conflict(err error, applied, lastEpoch uint64, knows bool) error {
	var se *client.StatusError
	errors.As(err, &se)
	switch {
	case se != nil && se.DuplicateID:
		return fmt.Errorf("%w: %w", errDuplicateID, err)
	case se != nil && (se.Fenced || se.Epoch < s.knownEpoch()):
		return fmt.Errorf("%w: %w", errStale, err)
	case se != nil && se.SupersededFrom > 0 && se.SupersededFrom <= applied:
		sup := Superseded{From: se.SupersededFrom, To: applied, Epoch: lastEpoch, NewEpoch: se.Epoch, At: s.cfg.Now()}
		s.mu.Lock()
		s.superseded = &sup
		s.mu.Unlock()
		s.cfg.Logger.Warn("dropping entries the new master does not have: a replaced master wrote them; bootstrapping from the new master's snapshot",
			"from", sup.From, "to", sup.To, "epoch", sup.Epoch, "new_epoch", sup.NewEpoch, "master", s.cfg.MasterURL)
		return fmt.Errorf("%w: %w", errBootstrap, err)
	case se != nil && knows && se.Epoch > lastEpoch && se.SupersededFrom == 0:
		return fmt.Errorf("%w: %w", errStale, err)
	}
	s.setState(client.StateDiverged, err)
	return fmt.Errorf("%w: %w", ErrDiverged, err)
}
