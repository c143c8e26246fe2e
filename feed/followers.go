package feed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/walship/walship/durable"
)

// The feed knows its followers by id: their progress as each request
// reports it, whether they are alive, and, across restarts of the node,
// which ones it knew (StateFile): those are listed as not heard from since
// the restart until they ask again. A follower not heard from for
// LostAfter is logged as lost once, and as back once it asks again, with
// how long it was away. Two live followers never share an id.

// LostAfter is how long a follower may be silent before it is taken for
// lost: long-polls end at least every heartbeat (250 ms by default), so
// this is a dozen missed ones.
const LostAfter = 3 * time.Second

// dupWindow is how recently a follower must have asked for its id to be
// refused to another URL: a restarted follower on another port gets its
// id back once this passed.
const dupWindow = 2 * time.Second

// Follower states (Follower.State).
const (
	FollowerLive    = "live"
	FollowerLost    = "lost"
	FollowerUnknown = "unknown since restart"
)

type follower struct {
	id, url           string
	applied, received uint64
	lastSeen          time.Time
	heard             bool // asked since this node started
	lost              bool // logged as lost, not back yet
}

// Follower is one follower's progress as the feed last heard of it.
type Follower struct {
	ID       string
	URL      string
	Applied  uint64
	Received uint64
	Lag      uint64
	LastSeen time.Time
	// State is FollowerLive, FollowerLost, or FollowerUnknown (known
	// before this node restarted, not heard from since).
	State string
}

// savedFollower is one follower in the StateFile.
type savedFollower struct {
	ID       string    `json:"id"`
	URL      string    `json:"url"`
	Applied  uint64    `json:"applied_index"`
	LastSeen time.Time `json:"last_seen"`
}

// stateFile is where the followers are kept, "" for nowhere.
func (f *Feed) stateFile() string {
	switch f.cfg.StateFile {
	case "-":
		return ""
	case "":
		return filepath.Join(filepath.Dir(f.log.Path()), "followers.json")
	}
	return f.cfg.StateFile
}

// load reads the followers the feed knew before a restart.
func (f *Feed) load() {
	path := f.stateFile()
	if path == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			f.cfg.Logger.Warn("could not read the slaves known before the restart", "file", path, "err", err)
		}
		return
	}
	var saved []savedFollower
	if err := json.Unmarshal(b, &saved); err != nil {
		f.cfg.Logger.Warn("could not read the slaves known before the restart", "file", path, "err", err)
		return
	}
	for _, s := range saved {
		if s.ID != "" {
			f.followers[s.ID] = &follower{id: s.ID, url: s.URL, applied: s.Applied, lastSeen: s.LastSeen}
		}
	}
}

// save writes the followers to the StateFile, under mu.
func (f *Feed) save() {
	path := f.stateFile()
	if path == "" {
		return
	}
	saved := make([]savedFollower, 0, len(f.followers))
	for _, fl := range f.followers {
		saved = append(saved, savedFollower{ID: fl.id, URL: fl.url, Applied: fl.applied, LastSeen: fl.lastSeen})
	}
	sort.Slice(saved, func(i, j int) bool { return saved[i].ID < saved[j].ID })
	b, _ := json.MarshalIndent(saved, "", "  ")
	if err := durable.WriteFile(path, b, 0o644); err != nil {
		f.cfg.Logger.Warn("could not record the slaves known", "file", path, "err", err)
	}
}

// record keeps the follower's progress; a live follower of the same id at
// another URL refuses it (ErrDuplicateID).
func (f *Feed) record(req Request) error {
	now := f.cfg.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	fl := f.followers[req.SlaveID]
	switch {
	case fl == nil:
		fl = &follower{id: req.SlaveID}
		f.followers[req.SlaveID] = fl
		f.cfg.Logger.Info("slave connected", "peer", req.SlaveID, "url", req.SlaveURL)
		defer f.save()
	case fl.heard && fl.url != req.SlaveURL && now.Sub(fl.lastSeen) < dupWindow:
		err := &ConflictError{Err: ErrDuplicateID, Epoch: f.log.Epoch(),
			Msg: fmt.Sprintf("slave id %s is taken by %s (heard from %s ago): give the slave at %s another --id",
				req.SlaveID, fl.url, now.Sub(fl.lastSeen).Round(time.Millisecond), req.SlaveURL)}
		f.cfg.Logger.Warn("refused a slave: another one uses its id", "peer", req.SlaveID, "url", req.SlaveURL, "taken_by", fl.url)
		return err
	case !fl.heard:
		f.cfg.Logger.Info("slave connected", "peer", req.SlaveID, "url", req.SlaveURL, "known_before_restart", !fl.lastSeen.IsZero())
	case fl.lost:
		f.cfg.Logger.Info("slave reconnected", "peer", req.SlaveID, "url", req.SlaveURL, "away", now.Sub(fl.lastSeen).Round(time.Millisecond))
	}
	if fl.url != req.SlaveURL && fl.url != "" {
		defer f.save()
	}
	received := req.Received
	if req.Applied > fl.applied || received > fl.received {
		close(f.progressed)
		f.progressed = make(chan struct{})
	}
	fl.url, fl.applied, fl.received, fl.lastSeen = req.SlaveURL, req.Applied, received, now
	fl.heard, fl.lost = true, false
	return nil
}

// Watch logs each follower lost (silent for LostAfter) once, and keeps the
// StateFile up to date, until ctx is done. The feed's owner runs it.
func (f *Feed) Watch(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	saved := time.Now()
	for {
		select {
		case <-ctx.Done():
			f.mu.Lock()
			f.save()
			f.mu.Unlock()
			return
		case <-t.C:
		}
		now := f.cfg.Now()
		f.mu.Lock()
		for _, fl := range f.followers {
			if fl.heard && !fl.lost && now.Sub(fl.lastSeen) > LostAfter {
				fl.lost = true
				f.cfg.Logger.Warn("slave disconnected: not heard from", "peer", fl.id, "url", fl.url,
					"silent", now.Sub(fl.lastSeen).Round(time.Millisecond), "applied_index", fl.applied)
			}
		}
		if time.Since(saved) >= 10*time.Second {
			f.save()
			saved = time.Now()
		}
		f.mu.Unlock()
	}
}

// Remove forgets the follower id (a slave taken out of service). One that
// still runs comes back at its next request.
func (f *Feed) Remove(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.followers[id]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownFollower, id)
	}
	delete(f.followers, id)
	f.save()
	f.cfg.Logger.Info("slave removed", "peer", id)
	return nil
}

// Followers returns every follower the feed knows, by id.
func (f *Feed) Followers() []Follower {
	last := f.log.LastIndex()
	now := f.cfg.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Follower, 0, len(f.followers))
	for _, fl := range f.followers {
		lag := uint64(0)
		if last > fl.applied {
			lag = last - fl.applied
		}
		state := FollowerLive
		switch {
		case !fl.heard:
			state = FollowerUnknown
		case fl.lost || now.Sub(fl.lastSeen) > LostAfter:
			state = FollowerLost
		}
		out = append(out, Follower{ID: fl.id, URL: fl.url, Applied: fl.applied, Received: fl.received, Lag: lag,
			LastSeen: fl.lastSeen, State: state})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
