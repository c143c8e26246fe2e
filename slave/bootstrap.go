package slave

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/snapshot"
)

// errBootstrap is follow's error when the master no longer holds the
// entries the slave needs: it bootstraps from a snapshot.
var errBootstrap = errors.New("the master compacted the entries this slave needs; bootstrapping from its snapshot")

// bootstrap downloads the master's snapshot into the data directory
// (resuming a download cut before, of the same snapshot), checks it, and
// installs it in place of the database; the slave then follows the log
// from the snapshot's index. A damaged download is thrown away and never
// installed; an error leaves the old database as it was.
func (s *Slave) bootstrap(ctx context.Context) error {
	s.setState(client.StateBootstrapping, nil)
	dir := filepath.Dir(s.db.Path())
	part := filepath.Join(dir, "bootstrap.sqlite.zst.part")
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	s.mu.Lock()
	etag := s.bootETag
	s.mu.Unlock()
	if etag == "" {
		have = 0 // which snapshot the part is of is not known: start over
	}
	snap, err := s.snapshots.Snapshot(ctx, have, etag)
	if err != nil {
		return fmt.Errorf("bootstrap: download the snapshot: %w", err)
	}
	defer snap.Body.Close()
	if own := s.db.LogID(); own != "" && own != snap.LogID {
		err := fmt.Errorf("the master's snapshot is of log %s, this slave follows %s", snap.LogID, own)
		s.setState(client.StateDiverged, err)
		return fmt.Errorf("%w: %w", ErrDiverged, err)
	}
	if snap.Offset == 0 {
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		have = 0
	}
	if _, err := f.Seek(snap.Offset, io.SeekStart); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	s.mu.Lock()
	s.bootETag, s.bootDone, s.bootTotal = snap.ETag, snap.Offset, snap.Total
	s.mu.Unlock()
	s.cfg.Logger.Info("bootstrapping from the master's snapshot", "index", snap.Index, "bytes", snap.Total, "resumed_at", snap.Offset)
	if err := s.copyProgress(ctx, f, snap); err != nil {
		return fmt.Errorf("bootstrap: download the snapshot: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	tmp := filepath.Join(dir, "bootstrap.sqlite.tmp")
	_ = os.Remove(tmp)
	if err := snapshot.Extract(f, tmp, snap.SHA256, snap.Size); err != nil {
		// Damaged (or cut where the length said it was whole): start
		// over next time.
		_ = f.Truncate(0)
		s.mu.Lock()
		s.bootETag = ""
		s.mu.Unlock()
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := s.db.Install(tmp); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("bootstrap: %w", err)
	}
	_ = os.Remove(part)
	s.mu.Lock()
	// The epoch of the snapshot's last entry is not known: the next feed
	// request checks the log_id only.
	s.appliedIndex, s.knowsEpoch = snap.Index, false
	s.bootETag, s.bootDone, s.bootTotal = "", 0, 0
	s.mu.Unlock()
	s.setState(client.StateCatchingUp, nil)
	s.cfg.Logger.Info("bootstrapped: installed the master's snapshot", "applied_index", s.db.AppliedIndex())
	return nil
}

// copyProgress copies the snapshot's body to f, keeping the progress for
// the status and logging it every few seconds.
func (s *Slave) copyProgress(ctx context.Context, f *os.File, snap *client.SnapshotBody) error {
	buf := make([]byte, 256<<10)
	lastLog := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := snap.Body.Read(buf)
		if n > 0 {
			if _, err := f.Write(buf[:n]); err != nil {
				return err
			}
			s.mu.Lock()
			s.bootDone += int64(n)
			done, total := s.bootDone, s.bootTotal
			s.mu.Unlock()
			if time.Since(lastLog) > 2*time.Second {
				lastLog = time.Now()
				s.cfg.Logger.Info("bootstrapping", "bytes_done", done, "bytes_total", total)
			}
		}
		if rerr == io.EOF {
			return f.Sync()
		}
		if rerr != nil {
			return rerr
		}
	}
}

// snapshotClient returns the client that downloads snapshots: no overall
// time limit (a snapshot may be large), but a master that sends no answer
// for a long while is given up.
func snapshotClient(masterURL string) *client.Client {
	c := client.New(masterURL)
	tr := client.NewTransport()
	tr.ResponseHeaderTimeout = 5 * time.Minute // the master may take a snapshot first
	c.HTTP = &http.Client{Transport: tr}
	return c
}
