package db

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
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
}

// Checksum computes the content hash in one read transaction, so that the
// content and the index belong together.
func (d *DB) Checksum(ctx context.Context) (Checksum, error) {
	c, err := d.reader(ctx)
	if err != nil {
		return Checksum{}, err
	}
	defer d.putReader(c)
	c.auth.reset(policyInternal)
	if err := c.exec("BEGIN"); err != nil {
		return Checksum{}, fmt.Errorf("checksum: %w", err)
	}
	defer func() {
		c.auth.reset(policyInternal)
		_ = c.exec("COMMIT")
	}()
	query := func(sql string) ([][]wal.Value, error) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("checksum: %w", err)
		}
		res, _, err := c.run(wal.Statement{SQL: sql}, policyInternal, false, 0, 0)
		if err != nil {
			return nil, fmt.Errorf("checksum: %s: %w", sql, err)
		}
		return res.Rows, nil
	}
	pos, err := query("SELECT applied_index FROM _walship WHERE id = 1")
	if err != nil {
		return Checksum{}, err
	}
	out := Checksum{Tables: map[string]string{}}
	if len(pos) == 1 {
		out.Index = uint64(pos[0][0].Int)
	}
	all := sha256.New()
	header, err := query("SELECT (SELECT user_version FROM pragma_user_version), (SELECT application_id FROM pragma_application_id)")
	if err != nil {
		return Checksum{}, err
	}
	hashValues(all, header[0])
	schema, err := query(`SELECT type, name, tbl_name, rootpage, sql FROM sqlite_schema
		WHERE name NOT LIKE '\_walship%' ESCAPE '\' ORDER BY type, name`)
	if err != nil {
		return Checksum{}, err
	}
	for _, row := range schema {
		hashValues(all, row)
	}
	tables, err := query(`SELECT name, wr FROM pragma_table_list
		WHERE schema = 'main' AND type IN ('table', 'shadow') AND name <> 'sqlite_schema'
		AND name NOT LIKE '\_walship%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return Checksum{}, err
	}
	for _, row := range tables {
		name := row[0].Text
		quoted := `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
		q := `SELECT rowid, * FROM ` + quoted + ` ORDER BY rowid`
		if row[1].Int != 0 {
			// WITHOUT ROWID: in primary key order.
			pk, err := query(`SELECT name FROM pragma_table_info(` + sqlString(name) + `) WHERE pk > 0 ORDER BY pk`)
			if err != nil {
				return Checksum{}, err
			}
			cols := make([]string, len(pk))
			for i, p := range pk {
				cols[i] = `"` + strings.ReplaceAll(p[0].Text, `"`, `""`) + `"`
			}
			q = `SELECT * FROM ` + quoted + ` ORDER BY ` + strings.Join(cols, ", ")
		}
		rows, err := query(q)
		if err != nil {
			return Checksum{}, err
		}
		h := sha256.New()
		hashValues(h, []wal.Value{wal.Text(name)})
		for _, r := range rows {
			hashValues(h, r)
		}
		sum := h.Sum(nil)
		out.Tables[name] = hex.EncodeToString(sum)
		all.Write(sum)
	}
	out.Sum = hex.EncodeToString(all.Sum(nil))
	return out, nil
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
