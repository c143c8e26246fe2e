package wal

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzUnmarshalBinary feeds arbitrary bytes to UnmarshalBinary: it must never
// panic, must fail only with ErrCorrupt, and whatever it accepts must
// re-encode to exactly the same bytes (one encoding per entry). The seeds are
// valid encodings and damaged ones; more live in testdata/fuzz.
//
// Each input is also decoded with a valid checksum appended, so that
// mutations get past the checksum to the decoder's length checks.
func FuzzUnmarshalBinary(f *testing.F) {
	for _, e := range roundTripCases() {
		b, err := e.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		// Large seeds make the fuzzer's minimisation crawl.
		if len(b) <= 2048 {
			f.Add(b)
		}
	}
	golden, err := sampleEntry().MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range corruptFixtures(golden) {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(withCRC(header()))

	f.Fuzz(func(t *testing.T, data []byte) {
		checkUnmarshal(t, data)
		// Random bytes almost never carry a valid checksum. Give them
		// one, so that the mutations reach the decoder behind it.
		checkUnmarshal(t, withCRC(data))
	})
}

// checkUnmarshal decodes data and, if that succeeds, checks that the entry
// re-encodes to the same bytes.
func checkUnmarshal(t *testing.T, data []byte) {
	var e Entry
	err := e.UnmarshalBinary(data)
	// A Decoder decodes exactly as UnmarshalBinary does.
	var dec Decoder
	de, derr := dec.Decode(data)
	if (err == nil) != (derr == nil) || (err == nil && !reflect.DeepEqual(*de, e)) {
		t.Fatalf("Decoder: %+v, %v; UnmarshalBinary: %+v, %v", de, derr, e, err)
	}
	if err != nil {
		if !errors.Is(err, ErrCorrupt) || !errors.Is(derr, ErrCorrupt) {
			t.Fatalf("errors %v, %v do not wrap ErrCorrupt", err, derr)
		}
		return
	}
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatalf("decoded entry does not marshal: %v", err)
	}
	if !bytes.Equal(b, data) {
		t.Fatalf("re-marshaled bytes differ:\nin  %x\nout %x", data, b)
	}
}
