package main

// This file prints results for people and for scripts: aligned tables,
// JSON and CSV. The shell, exec/query and show share it.

import (
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode"

	"github.com/mattn/go-isatty"
	"github.com/mattn/go-runewidth"

	"github.com/walship/walship/api/client"
)

// outputMode is how an answer prints.
type outputMode string

const (
	modeTable outputMode = "table" // aligned columns for people
	modeJSON  outputMode = "json"  // the node's answer as it came
	modeCSV   outputMode = "csv"   // a header line, then one line per row (RFC 4180)
)

// parseMode reads a mode name.
func parseMode(s string) (outputMode, error) {
	switch m := outputMode(strings.ToLower(strings.TrimSpace(s))); m {
	case modeTable, modeJSON, modeCSV:
		return m, nil
	}
	return "", fmt.Errorf("unknown output mode %q: use table, json or csv", s)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// displayWidth is the number of terminal columns s takes.
func displayWidth(s string) int { return runewidth.StringWidth(s) }

// pad fills s with spaces to width columns, on the left when right is set.
func pad(s string, width int, right bool) string {
	n := width - displayWidth(s)
	if n <= 0 {
		return s
	}
	if right {
		return strings.Repeat(" ", n) + s
	}
	return s + strings.Repeat(" ", n)
}

// truncate cuts s to at most width columns, ending it with … when cut.
func truncate(s string, width int) string {
	if width <= 0 || displayWidth(s) <= width {
		return s
	}
	return runewidth.Truncate(s, width, "…")
}

// renderTable returns the lines of an aligned table: the header, a rule,
// and one line per row; right marks the columns aligned to the right. A row
// may be nil: it prints as a blank line of the table's width (show uses it
// for a row that one node lacks).
func renderTable(header []string, rows [][]string, right []bool) []string {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = displayWidth(h)
	}
	for _, row := range rows {
		for i, cell := range row {
			if i < len(widths) {
				widths[i] = max(widths[i], displayWidth(cell))
			}
		}
	}
	line := func(cells []string) string {
		var b strings.Builder
		for i := range widths {
			if i > 0 {
				b.WriteString(" | ")
			}
			cell := ""
			if i < len(cells) {
				cell = cells[i]
			}
			b.WriteString(pad(cell, widths[i], i < len(right) && right[i]))
		}
		return " " + b.String() + " "
	}
	out := make([]string, 0, len(rows)+2)
	out = append(out, line(header))
	var rule strings.Builder
	for i, w := range widths {
		if i > 0 {
			rule.WriteString("+")
		}
		rule.WriteString(strings.Repeat("-", w+2))
	}
	out = append(out, rule.String())
	blank := strings.Repeat(" ", displayWidth(out[0]))
	for _, row := range rows {
		if row == nil {
			out = append(out, blank)
			continue
		}
		out = append(out, line(row))
	}
	return out
}

