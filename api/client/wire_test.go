package client_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"reflect"
	"runtime"
	"testing"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/wal"
)

// testEntries holds entries that use every part of the format.
func testEntries() []*wal.Entry {
	return []*wal.Entry{
		{Index: 1, Epoch: 1, Time: 1764089748123, Seed: 0xdeadbeefcafef00d, Txn: true, Statements: []wal.Statement{
			{SQL: "CREATE TABLE t (id INTEGER PRIMARY KEY, v)"},
			{SQL: "INSERT INTO t (v) VALUES (?), (?), (?), (?), (:name)", Pos: 1, Params: []wal.Param{
				{Value: wal.Null()},
				{Value: wal.Integer(math.MinInt64)},
				{Value: wal.Real(-0.5)},
				{Value: wal.Text("héllo; 'world'")},
				{Name: "name", Value: wal.Blob([]byte{0, 1, 0xfe, 0xff})},
			}},
		}},
		{Index: 2, Epoch: 1, Time: -1, Seed: 0, Statements: []wal.Statement{{SQL: "DELETE FROM t", Pos: math.MaxUint32}}},
		{Index: math.MaxUint64, Epoch: math.MaxUint64, Time: math.MaxInt64, Seed: math.MaxUint64},
	}
}

func mustFrame(tb testing.TB, e *wal.Entry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := client.WriteFrame(&buf, e); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// A frame is a 4-byte big-endian length and the entry's own encoding; a
// sequence of frames reads back entry for entry, then io.EOF.
func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	entries := testEntries()
	for _, e := range entries {
		enc, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		frame := mustFrame(t, e)
		if n := binary.BigEndian.Uint32(frame); int(n) != len(enc) || !bytes.Equal(frame[4:], enc) {
			t.Fatalf("frame of entry %d: length %d, body %x; want %d, %x", e.Index, n, frame[4:], len(enc), enc)
		}
		buf.Write(frame)
	}
	for _, want := range entries {
		got, err := client.ReadFrame(&buf)
		if err != nil {
			t.Fatalf("entry %d: %v", want.Index, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("read %+v, wrote %+v", got, want)
		}
	}
	if e, err := client.ReadFrame(&buf); err != io.EOF {
		t.Fatalf("at the end: %+v, %v; want io.EOF", e, err)
	}
}

// A frame cut anywhere is an error, never a clean end and never an entry.
func TestReadFrameTruncated(t *testing.T) {
	frame := mustFrame(t, testEntries()[0])
	for cut := 1; cut < len(frame); cut++ {
		if cut == 4 {
			continue // the length and no body: see the subtest below
		}
		e, err := client.ReadFrame(bytes.NewReader(frame[:cut]))
		if err == nil || errors.Is(err, io.EOF) || e != nil {
			t.Fatalf("frame cut at %d of %d: %+v, %v; want an error that is not io.EOF", cut, len(frame), e, err)
		}
		if !errors.Is(err, client.ErrCorruptFeed) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("frame cut at %d: %v, want ErrCorruptFeed or io.ErrUnexpectedEOF", cut, err)
		}
	}
	t.Run("after the length", func(t *testing.T) {
		e, err := client.ReadFrame(bytes.NewReader(frame[:4]))
		if err == nil || errors.Is(err, io.EOF) || e != nil {
			t.Fatalf("frame cut after its length: %+v, %v; want an error that is not io.EOF", e, err)
		}
	})
	t.Run("ErrCorruptFeed", func(t *testing.T) {
		for cut := 1; cut < len(frame); cut++ {
			if _, err := client.ReadFrame(bytes.NewReader(frame[:cut])); !errors.Is(err, client.ErrCorruptFeed) {
				t.Fatalf("frame cut at %d of %d: %v, want ErrCorruptFeed", cut, len(frame), err)
			}
		}
	})
}

// A length beyond MaxFrame is refused before anything is read.
func TestReadFrameOversized(t *testing.T) {
	for _, n := range []uint32{client.MaxFrame + 1, math.MaxUint32} {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], n)
		e, err := client.ReadFrame(bytes.NewReader(append(b[:], "rest"...)))
		if !errors.Is(err, client.ErrCorruptFeed) || e != nil {
			t.Fatalf("length %d: %+v, %v; want ErrCorruptFeed", n, e, err)
		}
	}
}

