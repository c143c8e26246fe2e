package api

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkParseRqBody parses a /db/execute body of 100 parameterized
// statements, as bench write -b 100 sends.
func BenchmarkParseRqBody(b *testing.B) {
	body := []byte("[" + strings.Repeat(`["INSERT INTO bench (v) VALUES (?)","bench"],`, 99) + `["INSERT INTO bench (v) VALUES (?)","bench"]]`)
	r := httptest.NewRequest("POST", "/db/execute", bytes.NewReader(body))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		els, err := parseRqBody(r, body)
		if err != nil || len(els) != 100 {
			b.Fatal(err)
		}
	}
}
