package wal

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fuzzLog is the log file FuzzLogFile damages: entries 1..fuzzLogEntries
// as createLog writes them, made once per process.
var fuzzLog struct {
	once sync.Once
	data []byte
	err  error
}

const fuzzLogEntries, fuzzLogPayload = 5, 100

// FuzzLogFile damages a small log.db at offsets and with values the fuzzer
// picks (each 3 bytes of input: a 16-bit offset into the file and a byte to
// XOR there) and opens and reads it: as TestFlippedByteAnywhere, the damage
// must be refused at Open or found by Read, or leave every entry exactly as
// written; nothing may panic or fault. Each input gets its own copy of the
// file, because a log whose Open failed inside bbolt keeps its file locked.
func FuzzLogFile(f *testing.F) {
	fuzzLog.once.Do(func() {
		dir, err := os.MkdirTemp("", "walship-fuzzlog-")
		if err != nil {
			fuzzLog.err = err
			return
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "log.db")
		l, err := Open(path, Options{NoSync: true})
		if err != nil {
			fuzzLog.err = err
			return
		}
		for i := uint64(1); i <= fuzzLogEntries; i++ {
			e := testEntry(i, 1)
			e.Statements[0].SQL += strings.Repeat(" ", fuzzLogPayload)
			if err := l.Append([]*Entry{e}); err != nil {
				fuzzLog.err = err
				return
			}
		}
		if err := l.Close(); err != nil {
			fuzzLog.err = err
			return
		}
		fuzzLog.data, fuzzLog.err = os.ReadFile(path)
	})
	if fuzzLog.err != nil {
		f.Fatal(fuzzLog.err)
	}
	ps := os.Getpagesize()
	flip := func(off int) []byte {
		return binary.BigEndian.AppendUint16(nil, uint16(off)) // then the XOR byte
	}
	for _, off := range []int{
		16, 24, 40, 56, // meta page 0: page size, root, high-water mark, checksum
		ps + 40,              // meta page 1: high-water mark
		2*ps + 10, 2*ps + 12, // a page header's count and overflow
		2*ps + 16, 2*ps + 24, // the first element of a page
		3*ps + 16, 3*ps + 100, // further pages
		4*ps + 200, 5*ps + 1000, // entries
	} {
		f.Add(append(flip(off), 0xff))
	}
	f.Add(append(append(flip(16), 0x01), append(flip(ps+16), 0x01)...)) // both meta pages
	f.Fuzz(func(t *testing.T, damage []byte) {
		if len(damage) > 3*8 {
			t.Skip("at most 8 damaged bytes")
		}
		b := append([]byte(nil), fuzzLog.data...)
		for d := damage; len(d) >= 3; d = d[3:] {
			off := int(binary.BigEndian.Uint16(d)) % len(b)
			b[off] ^= d[2]
		}
		path := filepath.Join(t.TempDir(), "log.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		checkFlipped(t, path, fuzzLogEntries, fuzzLogPayload, fmt.Sprintf("damage %x", damage))
	})
}
