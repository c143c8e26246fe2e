package client_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/walship/walship/api/client"
)

// maxFuzzClaim bounds the frame length the fuzzer may claim beyond the
// bytes it gives: ReadFrame allocates a claimed length of up to 1 MiB
// before reading (a larger claim grows with the bytes that arrive, see
// TestReadFrameLargeClaimAllocates), and a fuzzer that allocates that much
// per input finds little else.
const maxFuzzClaim = 1 << 20

// FuzzReadFrame reads a feed body of arbitrary bytes: it never panics, every
// error is io.EOF at a clean end, a truncation or ErrCorruptFeed (a wrapped
// io.EOF mid-frame is the known bug of TestReadFrameTruncated), and every
// entry it reads encodes back to exactly the bytes it came from (the format
// has one encoding per entry). The seed corpus is in
// testdata/fuzz/FuzzReadFrame.
func FuzzReadFrame(f *testing.F) {
	var two bytes.Buffer
	for _, e := range testEntries() {
		frame := mustFrame(f, e)
		f.Add(frame)
		two.Write(frame)
	}
	f.Add(two.Bytes())
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		for rest := data; len(rest) >= 4; {
			n := binary.BigEndian.Uint32(rest)
			if n <= client.MaxFrame && int64(n) > int64(len(rest)-4)+maxFuzzClaim {
				t.Skip("claims far more than it holds")
			}
			if int64(n) > int64(len(rest)-4) {
				break
			}
			rest = rest[4+n:]
		}
		r := bytes.NewReader(data)
		for {
			start := len(data) - r.Len()
			e, err := client.ReadFrame(r)
			if err == io.EOF {
				if start != len(data) {
					t.Fatalf("io.EOF at offset %d of %d", start, len(data))
				}
				return
			}
			if err != nil {
				if e != nil {
					t.Fatalf("an entry with the error %v", err)
				}
				if !errors.Is(err, client.ErrCorruptFeed) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
					t.Fatalf("error %v is neither ErrCorruptFeed nor a truncation", err)
				}
				return
			}
			consumed := data[start : len(data)-r.Len()]
			var again bytes.Buffer
			if err := client.WriteFrame(&again, e); err != nil {
				t.Fatalf("entry %+v read but not written: %v", e, err)
			}
			if !bytes.Equal(again.Bytes(), consumed) {
				t.Fatalf("entry %+v: read from %x, written as %x", e, consumed, again.Bytes())
			}
		}
	})
}