// A truncated frame that claims a large length costs no more memory than
// the bytes that arrive.
func TestReadFrameLargeClaimAllocates(t *testing.T) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], client.MaxFrame)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := client.ReadFrame(bytes.NewReader(append(b[:], "0123456789"...)))
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("a truncated frame was read")
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("reading a 14-byte truncated frame allocated %d MiB", grew>>20)
	}
}

// A frame with any byte of its entry flipped fails its checksum or its
// decoding: ErrCorruptFeed, never an entry and never a panic.
func TestReadFrameFlippedByte(t *testing.T) {
	frame := mustFrame(t, testEntries()[0])
	for i := 0; i < len(frame); i++ {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			if i < 4 && mask != 0x01 {
				continue // a flipped length costs up to a large allocation; its low bit is enough
			}
			bad := bytes.Clone(frame)
			bad[i] ^= mask
			e, err := client.ReadFrame(bytes.NewReader(bad))
			if err == nil || e != nil {
				t.Fatalf("byte %d ^ %#x: read %+v", i, mask, e)
			}
			if i >= 4 && !errors.Is(err, client.ErrCorruptFeed) {
				t.Fatalf("byte %d ^ %#x: %v, want ErrCorruptFeed", i, mask, err)
			}
		}
	}
}

// A StatusError maps its HTTP status back to the client's sentinels.
func TestStatusErrorIs(t *testing.T) {
	sentinels := []error{client.ErrBadRequest, client.ErrForbidden, client.ErrNotFound, client.ErrConflict, client.ErrUnavailable}
	for _, tc := range []struct {
		status int
		want   error
	}{
		{http.StatusBadRequest, client.ErrBadRequest},
		{http.StatusRequestEntityTooLarge, client.ErrBadRequest},
		{http.StatusForbidden, client.ErrForbidden},
		{http.StatusNotFound, client.ErrNotFound},
		{http.StatusConflict, client.ErrConflict},
		{http.StatusServiceUnavailable, client.ErrUnavailable},
		{http.StatusInternalServerError, nil},
		{http.StatusGatewayTimeout, nil},
		{http.StatusMethodNotAllowed, nil},
	} {
		var err error = &client.StatusError{Status: tc.status, Msg: "why", Master: "http://m"}
		wrapped := errors.Join(errors.New("context"), err)
		for _, s := range sentinels {
			if got := errors.Is(wrapped, s); got != (s == tc.want) {
				t.Errorf("status %d: errors.Is(%v) = %v", tc.status, s, got)
			}
		}
		var se *client.StatusError
		if !errors.As(wrapped, &se) || se.Status != tc.status || se.Msg != "why" || se.Master != "http://m" {
			t.Errorf("status %d: errors.As gave %+v", tc.status, se)
		}
	}
	if got := (&client.StatusError{Status: 409, Msg: "other log"}).Error(); got != "409 Conflict: other log" {
		t.Fatalf("Error() = %q", got)
	}
}

// A seed request's parameters go over the wire as an array (Params) or an
// object (Named) and come back the same, numbers with every digit; both
// at once are refused, and so is a "params" of another kind.
func TestSeedRequestParams(t *testing.T) {
	for _, tc := range []struct {
		req  client.SeedRequest
		want string
	}{
		{client.SeedRequest{Command: "exec", Query: "Q", Params: []any{json.Number("9007199254740993"), "a"}},
			`{"command":"exec","query":"Q","params":[9007199254740993,"a"],"is_master":false}`},
		{client.SeedRequest{Command: "exec", Query: "Q", Named: map[string]any{"n": json.Number("9007199254740993"), "s": "a"}},
			`{"command":"exec","query":"Q","is_master":false,"params":{"n":9007199254740993,"s":"a"}}`},
		{client.SeedRequest{Command: "query", Query: "Q"}, `{"command":"query","query":"Q","is_master":false}`},
	} {
		b, err := json.Marshal(tc.req)
		if err != nil || string(b) != tc.want {
			t.Fatalf("marshal %+v: %s %v, want %s", tc.req, b, err, tc.want)
		}
		var back client.SeedRequest
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, tc.req) {
			t.Fatalf("round trip: %+v, want %+v", back, tc.req)
		}
	}
	if _, err := json.Marshal(client.SeedRequest{Params: []any{1}, Named: map[string]any{"a": 1}}); err == nil {
		t.Fatal("positional and named parameters at once were sent")
	}
	var r client.SeedRequest
	if err := json.Unmarshal([]byte(`{"command":"exec","params":true}`), &r); !errors.Is(err, client.ErrParamsShape) {
		t.Fatalf("params true: %v, want ErrParamsShape", err)
	}
}
