package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/klauspost/compress/gzip"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
	"github.com/walship/walship/pace"
)

func (s *Server) registerBackupRoutes(r *mux.Router) {
	r.HandleFunc("/db/backup", s.handleBackup).Methods(http.MethodGet)
}

// backupFormat is what GET /db/backup was asked for.
type backupFormat struct {
	sql      bool     // a SQL dump, not a SQLite file
	compress bool     // gzip
	vacuum   bool     // the copy is vacuumed
	tables   []string // fmt=sql: only these tables
}

func parseBackupQuery(r *http.Request) (backupFormat, error) {
	q := r.URL.Query()
	var f backupFormat
	switch v := q.Get("fmt"); v {
	case "", "binary", "delete":
	case "sql":
		f.sql = true
	default:
		return f, fmt.Errorf("%w: fmt %q: use binary (a SQLite file, the default), delete (the same) or sql (a SQL dump)", ErrBadRequest, v)
	}
	_, f.compress = q["compress"]
	_, f.vacuum = q["vacuum"]
	if f.vacuum && f.sql {
		return f, fmt.Errorf("%w: invalid vacuum: vacuum applies to a SQLite file, not to fmt=sql", ErrBadRequest)
	}
	if t := q.Get("tables"); t != "" {
		if !f.sql {
			return f, fmt.Errorf("%w: tables applies to fmt=sql only", ErrBadRequest)
		}
		for _, name := range strings.Split(t, ",") {
			if name = strings.TrimSpace(name); name != "" {
				f.tables = append(f.tables, name)
			}
		}
	}
	return f, nil
}

// handleBackup serves GET /db/backup on every node: this node's database
// as a SQLite file taken without stopping writes (a copy in one read
// transaction, switched to the rollback journal so that it is one file),
// or with ?fmt=sql as a SQL dump; ?compress gzips it, ?vacuum vacuums the
// copy. X-Walship-Index and X-Walship-Log-Id say the position it holds (a
// slave's backup is at the index it applied). The copy is paced like a
// snapshot (--snapshot-cpu) so that writes keep most of the machine.
func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	f, err := parseBackupQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// A large backup takes longer than the server's write timeout; a
	// client that goes away ends it.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	tmp := filepath.Join(filepath.Dir(s.db().Path()), fmt.Sprintf("backup-%d.tmp", time.Now().UnixNano()))
	share := 0.0
	if s.Snapshots != nil {
		tmp, share = s.Snapshots.TempPath("backup"), s.Snapshots.CPUShare
	}
	pacer := pace.New(share).Pace
	started := time.Now()
	if f.sql {
		s.streamDump(w, r, f, started)
		return
	}
	if !f.vacuum {
		s.streamBackup(w, r, f, pacer, started)
		return
	}
	defer os.Remove(tmp)
	pos, err := s.db().BackupFile(r.Context(), tmp, db.BackupOptions{Vacuum: f.vacuum, Pace: pacer})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	file, err := os.Open(tmp)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h := w.Header()
	setPosition(h, pos)
	name, ctype := "backup.sqlite", "application/octet-stream"
	if f.sql {
		name, ctype = "backup.sql", "application/sql"
	}
	if f.compress {
		name, ctype = name+".gz", "application/gzip"
	} else {
		h.Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	}
	h.Set("Content-Type", ctype)
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	n, err := copyOut(r.Context(), w, file, f.compress, pacer)
	s.logger.Info("backup served", "index", pos.Index, "bytes", fi.Size(), "sent", n, "compress", f.compress,
		"vacuum", f.vacuum, "took", time.Since(started).Round(time.Millisecond), "err", err)
}

// streamBackup serves the database file as it is read, page by page, in
// one read transaction (db.Stream): no copy on disk, which would cost the
// writer's fsyncs as much as the copy itself.
func (s *Server) streamBackup(w http.ResponseWriter, r *http.Request, f backupFormat, pacer func(context.Context) error, started time.Time) {
	st, err := s.db().StreamBackup(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer st.Close()
	st.Pace = pacer
	h := w.Header()
	setPosition(h, st.Position)
	name, ctype := "backup.sqlite", "application/octet-stream"
	if f.compress {
		name, ctype = name+".gz", "application/gzip"
	} else {
		h.Set("Content-Length", strconv.FormatInt(st.Size, 10))
	}
	h.Set("Content-Type", ctype)
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	var out io.Writer = w
	var zw *gzip.Writer
	if f.compress {
		zw, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		out = zw
	}
	bw := bufio.NewWriterSize(out, 256<<10)
	n, err := st.WriteTo(r.Context(), bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && zw != nil {
		err = zw.Close()
	}
	s.logger.Info("backup served", "index", st.Position.Index, "bytes", st.Size, "sent", n, "compress", f.compress,
		"took", time.Since(started).Round(time.Millisecond), "err", err)
	if err != nil {
		// The answer is cut: the client sees less than Content-Length
		// (or a gzip stream without its end) and knows.
		panic(http.ErrAbortHandler)
	}
}

// streamDump serves the SQL dump as it is read, in one read transaction:
// the headers, with the position it holds, go once the dump has started
// (everything that can fail before a byte is written has passed, and is
// answered as an error).
func (s *Server) streamDump(w http.ResponseWriter, r *http.Request, f backupFormat, started time.Time) {
	h := w.Header()
	var out io.Writer = w
	var zw *gzip.Writer
	if f.compress {
		zw, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		out = zw
	}
	sent := false
	pos, err := s.db().DumpStart(r.Context(), out, f.tables, func(pos db.Position) error {
		setPosition(h, pos)
		name, ctype := "backup.sql", "application/sql"
		if f.compress {
			name, ctype = name+".gz", "application/gzip"
		}
		h.Set("Content-Type", ctype)
		h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
		sent = true
		return nil
	})
	if err == nil && zw != nil {
		err = zw.Close()
	}
	s.logger.Info("dump served", "index", pos.Index, "compress", f.compress, "took", time.Since(started).Round(time.Millisecond), "err", err)
	if err != nil {
		if !sent {
			s.writeError(w, r, err)
			return
		}
		// The answer is cut: it lacks its COMMIT (or its gzip end).
		panic(http.ErrAbortHandler)
	}
}

func setPosition(h http.Header, pos db.Position) {
	h.Set(client.HeaderIndex, strconv.FormatUint(pos.Index, 10))
	h.Set(client.HeaderLogID, pos.LogID)
}

// copyOut copies src to w, gzipped if compress, pacing every MiB.
func copyOut(ctx context.Context, w io.Writer, src io.Reader, compress bool, pace func(context.Context) error) (int64, error) {
	var zw *gzip.Writer
	out := w
	if compress {
		zw, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		out = zw
	}
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, rerr := io.ReadFull(src, buf)
		if k > 0 {
			if _, err := out.Write(buf[:k]); err != nil {
				return n, err
			}
			n += int64(k)
			if compress {
				if err := pace(ctx); err != nil {
					return n, err
				}
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return n, rerr
		}
	}
	if zw != nil {
		return n, zw.Close()
	}
	return n, nil
}
