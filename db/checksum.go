package db

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/walship/walship/wal"
)

// Checksum is a hash of a database's content at one applied index.
type Checksum struct {
	// Index is the applied index the content is at.
	Index uint64
	// Sum is the SHA-256 (hex) of everything a query can read of the
	// database: the header fields a write may set (user_version,
	// application_id), the whole schema (sqlite_schema with root pages),
	// and every table's rows in rowid (or primary key) order, rowids
	// included, values with their storage class. Every table counts:
	// WITHOUT ROWID ones, the shadow tables that hold a virtual table's
	// content (FTS5's %_data …), sqlite_sequence and sqlite_stat*;
	// walship's own _walship does not (it differs while entries are
	// applied). Two nodes at the same index hold the same data when their
	// sums are equal.
	Sum string
	// Tables has one sum per table, by name.
	Tables map[string]string
	// Header is the SHA-256 (hex) of the header fields, Schema of the
	// schema's rows: the parts of Sum that are no table.
	Header, Schema string
}

// Names of the parts of a Checksum that are no table (Parts): SQLite
// reserves the names that start with "sqlite_" for itself, so no table a
// client creates can have them, and sqlite_schema is the table the schema
// part hashes (it is not among Tables).
const (
	PartHeader = "sqlite_header"
	PartSchema = "sqlite_schema"
)

// Parts returns the checksum's parts, the header, the schema and each
// table, in ascending byte order of name: the content of a check entry
// (wal.Check).
func (c Checksum) Parts() ([]wal.Part, error) {
	sums := make(map[string]string, len(c.Tables)+2)
	for name, sum := range c.Tables {
		sums[name] = sum
	}
	sums[PartHeader], sums[PartSchema] = c.Header, c.Schema
	out := make([]wal.Part, 0, len(sums))
	for _, name := range slices.Sorted(maps.Keys(sums)) {
		p := wal.Part{Name: name}
		sum := sums[name]
		if len(sum) != 2*wal.SumSize {
			return nil, fmt.Errorf("checksum: the sum of %s is not a SHA-256: %q", name, sum)
		}
		if _, err := hex.Decode(p.Sum[:], []byte(sum)); err != nil {
			return nil, fmt.Errorf("checksum: the sum of %s is not a SHA-256: %q", name, sum)
		}
		out = append(out, p)
	}
	return out, nil
}

// Checksum computes the content hash in one read transaction, so that the
// content and the index belong together.
func (d *DB) Checksum(ctx context.Context) (Checksum, error) {
	rt, err := d.ReadTx(ctx)
	if err != nil {
		return Checksum{}, err
	}
	defer rt.Close()
	if _, err := rt.Begin(); err != nil {
		return Checksum{}, err
	}
	return rt.Checksum(ctx)
}

// ReadTx is a read transaction on one of the database's read connections:
// once begun, everything it reads is the content at one applied index,
// whatever the writer commits meanwhile (SQLite's WAL mode keeps that
// content for it). A long one keeps the WAL file from being checkpointed
// past it: close it when done. It is not safe for concurrent use, but it
// may be begun on one goroutine and read on another.
type ReadTx struct {
	// Pace, if set, is called between pieces of a Checksum's work (every
	// 1024 rows): it may wait, to spread the work, and its error stops it.
	Pace func(context.Context) error

	d     *DB
	c     *conn
	began bool
}

// ReadTx takes a read connection for a read transaction, waiting for one
// until ctx is done. Begin starts the transaction; Close gives the
// connection back.
func (d *DB) ReadTx(ctx context.Context) (*ReadTx, error) {
	c, err := d.reader(ctx)
	if err != nil {
		return nil, err
	}
	return &ReadTx{d: d, c: c}, nil
}

// Begin starts the transaction and returns the position its content is
// at: from then on, it reads the content at that applied index.
func (rt *ReadTx) Begin() (Position, error) {
	if rt.c == nil || rt.began {
		return Position{}, errors.New("read transaction: begun twice, or closed")
	}
	c := rt.c
	c.auth.reset(policyInternal)
	if err := c.exec("BEGIN"); err != nil {
		return Position{}, fmt.Errorf("read transaction: %w", err)
	}
	rt.began = true
	// The first read starts SQLite's read transaction: the content is
	// fixed from here.
	var pos Position
	err := c.each(context.Background(), "SELECT log_id, applied_index FROM _walship WHERE id = 1", func(row []wal.Value) {
		pos = Position{LogID: row[0].Text, Index: uint64(row[1].Int)}
	})
	if err != nil {
		return Position{}, fmt.Errorf("read transaction: read the applied index: %w", err)
	}
	return pos, nil
}

// Close ends the transaction and gives the connection back. It is a no-op
// the second time.
func (rt *ReadTx) Close() error {
	c := rt.c
	if c == nil {
		return nil
	}
	rt.c = nil
	var err error
	if rt.began {
		c.canceled.Store(false)
		c.auth.reset(policyInternal)
		if err = c.exec("COMMIT"); err != nil && c.inTxn() {
			_ = c.exec("ROLLBACK")
		}
	}
	rt.d.putReader(c)
	if err != nil {
		return fmt.Errorf("read transaction: end: %w", err)
	}
	return nil
}

