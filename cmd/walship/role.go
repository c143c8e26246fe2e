package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/walship/walship/api"
	"github.com/walship/walship/api/client"
	"github.com/walship/walship/durable"
	"github.com/walship/walship/election"
	"github.com/walship/walship/master"
	"github.com/walship/walship/retention"
	"github.com/walship/walship/slave"
)

// A node's role can switch while it runs: a slave is promoted (walship
// promote, POST /node/promote), a master that a newer one replaced steps
// down to follow it (POST /node/master, or a follower that knows a higher
// epoch), a slave re-points to another master. Both roles use the same
// log and database; a switch closes one role and opens the other on them,
// and the server (api.Server.SetRole) serves the new one. The role the
// node switched to is recorded in DATA/role.json, which wins over the
// command line's at the next start: a promoted slave restarts as the
// master, a replaced master as a slave of the new one.

// roleFile is the name of the file in the data directory that records the
// role a node switched to.
const roleFile = "role.json"

// recordedRole is the content of DATA/role.json.
type recordedRole struct {
	Role   string `json:"role"`             // "master" or "slave"
	Master string `json:"master,omitempty"` // a slave's master
	Epoch  uint64 `json:"epoch"`
}

// readRole reads DATA/role.json; ok is false when there is none.
func readRole(dir string) (r recordedRole, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, roleFile))
	if errors.Is(err, os.ErrNotExist) {
		return r, false, nil
	}
	if err != nil {
		return r, false, err
	}
	if err := json.Unmarshal(b, &r); err != nil || (r.Role != "master" && r.Role != "slave") || (r.Role == "slave" && r.Master == "") {
		return r, false, fmt.Errorf("%s: not a role this node switched to (%q); remove it to start with the command line's role", filepath.Join(dir, roleFile), b)
	}
	return r, true, nil
}

// recordRole writes DATA/role.json durably.
func (n *Node) recordRole(r recordedRole) error {
	b, _ := json.Marshal(r)
	path := filepath.Join(n.cfg.Data, roleFile)
	if err := durable.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("record the role: %w", err)
	}
	return nil
}

// startingRole is the role the node starts in: the one it switched to
// last (DATA/role.json), else the command line's. A master whose peers
// know a master of a higher epoch starts as that one's slave instead: a
// promotion replaced it while it was down.
func (n *Node) startingRole() (role, masterURL string, err error) {
	role, masterURL = n.cfg.Role, n.cfg.MasterURL
	rec, ok, err := readRole(n.cfg.Data)
	if err != nil {
		return "", "", err
	}
	if ok && rec.Epoch >= n.log.Epoch() {
		if rec.Role != role || (rec.Role == "slave" && rec.Master != masterURL) {
			n.logger.Warn("starting in the role this node switched to, not the command line's", "role", rec.Role,
				"master", rec.Master, "epoch", rec.Epoch, "file", filepath.Join(n.cfg.Data, roleFile))
		}
		role, masterURL = rec.Role, rec.Master
	}
	if n.elec != nil {
		// With automatic failover, the elected master is at etcd.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		l, err := n.elec.Leader(ctx)
		switch {
		case err == nil && l.URL != n.url && l.Epoch >= n.log.Epoch():
			if role == "master" {
				n.logger.Warn("another node is the elected master; starting as its slave", "master", l.URL, "epoch", l.Epoch)
			}
			return "slave", l.URL, nil
		case err != nil && !errors.Is(err, election.ErrNoLeader):
			n.logger.Warn("etcd does not answer; starting in the recorded role", "err", err)
		}
		return role, masterURL, nil
	}
	if role == "master" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if url, epoch, found := n.findMaster(ctx, n.log.Epoch()+1); found {
			n.logger.Warn("a master of a higher epoch replaced this one while it was down; starting as its slave",
				"master", url, "epoch", epoch, "own_epoch", n.log.Epoch())
			if err := n.log.SetEpoch(epoch); err != nil {
				return "", "", err
			}
			if err := n.recordRole(recordedRole{Role: "slave", Master: url, Epoch: epoch}); err != nil {
				return "", "", err
			}
			return "slave", url, nil
		}
	}
	return role, masterURL, nil
}