// cellText returns how a value of a seed answer prints in a table: NULL
// for null, numbers as the node sent them, text with its control
// characters escaped so that a row stays on one line, a BLOB sent as an
// array of byte values as SQLite's literal X'…' (blobCell reads the
// base64 text a seed answer holds for a BLOB).
func cellText(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return escapeControl(x)
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []any:
		if b, ok := byteArray(x); ok {
			return blobLiteral(b)
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// escapeControl writes control characters as Go escapes (\n, \t, \x1b …).
func escapeControl(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if !unicode.IsControl(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

// blobLiteral is how a BLOB prints everywhere (tables, CSV, walship
// show): SQLite's literal, X'00FF', as its quote() gives it.
func blobLiteral(b []byte) string {
	return "X'" + strings.ToUpper(hex.EncodeToString(b)) + "'"
}

// byteArray reads an array of byte values (0..255), the form a BLOB takes
// as a parameter, and in an answer asked for with blob_array.
func byteArray(a []any) ([]byte, bool) {
	b := make([]byte, len(a))
	for i, e := range a {
		n, ok := e.(json.Number)
		if !ok {
			return nil, false
		}
		k, err := strconv.ParseUint(string(n), 10, 8)
		if err != nil {
			return nil, false
		}
		b[i] = byte(k)
	}
	return b, true
}

// blobColumns marks the columns of an answer that hold BLOBs by their
// type: a declared type that names BLOB (SQLite's rule for BLOB
// affinity), or "blob" for an expression whose first value is one. A seed
// answer sends a BLOB as base64 text, which alone cannot be told from
// text: a BLOB in a column of another type (SQLite lets any column hold
// one) still prints as that text.
func blobColumns(types []string, ncol int) []bool {
	blob := make([]bool, ncol)
	for i := range blob {
		blob[i] = i < len(types) && strings.Contains(strings.ToLower(types[i]), "blob")
	}
	return blob
}

// blobCell returns how v prints in a column of BLOBs: the base64 text of a
// seed answer as X'…'; a value that is not base64 (text stored in a BLOB
// column) as cellText prints it.
func blobCell(v any) string {
	if s, ok := v.(string); ok {
		if b, err := base64.StdEncoding.DecodeString(s); err == nil {
			return blobLiteral(b)
		}
	}
	return cellText(v)
}

// csvText returns a value's CSV field: empty for null.
func csvText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	}
	return cellText(v)
}

// numericColumns marks the columns whose every non-null value is a number.
func numericColumns(ncol int, values [][]any) []bool {
	right := make([]bool, ncol)
	seen := make([]bool, ncol)
	for i := range right {
		right[i] = true
	}
	for _, row := range values {
		for i, v := range row {
			if i >= ncol || v == nil {
				continue
			}
			seen[i] = true
			switch v.(type) {
			case json.Number, float64, int64, int:
			default:
				right[i] = false
			}
		}
	}
	for i := range right {
		right[i] = right[i] && seen[i]
	}
	return right
}

// writeRows prints an answer's rows as an aligned table with a row count.
func writeRows(w io.Writer, resp *client.SeedResponse) error {
	blob := blobColumns(resp.Types, len(resp.Columns))
	rows := make([][]string, len(resp.Values))
	for i, row := range resp.Values {
		cells := make([]string, len(row))
		for j, v := range row {
			if j < len(blob) && blob[j] {
				cells[j] = blobCell(v)
			} else {
				cells[j] = cellText(v)
			}
		}
		rows[i] = cells
	}
	var b strings.Builder
	if len(resp.Columns) == 0 {
		_, err := fmt.Fprintf(w, "(%s)\n", plural(len(resp.Values), "row"))
		return err
	}
	for _, l := range renderTable(resp.Columns, rows, numericColumns(len(resp.Columns), resp.Values)) {
		b.WriteString(strings.TrimRight(l, " "))
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "(%s)\n", plural(len(resp.Values), "row"))
	_, err := io.WriteString(w, b.String())
	return err
}

// writeCSV prints an answer's columns and rows as CSV. An answer without
// columns (a write that returned no rows) prints nothing.
func writeCSV(w io.Writer, resp *client.SeedResponse) error {
	if len(resp.Columns) == 0 {
		return nil
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(resp.Columns); err != nil {
		return err
	}
	blob := blobColumns(resp.Types, len(resp.Columns))
	for _, row := range resp.Values {
		rec := make([]string, len(row))
		for i, v := range row {
			if i < len(blob) && blob[i] && v != nil {
				rec[i] = blobCell(v)
			} else {
				rec[i] = csvText(v)
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeSummary prints what a write did, on one line.
func writeSummary(w io.Writer, resp *client.SeedResponse) error {
	var parts []string
	if resp.RowsAffected != nil {
		parts = append(parts, plural(int(*resp.RowsAffected), "row")+" affected")
	}
	if resp.LastInsertID != nil && *resp.LastInsertID != 0 {
		parts = append(parts, "last insert id "+strconv.FormatInt(*resp.LastInsertID, 10))
	}
	parts = append(parts, "index "+strconv.FormatUint(resp.Index, 10))
	if resp.Pending {
		parts = append(parts, "pending: the node has not applied it yet")
	}
	_, err := fmt.Fprintf(w, "OK: %s\n", strings.Join(parts, ", "))
	return err
}

// writeResult prints an answer in mode. exec says it answers a write: in
// table mode a write prints the rows it returned (INSERT … RETURNING), then
// a summary line.
func writeResult(w io.Writer, resp *client.SeedResponse, mode outputMode, exec bool) error {
	switch mode {
	case modeJSON:
		return writeJSON(w, resp)
	case modeCSV:
		return writeCSV(w, resp)
	}
	if len(resp.Columns) > 0 || !exec {
		if err := writeRows(w, resp); err != nil {
			return err
		}
	}
	if exec {
		return writeSummary(w, resp)
	}
	return nil
}

// plural returns "1 row", "2 rows", "3 entries".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "y") {
		return strconv.Itoa(n) + " " + noun[:len(noun)-1] + "ies"
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
