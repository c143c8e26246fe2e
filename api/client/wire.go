package client

// This file defines walship's wire protocol: the JSON bodies of the
// seed-compatible POST /, /log/status, and the framing of the replication
// feed GET /log/entries. The server (package api) and this client both use
// these types, so the two cannot drift apart.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/walship/walship/wal"
)

// SeedRequest is the body of the seed-compatible POST /.
type SeedRequest struct {
	Command string `json:"command"` // "exec" or "query"
	Query   string `json:"query"`
	// Params are positional parameters (?, ?NNN), sent as "params": [v,
	// …]; Named are named ones (:name, @name or $name in the SQL, the
	// key without its prefix, as rqlite takes them), sent as "params":
	// {"name": v, …}. A request has one or the other.
	Params   []any          `json:"params,omitempty"`
	Named    map[string]any `json:"-"`
	IsMaster bool           `json:"is_master"`
	// MinIndex, for a query, is a read token: the node answers once it has
	// applied this index (the index of a write the client made), so that
	// the read sees that write on any node.
	MinIndex uint64 `json:"min_index,omitempty"`
	// W and Applied, for an exec, are a write concern: the master answers
	// once W slaves hold the write fsynced in their log, or with Applied
	// once they have applied it. Nil W: the master's default
	// (--min-replicas); 0: no wait.
	W       *int `json:"w,omitempty"`
	Applied bool `json:"applied,omitempty"`
	// BlobArray asks for BLOB values as arrays of their byte values
	// (rqlite's ?blob_array), told apart from text; else base64 text.
	BlobArray bool `json:"blob_array,omitempty"`
}

// ErrParamsShape is returned when a seed request's "params" is neither an
// array nor an object.
var ErrParamsShape = errors.New(`"params" must be an array of values, for ? and ?NNN, or an object of named values, {"name": value}, for :name, @name or $name`)

// seedRequestFields is SeedRequest without its methods.
type seedRequestFields SeedRequest

// MarshalJSON sends Named, if set, as the "params" object.
func (r SeedRequest) MarshalJSON() ([]byte, error) {
	if r.Named == nil {
		return json.Marshal(seedRequestFields(r))
	}
	if len(r.Params) > 0 {
		return nil, errors.New("a seed request has positional or named parameters, not both")
	}
	return json.Marshal(struct {
		seedRequestFields
		Params map[string]any `json:"params"`
	}{seedRequestFields(r), r.Named})
}

