package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/snapshot"
)

// ErrNoSnapshots is returned when the node keeps no snapshots.
var ErrNoSnapshots = errors.New("this node keeps no snapshots")

func (s *Server) registerSnapshotRoutes(r *mux.Router) {
	r.HandleFunc("/db/snapshot", s.handleSnapshot).Methods(http.MethodGet, http.MethodHead)
}

// handleSnapshot serves GET /db/snapshot: the node's latest snapshot, made
// now if it has none or with ?fresh, as the database file compressed with
// zstd. The position and the file's checksum are in the headers; a Range
// request resumes a cut download of the same snapshot (If-Range with its
// ETag makes sure it is the same).
func (s *Server) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	if s.Snapshots == nil {
		s.writeError(w, r, ErrNoSnapshots)
		return
	}
	info, err := s.Snapshots.Latest()
	_, fresh := r.URL.Query()["fresh"]
	// A snapshot of a history the database left (a load) is no one's;
	// one older than the node's log begins (a slave that bootstrapped
	// since, its log started again after the snapshot it installed) would
	// leave a follower short of entries: both are taken anew.
	stale := err == nil && info.LogID != s.db().LogID()
	if fd := s.feed(); err == nil && fd != nil && info.Index+1 < fd.Log().FirstIndex() {
		stale = true
	}
	if errors.Is(err, snapshot.ErrNone) || (fresh && err == nil) || stale {
		info, err = s.Snapshots.Make(r.Context(), s.db())
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f, err := s.Snapshots.Open(info)
	if err != nil {
		// Replaced by a newer one meanwhile: the client asks again.
		s.writeError(w, r, fmt.Errorf("%w: %w", ErrSnapshotGone, err))
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", client.SnapshotContentType)
	h.Set(client.HeaderIndex, strconv.FormatUint(info.Index, 10))
	h.Set(client.HeaderLogID, info.LogID)
	h.Set(client.HeaderSnapshotSHA256, info.SHA256)
	h.Set(client.HeaderSnapshotSize, strconv.FormatInt(info.Size, 10))
	h.Set("ETag", `"`+info.SHA256+`"`)
	http.ServeContent(w, r, "", info.Created, f)
}