// candidates are the other nodes this node knows of: its --master list
// and --peers, and extra.
func (n *Node) candidates(extra ...string) []string {
	var out []string
	for _, u := range append(append([]string{n.cfg.MasterURL}, n.cfg.Peers...), extra...) {
		u = strings.TrimRight(u, "/")
		if u != "" && u != n.url && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// findMaster asks the candidates (and extra) for their status and returns
// the master of the highest epoch at least minEpoch that takes writes, if
// any answers. A slave's answer names its master, which is asked too.
func (n *Node) findMaster(ctx context.Context, minEpoch uint64, extra ...string) (url string, epoch uint64, found bool) {
	asked := map[string]bool{}
	queue := n.candidates(extra...)
	for len(queue) > 0 && ctx.Err() == nil {
		u := queue[0]
		queue = queue[1:]
		if asked[u] || u == n.url {
			continue
		}
		asked[u] = true
		c := n.peerClient(u)
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := c.LogStatus(sctx)
		cancel()
		if err != nil {
			continue
		}
		switch {
		case st.Role == "master" && st.State != client.StateFenced && st.Epoch >= minEpoch && st.Epoch > epoch:
			url, epoch, found = u, st.Epoch, true
		case st.Role == "slave" && st.Master != "":
			queue = append(queue, strings.TrimRight(st.Master, "/"))
		}
	}
	return url, epoch, found
}

// peerClient is a client of another node, with the node's TLS and its
// credentials at its master.
func (n *Node) peerClient(url string) *client.Client {
	c := client.NewTLS(url, n.peerTLS)
	c.User, c.Password = n.cfg.MasterUser, n.cfg.MasterPassword
	return c
}

// masterConfig is the master's configuration; a node started as a slave
// takes the write path's flags too (--min-replicas …), for when it is
// promoted; an archive is the master's alone.
func (n *Node) masterConfig() (master.Config, error) {
	cfg := n.cfg
	minFree, err := cfg.minFreeBytes(cfg.Data)
	if err != nil {
		return master.Config{}, err
	}
	return master.Config{Logger: n.logger, OnCommit: n.metrics.ObserveCommit,
		StatementTimeout: cfg.WriteTimeout, RetainEntries: cfg.RetainEntries, RetainBytes: cfg.RetainBytes,
		RetainFor: cfg.RetainFor, CompactEvery: cfg.CompactEvery, Snapshots: n.snapshots, MinFreeBytes: minFree,
		VerifyEvery: cfg.VerifyEvery, CheckCPU: n.snapshots.CPUShare,
		Archive: n.arch, ArchiveEvery: cfg.ArchiveEvery, ArchiveSnapshotEntries: cfg.ArchiveSnapshotEntries,
		OnFenced: n.onFenced, Gate: n.writeGate(), OnApplyFailure: n.metrics.ObserveApplyFailure}, nil
}

// writeGate is the master's write gate: with automatic failover, the
// lease (gate); without, none.
func (n *Node) writeGate() func() error {
	if n.elec == nil {
		return nil
	}
	return n.gate
}

// openMaster opens the master role on the node's log and database.
func (n *Node) openMaster() (*master.Master, error) {
	mc, err := n.masterConfig()
	if err != nil {
		return nil, err
	}
	return master.Open(n.log, n.db, mc)
}

// openSlave opens the slave role, following masterURL.
func (n *Node) openSlave(masterURL string) (*slave.Slave, error) {
	cfg := n.cfg
	return slave.Open(n.db, slave.Config{ID: cfg.ID, URL: n.url, MasterURL: masterURL, Logger: n.logger, TLS: n.peerTLS,
		OnApply: n.metrics.ObserveApply, OnApplyFailure: n.metrics.ObserveApplyFailure, JoinFromSnapshot: cfg.JoinFromSnapshot,
		MasterUser: cfg.MasterUser, MasterPassword: cfg.MasterPassword, CheckCPU: n.snapshots.CPUShare,
		Log: n.log, Snapshots: n.snapshots, CompactEvery: cfg.CompactEvery,
		Retention: retention.Policy{Entries: cfg.RetainEntries, Bytes: cfg.RetainBytes, For: cfg.RetainFor}})
}

// Promote turns the slave into the master of the next epoch
// (api.RoleSwitch). The current master, if it answers, is fenced first
// (it takes no more writes) and the slave catches up with it, so that no
// write it acknowledged is lost; when it does not answer (it is down: a
// failover), the slave promotes with what it has: writes the lost master
// acknowledged that no slave received are lost (w=0; see README, "High
// availability"). force promotes even when the slave cannot catch up
// with a fenced master, or is in a state that refuses it.
func (n *Node) Promote(ctx context.Context, force bool) (client.PromoteResult, error) {
	n.roleMu.Lock()
	defer n.roleMu.Unlock()
	var res client.PromoteResult
	if n.master != nil {
		return res, fmt.Errorf("%w: this node is the master already (epoch %d)", api.ErrRoleSwitch, n.log.Epoch())
	}
	if n.elec != nil {
		return res, fmt.Errorf("%w: automatic failover is on (--etcd): the election chooses the master; stop the master to have another elected", api.ErrRoleSwitch)
	}
	sl := n.slave
	st := sl.Status()
	if st.State == client.StateDiverged && !force {
		return res, fmt.Errorf("%w: this slave diverged from its master (%s): promoting it would make its history the cluster's", api.ErrRoleSwitch, st.Err)
	}
	prev := sl.MasterURL()
	epoch := max(n.log.Epoch(), n.log.LastEpoch()) + 1
	res.Previous, res.Epoch, res.URL = prev, epoch, n.url
	// The other slaves of the current master, told of the new one below.
	peers := n.candidates(prev)
	pc := n.peerClient(prev)
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if mst, err := pc.LogStatus(sctx); err == nil {
		for _, s := range mst.Slaves {
			if s.URL != "" && s.URL != n.url && !slices.Contains(peers, s.URL) {
				peers = append(peers, s.URL)
			}
		}
	}
	last, ferr := pc.Fence(sctx, epoch)
	cancel()
	var se *client.StatusError
	switch {
	case ferr == nil:
		res.FencedAt = last
		n.logger.Info("promotion: fenced the master; catching up with it", "master", prev, "last_index", last, "epoch", epoch)
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		caught := n.waitApplied(wctx, sl, last)
		cancel()
		if !caught && !force {
			return res, fmt.Errorf("%w: the fenced master %s has index %d, this slave applied %d within 30s (it stays fenced; promote again, or with force to lose what this slave lacks)",
				api.ErrRoleSwitch, prev, last, n.db.AppliedIndex())
		}
	case errors.As(ferr, &se) && !force:
		return res, fmt.Errorf("%w: the master %s refused to be fenced: %w", api.ErrRoleSwitch, prev, ferr)
	default:
		n.logger.Warn("promotion: the master does not answer; promoting with what this slave has", "master", prev, "err", ferr,
			"applied_index", n.db.AppliedIndex(), "log_last_index", n.log.LastIndex())
	}
	index, err := n.becomeMaster(ctx, epoch)
	if err != nil {
		return res, fmt.Errorf("promote: %w", err)
	}
	res.Index = index
	n.logger.Warn("promoted: this node is the master", "epoch", epoch, "first_index", index, "previous", prev)
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.announce(epoch, append([]string{prev}, peers...)) }()
	return res, nil
}

// becomeMaster turns the node into the master of epoch, under roleMu: it
// closes the slave role (if any), records epoch in the log, opens the
// master role on the same files, appends the epoch's first entry, serves
// the master and records the role. It returns that entry's index. On an
// error before the master serves, the node is a slave again (of the same
// master).
func (n *Node) becomeMaster(ctx context.Context, epoch uint64) (uint64, error) {
	var prev string
	if sl := n.slave; sl != nil {
		prev = sl.MasterURL()
		if err := sl.Close(); err != nil {
			return 0, err
		}
		n.slave = nil
	} else if m := n.master; m != nil {
		// A master taking a higher epoch (elected again after another
		// led): its role opens anew.
		if err := m.Close(); err != nil {
			return 0, err
		}
		n.master = nil
	}
	undo := func(cause error) (uint64, error) {
		if prev != "" {
			if s, err := n.openSlave(prev); err == nil {
				n.slave = s
				_ = n.server.SetRole(nil, s)
			}
		}
		return 0, cause
	}
	if err := n.log.SetEpoch(epoch); err != nil {
		return undo(err)
	}
	m, err := n.openMaster()
	if err != nil {
		return undo(err)
	}
	index, err := m.StartEpoch(ctx)
	if err != nil {
		m.Close()
		return undo(err)
	}
	n.master = m
	if err := n.server.SetRole(m, nil); err != nil {
		return index, err
	}
	if err := n.recordRole(recordedRole{Role: "master", Epoch: epoch}); err != nil {
		n.logger.Error("the node is the master, but its role could not be recorded: a restart starts in the command line's role", "err", err)
	}
	return index, nil
}

// waitApplied waits until sl applied index, or ctx is done.
func (n *Node) waitApplied(ctx context.Context, sl *slave.Slave, index uint64) bool {
	for n.db.AppliedIndex() < index {
		if !sl.WaitApplied(ctx, index) && ctx.Err() != nil {
			return n.db.AppliedIndex() >= index
		}
	}
	return true
}

// announce tells every node in targets that this node is the master of
// epoch (POST /node/master), again and again for those that do not
// answer, until each did, this node is no longer that master, or it
// closes: a replaced master that comes back is fenced within seconds.
func (n *Node) announce(epoch uint64, targets []string) {
	pending := map[string]bool{}
	for _, t := range targets {
		if t != "" && t != n.url {
			pending[t] = true
		}
	}
	backoff := 200 * time.Millisecond
	for len(pending) > 0 {
		n.roleMu.Lock()
		still := n.master != nil && n.log.Epoch() == epoch
		n.roleMu.Unlock()
		if !still {
			return
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		// The goroutines delete from pending: range over its keys, not
		// over the map they change.
		for _, t := range slices.Collect(maps.Keys(pending)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(n.ctx, 2*time.Second)
				defer cancel()
				err := n.peerClient(t).Follow(ctx, n.url, epoch)
				var se *client.StatusError
				if err == nil || (errors.As(err, &se) && se.Status != 503) {
					// Done, or refused for good (it knows better).
					mu.Lock()
					delete(pending, t)
					mu.Unlock()
					if err == nil {
						n.logger.Info("told a node of the new master", "node", t, "epoch", epoch)
					} else {
						n.logger.Warn("a node refused the new master", "node", t, "epoch", epoch, "err", err)
					}
				}
			}()
		}
		wg.Wait()
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Fence stops the master taking writes for good (api.RoleSwitch): a
// promotion to epoch is under way elsewhere.
func (n *Node) Fence(ctx context.Context, epoch uint64) (uint64, error) {
	n.roleMu.Lock()
	m := n.master
	n.roleMu.Unlock()
	if m == nil {
		return 0, fmt.Errorf("%w: this node is not the master", api.ErrRoleSwitch)
	}
	if own := n.log.Epoch(); epoch <= own {
		return 0, fmt.Errorf("%w: epoch %d is not above this master's %d", api.ErrRoleSwitch, epoch, own)
	}
	return m.Fence(ctx, epoch)
}

// Follow makes the node a slave of the master at url, of epoch
// (api.RoleSwitch): a master of a lower epoch steps down, a slave
// re-points. A slave whose history is a prefix of the new master's goes
// on from where it is; one with entries the new master lacks drops them
// and bootstraps (slave.Superseded).
func (n *Node) Follow(ctx context.Context, url string, epoch uint64) error {
	n.roleMu.Lock()
	defer n.roleMu.Unlock()
	own := n.log.Epoch()
	switch {
	case epoch < own:
		return fmt.Errorf("%w: this node knows epoch %d; %s at epoch %d was replaced", api.ErrRoleSwitch, own, url, epoch)
	case n.master != nil && epoch == own:
		return fmt.Errorf("%w: this node is the master of epoch %d", api.ErrRoleSwitch, epoch)
	case n.slave != nil && n.slave.MasterURL() == url:
		if err := n.log.SetEpoch(epoch); err != nil {
			return err
		}
		return n.recordRole(recordedRole{Role: "slave", Master: url, Epoch: epoch})
	}
	if m := n.master; m != nil {
		if _, err := m.Fence(ctx, epoch); err != nil && !errors.Is(err, master.ErrStopped) {
			return err
		}
		if err := m.Close(); err != nil {
			return err
		}
		n.master = nil
		n.logger.Warn("stepping down: a master of a higher epoch replaced this one; following it", "master", url, "epoch", epoch,
			"own_epoch", own, "last_index", n.log.LastIndex())
	} else {
		if err := n.slave.Close(); err != nil {
			return err
		}
		n.logger.Info("re-pointing to a new master", "master", url, "epoch", epoch, "previous", n.slave.MasterURL())
		n.slave = nil
	}
	if err := n.log.SetEpoch(epoch); err != nil {
		return err
	}
	sl, err := n.openSlave(url)
	if err != nil {
		return err
	}
	n.slave = sl
	if err := n.server.SetRole(nil, sl); err != nil {
		return err
	}
	return n.recordRole(recordedRole{Role: "slave", Master: url, Epoch: epoch})
}

// onFenced is the master's news that a follower knows a higher epoch
// (master.Config.OnFenced): a promotion replaced this master. It stops
// writes at once, and follows the new master if one of its peers names it.
func (n *Node) onFenced(epoch uint64, follower string) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.roleMu.Lock()
		m := n.master
		n.roleMu.Unlock()
		if m == nil || m.Fenced() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		defer cancel()
		if _, err := m.Fence(ctx, epoch); err != nil {
			return
		}
		if url, e, found := n.findMaster(ctx, epoch, follower); found {
			if err := n.Follow(ctx, url, e); err != nil {
				n.logger.Warn("fenced, but could not follow the new master", "master", url, "err", err)
			}
		}
	}()
}

// watch is the node's watcher, until it closes: a slave that has not
// heard from its master for a few seconds looks for a master of its epoch
// or a higher one among the nodes it knows, and follows it (a promotion
// it was not told of).
func (n *Node) watch() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	silent := 0
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		n.roleMu.Lock()
		sl := n.slave
		n.roleMu.Unlock()
		if sl == nil {
			silent = 0
			continue
		}
		st := sl.Status()
		if st.State != client.StateDisconnected {
			silent = 0
			continue
		}
		if silent++; silent < 3 {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		url, epoch, found := n.findMaster(ctx, n.log.Epoch(), sl.MasterURL())
		if found && url != sl.MasterURL() {
			if err := n.Follow(ctx, url, epoch); err != nil {
				n.logger.Warn("could not follow the master found", "master", url, "err", err)
			}
		}
		cancel()
		silent = 0
	}
}

// Role returns the node's role now: "master" or "slave".
func (n *Node) Role() string {
	n.roleMu.Lock()
	defer n.roleMu.Unlock()
	if n.master != nil {
		return "master"
	}
	return "slave"
}

// Leading reports whether the node is the master and, with automatic
// failover, holds the leadership.
func (n *Node) Leading() bool {
	if n.Role() != "master" {
		return false
	}
	return n.elec == nil || n.leading.Load()
}