// UnmarshalJSON reads "params" as an array (Params) or an object (Named);
// numbers are kept as json.Number, so that an integer keeps every digit.
func (r *SeedRequest) UnmarshalJSON(b []byte) error {
	var v struct {
		seedRequestFields
		Params json.RawMessage `json:"params"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return err
	}
	*r = SeedRequest(v.seedRequestFields)
	r.Params, r.Named = nil, nil
	raw := bytes.TrimSpace(v.Params)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	dec = json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	switch raw[0] {
	case '[':
		return dec.Decode(&r.Params)
	case '{':
		return dec.Decode(&r.Named)
	}
	return fmt.Errorf("%w, not %s", ErrParamsShape, jsonKind(raw[0]))
}

// jsonKind names the kind of JSON value that starts with c.
func jsonKind(c byte) string {
	switch {
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	}
	return "a number"
}

// Replicas says how a write concern went: how many slaves held the write
// fsynced in their log (Received, for w=N) or had applied it (Applied, for
// w=N&applied) when it was answered; Shortfall, if set, says the write is
// committed but fewer slaves had it than asked for.
type Replicas struct {
	Wanted    int    `json:"wanted"`
	Received  int    `json:"received,omitempty"`
	Applied   int    `json:"applied,omitempty"`
	Shortfall string `json:"shortfall,omitempty"`
}

// SeedResponse is the answer of POST /. An exec fills RowsAffected and
// LastInsertID (and Columns/Values when its last statement returned rows,
// as INSERT … RETURNING does); a query fills Columns, Types and Values with
// the last statement's rows. Index is the log index of the write, or the
// node's applied index for a query.
type SeedResponse struct {
	RowsAffected *int64   `json:"rows_affected,omitempty"`
	LastInsertID *int64   `json:"last_insert_id,omitempty"`
	Columns      []string `json:"columns,omitempty"`
	Types        []string `json:"types,omitempty"`
	Values       [][]any  `json:"values,omitempty"`
	Index        uint64   `json:"index"`
	// Pending is set on a slave when the master committed the write but
	// the slave had not applied it yet when its wait ran out.
	Pending bool `json:"pending,omitempty"`
	// Replicas is set on a write sent with a write concern (W).
	Replicas *Replicas `json:"replicas,omitempty"`
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error string `json:"error"`
	// Master is the master's URL, on a slave's 403 for a schema statement.
	Master string `json:"master,omitempty"`
	// SQLiteCode and SQLiteExtendedCode are SQLite's primary and extended
	// result codes when SQLite refused a statement (19 and 2067 for a
	// UNIQUE constraint), absent otherwise.
	SQLiteCode         int `json:"sqlite_code,omitempty"`
	SQLiteExtendedCode int `json:"sqlite_extended_code,omitempty"`
	// SnapshotIndex is, on the feed's 410 Gone, the index of the master's
	// latest snapshot: the entries before the log's first index are there.
	SnapshotIndex uint64 `json:"snapshot_index,omitempty"`
	// NewLogID is, on the feed's 410 Gone, set when the slave follows a
	// history the master left (a load or a restore started a new log):
	// the slave bootstraps from the snapshot of this log.
	NewLogID string `json:"new_log_id,omitempty"`
	// On the feed's 409 Conflict: Epoch is the node's epoch; Fenced says
	// the slave knows a higher one (a newer master replaced the node);
	// SupersededFrom, when set, is the first index from which the
	// slave's entries are not the node's history (a replaced master wrote
	// them): the slave drops them and bootstraps.
	Epoch          uint64 `json:"epoch,omitempty"`
	Fenced         bool   `json:"fenced,omitempty"`
	SupersededFrom uint64 `json:"superseded_from,omitempty"`
	// DuplicateID, on the feed's 409, says another live slave uses the
	// slave's id.
	DuplicateID bool `json:"duplicate_id,omitempty"`
}

// SlaveStatus is one slave as the master last heard of it.
type SlaveStatus struct {
	ID           string `json:"id"`
	URL          string `json:"url"`
	AppliedIndex uint64 `json:"applied_index"`
	// ReceivedIndex is the last index the slave holds fsynced in its
	// own log; absent for a slave that keeps none.
	ReceivedIndex uint64 `json:"received_index,omitempty"`
	LagEntries    uint64 `json:"lag_entries"`
	LastSeen      string `json:"last_seen"` // RFC 3339
	// State is "live", "lost" (not heard from for a few seconds) or
	// "unknown since restart" (known before the node restarted, not heard
	// from since).
	State string `json:"state,omitempty"`
}

// LogStatus is the body of GET /log/status. Slaves lists every slave that
// pulled the node's log (a slave that keeps a log serves it too: slaves
// may follow a slave). On a master, State is StateHalted (else empty); on
// a slave, FirstIndex and LastIndex are its master's as last heard,
// LogFirstIndex and LogLastIndex its own log's, and State is one of the
// other State* values.
type LogStatus struct {
	Role            string        `json:"role"`
	ID              string        `json:"id,omitempty"`
	LogID           string        `json:"log_id"`
	Epoch           uint64        `json:"epoch,omitempty"`
	Master          string        `json:"master,omitempty"`
	State           string        `json:"state,omitempty"`
	FirstIndex      uint64        `json:"first_index"`
	LastIndex       uint64        `json:"last_index"`
	AppliedIndex    uint64        `json:"applied_index"`
	MasterLastIndex *uint64       `json:"master_last_index,omitempty"`
	LagEntries      *uint64       `json:"lag_entries,omitempty"`
	Error           string        `json:"error,omitempty"`
	Slaves          []SlaveStatus `json:"slaves,omitempty"`
	// Superseded is, on a node that dropped entries for a new master's
	// history (a replaced master wrote them), which ones; absent if none.
	Superseded *Superseded `json:"superseded,omitempty"`
	// On a slave that keeps a log: its bounds.
	LogFirstIndex *uint64 `json:"log_first_index,omitempty"`
	LogLastIndex  *uint64 `json:"log_last_index,omitempty"`
	// On a master: the bytes its log files take, how many files, and its
	// latest snapshot's index and age in seconds.
	LogBytes        int64    `json:"log_bytes,omitempty"`
	LogSegments     int      `json:"log_segments,omitempty"`
	SnapshotIndex   *uint64  `json:"snapshot_index,omitempty"`
	SnapshotAgeSecs *float64 `json:"snapshot_age_seconds,omitempty"`
	// On a master with an archive (--archive): its directory, the index
	// up to which the log's entries are archived, the archive's newest
	// snapshot, and why archiving fails and since when (empty while it
	// works; compaction waits meanwhile).
	ArchiveDir            string   `json:"archive_dir,omitempty"`
	ArchiveIndex          *uint64  `json:"archive_index,omitempty"`
	ArchiveSnapshotIndex  *uint64  `json:"archive_snapshot_index,omitempty"`
	ArchiveError          string   `json:"archive_error,omitempty"`
	ArchiveFailingSeconds *float64 `json:"archive_failing_seconds,omitempty"`
	// On a bootstrapping slave: the snapshot's bytes received and in all.
	BootstrapBytesDone  int64 `json:"bootstrap_bytes_done,omitempty"`
	BootstrapBytesTotal int64 `json:"bootstrap_bytes_total,omitempty"`
	// LastCheck is the node's latest replica check; absent before the
	// first.
	LastCheck *CheckStatus `json:"last_check,omitempty"`
}

// Superseded names the entries a node dropped because a new master's
// history replaced them: From..To, of epoch Epoch (and earlier), against
// the new master's NewEpoch, at Time (RFC 3339).
type Superseded struct {
	From     uint64 `json:"from"`
	To       uint64 `json:"to"`
	Epoch    uint64 `json:"epoch"`
	NewEpoch uint64 `json:"new_epoch"`
	Time     string `json:"time"`
}

// CheckStatus is a node's latest replica check (POST /db/verify, and the
// markers of the master's --verify-every), in /log/status.
type CheckStatus struct {
	// Index is the marker's index: the content checked.
	Index uint64 `json:"index"`
	// ResultIndex is the index of the entry with the master's sums.
	ResultIndex uint64 `json:"result_index,omitempty"`
	// Result is one of the Check* results.
	Result string `json:"result"`
	// Differs names the parts (tables, sqlite_schema, sqlite_header)
	// whose content differs from the master's, on CheckMismatch.
	Differs []string `json:"differs,omitempty"`
	// Time is when the check ended (RFC 3339).
	Time string `json:"time"`
	// Error says why a check was skipped or failed.
	Error string `json:"error,omitempty"`
}

// Results of a replica check (CheckStatus.Result).
const (
	// CheckRecorded: the master hashed its content and logged the sums.
	CheckRecorded = "recorded"
	// CheckOK: the slave's content at the marker is the master's.
	CheckOK = "ok"
	// CheckMismatch: the slave's content differs; it stopped applying
	// (state diverged).
	CheckMismatch = "mismatch"
	// CheckSkipped: the node has no sums of its own at the marker (it
	// restarted or installed a snapshot after it), or the master skipped
	// a marker while a check ran.
	CheckSkipped = "skipped"
	// CheckFailed: the master could not hash its content.
	CheckFailed = "failed"
)

// VerifyResponse is the answer of POST /db/verify: the index of the
// marker whose content every node checks and, when the request waited
// (?wait, ?timeout), the index of the entry that carries the master's
// sums and those sums by part (hex SHA-256).
type VerifyResponse struct {
	Index       uint64            `json:"index"`
	ResultIndex uint64            `json:"result_index,omitempty"`
	Sums        map[string]string `json:"sums,omitempty"`
}

// NodeStatus is the part of GET /status that names a node: its id,
// role and advertised URL, and its log's status.
type NodeStatus struct {
	Node struct {
		ID      string `json:"id"`
		Role    string `json:"role"`
		APIAddr string `json:"api_addr"`
	} `json:"node"`
	Log *LogStatus `json:"log"`
}

// ClusterStatus is the body of GET /log/cluster: every node the answering
// node learns of (the followers each node lists, the node each slave
// follows), the master first. The web console draws it.
type ClusterStatus struct {
	// Node is the answering node's URL.
	Node string `json:"node"`
	// Master is the master's URL, empty when no node leads to one; LogID,
	// Epoch and LastIndex are its log's (its slaves' view of it when it
	// does not answer).
	Master     string        `json:"master,omitempty"`
	LogID      string        `json:"log_id,omitempty"`
	Epoch      uint64        `json:"epoch,omitempty"`
	FirstIndex uint64        `json:"first_index"`
	LastIndex  uint64        `json:"last_index"`
	Nodes      []ClusterNode `json:"nodes"`
}

// ClusterNode is one node of GET /log/cluster: its own status when it
// answers, the view of the node that lists it as a follower otherwise.
type ClusterNode struct {
	ID   string `json:"id"`
	Role string `json:"role"` // master, slave; node when neither is known
	URL  string `json:"url"`
	// State is "ok" for a master that takes writes, else its State*; a
	// slave's State*; "unreachable" for a node that did not answer.
	State        string `json:"state"`
	Error        string `json:"error,omitempty"`
	AppliedIndex uint64 `json:"applied_index"`
	// LagEntries is the master's last index less the node's applied
	// one; BehindSeconds how long ago the master took the oldest entry
	// the node has not applied (0 when caught up). Absent when unknown.
	LagEntries    *uint64  `json:"lag_entries,omitempty"`
	BehindSeconds *float64 `json:"behind_seconds,omitempty"`
	// LastSeenSeconds is how long ago the node last pulled the log of
	// the node it follows, as that node says.
	LastSeenSeconds *float64 `json:"last_seen_seconds,omitempty"`
	// Epoch is the epoch of the node's log (a master's, or a slave's
	// that keeps one).
	Epoch uint64 `json:"epoch,omitempty"`
	// Upstream is the URL a slave pulls from.
	Upstream string `json:"upstream,omitempty"`
	// Self marks the node that answered.
	Self bool `json:"self,omitempty"`
}

// RecentEntries is the body of GET /log/recent: the latest entries of the
// node's log (the master's, or the one a slave keeps), decoded, and the
// log's bounds and retention.
type RecentEntries struct {
	Role        string        `json:"role"`
	LogID       string        `json:"log_id"`
	Epoch       uint64        `json:"epoch"`
	FirstIndex  uint64        `json:"first_index"`
	LastIndex   uint64        `json:"last_index"`
	LogBytes    int64         `json:"log_bytes"`
	LogSegments int           `json:"log_segments"`
	Retention   Retention     `json:"retention"`
	Entries     []RecentEntry `json:"entries"`
}

// Retention is how much log a node keeps: at most Entries entries, Bytes
// bytes of log files, entries For long (a Go duration); zero or empty is
// no cap, and all three empty mean the log is not bounded.
type Retention struct {
	Entries uint64 `json:"entries,omitempty"`
	Bytes   int64  `json:"bytes,omitempty"`
	For     string `json:"for,omitempty"`
}

// RecentEntry is one log entry of GET /log/recent. Statements holds at
// most RecentMaxStatements of the entry's StatementCount statements, each
// SQL text cut at RecentMaxSQL bytes (SQLTruncated says so).
type RecentEntry struct {
	Index uint64 `json:"index"`
	Epoch uint64 `json:"epoch"`
	// Time is when the master took the write, RFC 3339 in UTC with
	// milliseconds.
	Time string `json:"time"`
	Txn  bool   `json:"txn,omitempty"`
	// Check is "marker" or "result of N" for a replica check's entry.
	Check          string            `json:"check,omitempty"`
	StatementCount int               `json:"statement_count"`
	Statements     []RecentStatement `json:"statements"`
}

// RecentStatement is one statement of a RecentEntry. Params, if any, are
// an array of positional values or an object of named ones, as rqlite's
// requests carry them; a BLOB is an SQL hex literal (x'…').
type RecentStatement struct {
	SQL          string `json:"sql"`
	SQLTruncated bool   `json:"sql_truncated,omitempty"`
	Params       any    `json:"params,omitempty"`
}

// Bounds of GET /log/recent's answer.
const (
	RecentDefault       = 20   // entries when n is not given
	RecentMax           = 1000 // the most entries n may ask for
	RecentMaxStatements = 50
	RecentMaxSQL        = 4096
)

// Slave states.
const (
	StateCatchingUp   = "catching_up"
	StateStreaming    = "streaming"
	StateDisconnected = "disconnected"
	StateDiverged     = "diverged"
	// StateHalted is a master's state while SQLite cannot apply entries
	// its log holds: it refuses writes, and says why in Error.
	StateHalted = "halted"
	// StateFenced is a master's state once a master of a higher epoch
	// replaced it (a promotion): it takes no writes and waits to follow
	// the new master.
	StateFenced = "fenced"
	// StateDiskLow is a master's state while its volume has less free
	// space than --min-free-space: it refuses writes (507).
	StateDiskLow = "disk_low"
	// StateStalled is a slave's state while it cannot apply entries for a
	// reason of its own (a full disk, an I/O error): it retries.
	StateStalled = "stalled"
	// StateBootstrapping is a slave's state while it downloads and
	// installs the master's snapshot (the master compacted the entries it
	// needs).
	StateBootstrapping = "bootstrapping"
)

// Feed query parameters of GET /log/entries.
const (
	FeedFrom    = "from"    // first index wanted
	FeedMax     = "max"     // at most this many entries
	FeedWait    = "wait"    // long-poll duration (Go syntax, e.g. 250ms)
	FeedID      = "id"      // the slave's id
	FeedURL     = "url"     // the slave's advertised URL
	FeedLogID   = "log_id"  // the log the slave follows; empty for a new slave
	FeedApplied = "applied" // the slave's applied index
	FeedEpoch   = "epoch"   // the epoch of the slave's last applied entry
	// FeedReceived is the last index the slave holds in its own log,
	// fsynced (absent: it keeps no log).
	FeedReceived = "received"
	// FeedKnownEpoch is the highest epoch the slave knows of: a node at a
	// lower one was replaced, and answers 409 (fenced).
	FeedKnownEpoch = "known_epoch"
)

// Feed answer headers, on every answer of GET /log/entries.
const (
	HeaderLogID      = "X-Walship-Log-Id"
	HeaderEpoch      = "X-Walship-Epoch"
	HeaderFirstIndex = "X-Walship-First-Index"
	HeaderLastIndex  = "X-Walship-Last-Index"
)

// HeaderIndex carries a write's log index on /db/* answers, so that a
// slave that forwarded the write, or a client, can wait until a node has
// applied it.
const HeaderIndex = "X-Walship-Index"

// Snapshot answer headers, on GET /db/snapshot: the position the snapshot
// is at (HeaderIndex, HeaderLogID), the SHA-256 of the database file it
// decompresses to (hex), and that file's size. The body is the file
// compressed with zstd (SnapshotContentType); a Range request resumes a cut
// download.
const (
	HeaderSnapshotSHA256 = "X-Walship-Snapshot-Sha256"
	HeaderSnapshotSize   = "X-Walship-Snapshot-Size"
	SnapshotContentType  = "application/zstd"
)

// FeedContentType is the media type of a feed answer's body: entries, each
// a 4-byte big-endian length followed by the entry in the log's own
// encoding (wal/format.go), which carries its own checksum.
const FeedContentType = "application/vnd.walship.entries"

// MaxFrame bounds one entry frame of the feed.
const MaxFrame = 1 << 30

// WriteFrame writes one entry to a feed body.
func WriteFrame(w io.Writer, e *wal.Entry) error {
	b, err := e.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encode entry %d: %w", e.Index, err)
	}
	return WriteEncodedFrame(w, b)
}

// WriteEncodedFrame writes one entry, already encoded, to a feed body.
func WriteEncodedFrame(w io.Writer, encoded []byte) error {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(encoded)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	_, err := w.Write(encoded)
	return err
}

// ReadFrame reads one entry of a feed body; io.EOF at the clean end.
func ReadFrame(r io.Reader) (*wal.Entry, error) {
	return (&frameReader{r: r}).next()
}

// reuseFrame bounds the frames a frameReader reads into its reused buffer;
// a larger frame gets a buffer that grows with the bytes that arrive.
const reuseFrame = 1 << 20

// frameReader reads the frames of one feed body.
type frameReader struct {
	r   io.Reader
	buf []byte // reused for frames up to reuseFrame bytes
	dec wal.Decoder
}

// next reads and decodes the next frame; io.EOF at the clean end.
func (fr *frameReader) next() (*wal.Entry, error) {
	var n [4]byte
	if _, err := io.ReadFull(fr.r, n[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF // the clean end: no byte of a next frame
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read entry frame: %w: %w", ErrCorruptFeed, err)
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > MaxFrame {
		return nil, fmt.Errorf("entry frame of %d bytes: %w", size, ErrCorruptFeed)
	}
	var data []byte
	var err error
	if size <= reuseFrame {
		if cap(fr.buf) < int(size) {
			fr.buf = make([]byte, max(size, 2*uint32(cap(fr.buf))))
		}
		data = fr.buf[:size]
		_, err = io.ReadFull(fr.r, data)
	} else {
		// Grow with the bytes that arrive, not with the length the
		// frame claims.
		var buf bytes.Buffer
		_, err = io.CopyN(&buf, fr.r, int64(size))
		data = buf.Bytes()
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read entry frame of %d bytes: %w: %w", size, ErrCorruptFeed, err)
	}
	e, err := fr.dec.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("decode entry: %w: %w", ErrCorruptFeed, err)
	}
	return e, nil
}

// Node is one member of the cluster in GET /nodes (rqlite's shape: the
// legacy form is a map of Node by id, ?ver=2 gives {"nodes":[…]}). The
// master is the one with Leader set.
type Node struct {
	ID        string  `json:"id"`
	APIAddr   string  `json:"api_addr"` // the node's advertised URL, with scheme
	Addr      string  `json:"addr"`     // host:port of the same
	Voter     bool    `json:"voter"`
	Reachable bool    `json:"reachable"`
	Leader    bool    `json:"leader"`
	Time      float64 `json:"time,omitempty"`   // seconds the reachability check took
	TimeS     string  `json:"time_s,omitempty"` // the same, as a Go duration
	Error     string  `json:"error,omitempty"`  // why the node was unreachable
	// Role is walship's own: "master" or "slave".
	Role string `json:"role,omitempty"`
}

// Checksum is the body of GET /db/checksum: a hash of the node's content
// (schema and every user table, rowids included) at its applied index.
type Checksum struct {
	Index    uint64            `json:"index"`
	Checksum string            `json:"checksum"`
	Tables   map[string]string `json:"tables"`
}

// PromoteResult is the answer of POST /node/promote: the node is the
// master of Epoch from Index (its epoch's first entry) at URL.
type PromoteResult struct {
	URL   string `json:"url"`
	Epoch uint64 `json:"epoch"`
	Index uint64 `json:"index"`
	// Previous is the master it replaced, and FencedAt that master's last
	// index when it was fenced (0: it did not answer).
	Previous string `json:"previous,omitempty"`
	FencedAt uint64 `json:"fenced_at,omitempty"`
}

// FenceRequest is the body of POST /node/fence: a promotion to Epoch is
// under way elsewhere, and the master must stop taking writes.
type FenceRequest struct {
	Epoch uint64 `json:"epoch"`
}

// FenceResult is the answer of POST /node/fence: the fenced master's last
// index, which the node being promoted catches up to.
type FenceResult struct {
	LastIndex uint64 `json:"last_index"`
}

// FollowRequest is the body of POST /node/master: the master is at URL,
// of Epoch.
type FollowRequest struct {
	URL   string `json:"url"`
	Epoch uint64 `json:"epoch"`
}
