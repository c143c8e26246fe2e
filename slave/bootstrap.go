package slave

import (
	"context"
	"crypto/tls"
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

// The files of a bootstrap in progress, in the database's directory: the
// compressed snapshot as downloaded, and the database extracted from it.
const (
	bootstrapPart = "bootstrap.sqlite.zst.part"
	bootstrapTmp  = "bootstrap.sqlite.tmp"
)

// removeBootstrapFiles removes what a bootstrap left in dir.
func removeBootstrapFiles(dir string) {
	for _, name := range []string{bootstrapPart, bootstrapTmp} {
		_ = os.Remove(filepath.Join(dir, name))
	}
}

// bootstrap downloads the master's snapshot into the data directory
// (resuming a download cut before, of the same snapshot), checks it, and
// installs it in place of the database; the slave then follows the log
// from the snapshot's index. A damaged download is thrown away and never
// installed; an error leaves the old database as it was.
func (s *Slave) bootstrap(ctx context.Context) error {
	s.setState(client.StateBootstrapping, nil)
	dir := filepath.Dir(s.db.Path())
	part := filepath.Join(dir, bootstrapPart)
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
	s.mu.Lock()
	newLogID := s.newLogID
	s.mu.Unlock()
	if own := s.db.LogID(); own != "" && own != snap.LogID && snap.LogID != newLogID {
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
	dl := &download{s: s, ctx: ctx, body: snap.Body, part: f, lastLog: time.Now()}
	src := io.Reader(dl)
	if snap.Offset > 0 {
		// Resumed: the rest joins the part, then the whole is extracted.
		if _, err := io.Copy(io.Discard, dl); err != nil {
			return fmt.Errorf("bootstrap: download the snapshot: %w", err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		src = f
	}
	// From the start, the snapshot is extracted as it arrives (and kept in
	// the part, for a resume if the download is cut).
	tmp := filepath.Join(dir, bootstrapTmp)
	_ = os.Remove(tmp)
	if err := snapshot.Extract(src, tmp, snap.SHA256, snap.Size); err != nil {
		if dl.err != nil {
			// Cut: the part resumes next time.
			return fmt.Errorf("bootstrap: download the snapshot: %w", dl.err)
		}
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
	if s.log != nil {
		// The log continues the snapshot; a failure here is mended by
		// the next entries (keep starts it again there).
		if err := s.log.Restart(snap.LogID, snap.Index+1); err != nil {
			s.cfg.Logger.Warn("bootstrap: could not start the slave's log after the snapshot", "err", err)
		}
	}
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

// joinFromSnapshot is an empty slave's choice at start: it bootstraps from
// the master's latest snapshot when the snapshot is at least
// Config.JoinFromSnapshot entries in. It reports whether to ask again (the
// master did not answer), and the bootstrap's error.
func (s *Slave) joinFromSnapshot(ctx context.Context) (again bool, err error) {
	st, err := s.master.LogStatus(ctx)
	if err != nil {
		return true, nil // unreachable: follow says so, and this is asked again
	}
	if st.SnapshotIndex == nil || *st.SnapshotIndex < s.cfg.JoinFromSnapshot || s.db.AppliedIndex() != 0 {
		return false, nil
	}
	s.cfg.Logger.Info("empty slave: joining from the master's snapshot rather than replaying its log",
		"snapshot_index", *st.SnapshotIndex, "master_last_index", st.LastIndex)
	return false, s.bootstrap(ctx)
}

// download reads the snapshot's body, appends what it reads to the part
// file, keeps the progress for the status and logs it every few seconds.
// err is the download's failure (reading the body or writing the part),
// apart from the end of the body.
type download struct {
	s       *Slave
	ctx     context.Context
	body    io.Reader
	part    io.Writer
	lastLog time.Time
	err     error
}

func (d *download) Read(p []byte) (int, error) {
	if err := d.ctx.Err(); err != nil {
		d.err = err
		return 0, err
	}
	n, err := d.body.Read(p)
	if n > 0 {
		if _, werr := d.part.Write(p[:n]); werr != nil {
			d.err = werr
			return 0, werr
		}
		s := d.s
		s.mu.Lock()
		s.bootDone += int64(n)
		done, total := s.bootDone, s.bootTotal
		s.mu.Unlock()
		if time.Since(d.lastLog) > 2*time.Second {
			d.lastLog = time.Now()
			s.cfg.Logger.Info("bootstrapping", "bytes_done", done, "bytes_total", total)
		}
	}
	if err != nil && err != io.EOF {
		d.err = err
	}
	return n, err
}

// snapshotClient returns the client that downloads snapshots: no overall
// time limit (a snapshot may be large), but a master that sends no answer
// for a long while is given up.
func snapshotClient(masterURL string, tlsConfig *tls.Config) *client.Client {
	c := client.New(masterURL)
	tr := client.NewTLSTransport(tlsConfig)
	tr.ResponseHeaderTimeout = 5 * time.Minute // the master may take a snapshot first
	c.HTTP = &http.Client{Transport: tr}
	return c
}