// Checksum computes the content hash of the transaction's content (see
// DB.Checksum). Rows are hashed as they are read, never held all at once;
// ctx stops it within a thousand SQLite steps.
func (rt *ReadTx) Checksum(ctx context.Context) (Checksum, error) {
	if rt.c == nil || !rt.began {
		return Checksum{}, errors.New("checksum: the read transaction is not begun")
	}
	c := rt.c
	// As Query does: the progress handler stops a statement once ctx
	// ends, and the connection goes back only after that.
	defer c.cancelOn(ctx)()
	c.pace = rt.Pace
	sum, err := c.checksum(ctx)
	c.pace = nil
	if err != nil && ctx.Err() != nil {
		return Checksum{}, fmt.Errorf("checksum: %w", ctx.Err())
	}
	return sum, err
}

// checksum hashes the content c's open read transaction sees.
func (c *conn) checksum(ctx context.Context) (Checksum, error) {
	query := func(sql string) ([][]wal.Value, error) {
		var rows [][]wal.Value
		err := c.each(ctx, sql, func(row []wal.Value) { rows = append(rows, row) })
		return rows, err
	}
	out := Checksum{Tables: map[string]string{}}
	pos, err := query("SELECT applied_index FROM _walship WHERE id = 1")
	if err != nil {
		return Checksum{}, err
	}
	if len(pos) == 1 {
		out.Index = uint64(pos[0][0].Int)
	}
	all, part := sha256.New(), sha256.New()
	header, err := query("SELECT (SELECT user_version FROM pragma_user_version), (SELECT application_id FROM pragma_application_id)")
	if err != nil {
		return Checksum{}, err
	}
	hashValues(all, header[0])
	hashValues(part, header[0])
	out.Header = hex.EncodeToString(part.Sum(nil))
	part.Reset()
	err = c.each(ctx, `SELECT type, name, tbl_name, rootpage, sql FROM sqlite_schema
		WHERE name NOT LIKE '\_walship%' ESCAPE '\' ORDER BY type, name`, func(row []wal.Value) {
		hashValues(all, row)
		hashValues(part, row)
	})
	if err != nil {
		return Checksum{}, err
	}
	out.Schema = hex.EncodeToString(part.Sum(nil))
	tables, err := query(`SELECT name, wr FROM pragma_table_list
		WHERE schema = 'main' AND type IN ('table', 'shadow') AND name <> 'sqlite_schema'
		AND name NOT LIKE '\_walship%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return Checksum{}, err
	}
	for _, row := range tables {
		name := row[0].Text
		q, err := c.tableQuery(ctx, name, row[1].Int != 0)
		if err != nil {
			return Checksum{}, err
		}
		h := sha256.New()
		hashValues(h, []wal.Value{wal.Text(name)})
		if err := c.each(ctx, q, func(r []wal.Value) { hashValues(h, r) }); err != nil {
			return Checksum{}, err
		}
		sum := h.Sum(nil)
		out.Tables[name] = hex.EncodeToString(sum)
		all.Write(sum)
	}
	out.Sum = hex.EncodeToString(all.Sum(nil))
	return out, nil
}

// tableQuery returns the query whose rows are table name's content: in
// rowid order with the rowid first, or (WITHOUT ROWID) in primary key
// order.
func (c *conn) tableQuery(ctx context.Context, name string, withoutRowid bool) (string, error) {
	quote := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	if !withoutRowid {
		return `SELECT rowid, * FROM ` + quote(name) + ` ORDER BY rowid`, nil
	}
	var pk []string
	err := c.each(ctx, `SELECT name FROM pragma_table_info(`+sqlString(name)+`) WHERE pk > 0 ORDER BY pk`, func(r []wal.Value) {
		pk = append(pk, quote(r[0].Text))
	})
	if err != nil {
		return "", err
	}
	return `SELECT * FROM ` + quote(name) + ` ORDER BY ` + strings.Join(pk, ", "), nil
}

// each runs one of the node's own read statements and calls f with each
// row; the row's values are f's to keep.
func (c *conn) each(ctx context.Context, sql string, f func([]wal.Value)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.auth.reset(policyInternal)
	s, _, err := c.prepare(sql)
	if err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	if s == nil {
		return nil
	}
	defer s.finalize()
	c.unpin()
	for n := 1; ; n++ {
		if c.pace != nil && n%1024 == 0 {
			if err := c.pace(ctx); err != nil {
				return err
			}
		}
		row, err := s.step()
		if err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		if !row {
			return nil
		}
		vals := make([]wal.Value, s.columnCount())
		for i := range vals {
			vals[i] = s.column(i)
		}
		f(vals)
	}
}

// sqlString quotes s as an SQL string literal.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// hashValues writes values in a form that keeps their storage class and
// cannot run two values together.
func hashValues(h hash.Hash, vals []wal.Value) {
	var b [9]byte
	b[0] = 'R'
	binary.BigEndian.PutUint64(b[1:], uint64(len(vals)))
	h.Write(b[:])
	for _, v := range vals {
		b[0] = byte(v.Kind)
		switch v.Kind {
		case wal.KindInteger:
			binary.BigEndian.PutUint64(b[1:], uint64(v.Int))
			h.Write(b[:])
		case wal.KindReal:
			binary.BigEndian.PutUint64(b[1:], math.Float64bits(v.Real))
			h.Write(b[:])
		case wal.KindText:
			binary.BigEndian.PutUint64(b[1:], uint64(len(v.Text)))
			h.Write(b[:])
			h.Write([]byte(v.Text))
		case wal.KindBlob:
			binary.BigEndian.PutUint64(b[1:], uint64(len(v.Blob)))
			h.Write(b[:])
			h.Write(v.Blob)
		default:
			h.Write(b[:1])
		}
	}
}
