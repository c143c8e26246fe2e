package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/walship/walship/api/client"
)

func TestRenderTable(t *testing.T) {
	got := strings.Join(renderTable([]string{"id", "name", "n"}, [][]string{
		{"1", "ana", "10"},
		nil, // a row one node lacks, in show
		{"22", "日本語", "-3.5"},
	}, []bool{true, false, true}), "\n")
	want := " id | name   |    n \n" +
		"----+--------+------\n" +
		"  1 | ana    |   10 \n" +
		"                    \n" +
		" 22 | 日本語 | -3.5 "
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestCellText(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{nil, "NULL"},
		{json.Number("42"), "42"},
		{json.Number("1.5"), "1.5"},
		{"plain", "plain"},
		{"two\nlines\tand\x1b", `two\nlines\tand\x1b`},
		{true, "true"},
		{[]any{json.Number("1"), json.Number("255")}, "X'01FF'"}, // a BLOB as an array of byte values
		{[]any{json.Number("256")}, "[256]"},
	} {
		if got := cellText(tc.v); got != tc.want {
			t.Errorf("cellText(%#v) = %q, want %q", tc.v, got, tc.want)
		}
	}
	if got := truncate("abcdefghij", 5); displayWidth(got) > 5 || !strings.HasSuffix(got, "…") {
		t.Errorf("truncate: %q", got)
	}
}

func TestWriteResult(t *testing.T) {
	one, three := int64(1), int64(3)
	query := &client.SeedResponse{Columns: []string{"id", "note"}, Types: []string{"integer", "text"},
		Values: [][]any{{json.Number("1"), "a,b"}, {json.Number("2"), nil}}, Index: 7}
	write := &client.SeedResponse{RowsAffected: &one, LastInsertID: &three, Index: 8}
	blobs := &client.SeedResponse{Columns: []string{"b", "t"}, Types: []string{"BLOB", "text"},
		Values: [][]any{{"AP8=", "AP8="}, {"", "x"}, {"not b64!", nil}, {nil, nil}}}
	for _, tc := range []struct {
		resp *client.SeedResponse
		mode outputMode
		exec bool
		want string
	}{
		{query, modeTable, false, " id | note\n----+------\n  1 | a,b\n  2 | NULL\n(2 rows)\n"},
		{query, modeCSV, false, "id,note\n1,\"a,b\"\n2,\n"},
		{write, modeTable, true, "OK: 1 row affected, last insert id 3, index 8\n"},
		{write, modeCSV, true, ""},
		{&client.SeedResponse{Columns: []string{"x"}}, modeTable, false, " x\n---\n(0 rows)\n"},
		// BLOBs, base64 in a seed answer, print as X'…' in a column whose
		// type says BLOB; text in such a column that is not base64 stays.
		{blobs, modeTable, false, " b        | t\n----------+------\n X'00FF'  | AP8=\n X''      | x\n not b64! | NULL\n NULL     | NULL\n(4 rows)\n"},
		{blobs, modeCSV, false, "b,t\nX'00FF',AP8=\nX'',x\nnot b64!,\n,\n"},
	} {
		var b bytes.Buffer
		if err := writeResult(&b, tc.resp, tc.mode, tc.exec); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("%s: got\n%q\nwant\n%q", tc.mode, b.String(), tc.want)
		}
	}
	var b bytes.Buffer
	if err := writeResult(&b, query, modeJSON, false); err != nil {
		t.Fatal(err)
	}
	var back client.SeedResponse
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Index != 7 || len(back.Values) != 2 {
		t.Fatalf("json: %v\n%s", err, b.String())
	}
	if _, err := parseMode("xml"); err == nil {
		t.Fatal("parseMode(xml) took it")
	}
	if plural(1, "row") != "1 row" || plural(0, "row") != "0 rows" || plural(2, "entry") != "2 entries" {
		t.Fatal("plural")
	}
}
