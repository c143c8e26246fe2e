package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

var update = flag.Bool("update", false, "rewrite the fixtures under testdata/")

// goldenPath is the encoding of sampleEntry, the guard against silent format
// drift. corruptDir holds damaged encodings, written from it by -update.
var (
	goldenPath = filepath.Join("testdata", "entry-v1.bin")
	corruptDir = filepath.Join("testdata", "corrupt")
	fuzzDir    = filepath.Join("testdata", "fuzz", "FuzzUnmarshalBinary")
)

// sampleEntry is the small entry of the golden fixture. Never change it
// without bumping the format version.
func sampleEntry() *Entry {
	return &Entry{
		Index: 42,
		Epoch: 3,
		Time:  1764089748123,
		Seed:  0x0123456789abcdef,
		Txn:   true,
		Statements: []Statement{
			{SQL: "INSERT INTO t(a, b, c, d, e) VALUES (?, ?, :r, ?, ?)", Pos: 1, Params: []Param{
				{Value: Integer(-7)},
				{Value: Text("héllo")},
				{Name: "r", Value: Real(2.5)},
				{Value: Blob([]byte{0, 1, 0xff})},
				{Value: Null()},
			}},
			{SQL: "DELETE FROM t WHERE a < 0", Pos: 3},
		},
	}
}

// roundTripCases are entries that must survive MarshalBinary and
// UnmarshalBinary unchanged. They also seed FuzzUnmarshalBinary.
func roundTripCases() map[string]*Entry {
	many := &Entry{Index: 1 << 40, Epoch: 9, Time: 1, Seed: 2}
	for i := range 300 {
		many.Statements = append(many.Statements, Statement{
			SQL: fmt.Sprintf("INSERT INTO t VALUES (%d)", i), Pos: uint32(i * 2),
		})
	}
	manyParams := &Entry{Index: 2, Epoch: 1, Statements: []Statement{{SQL: "INSERT INTO t VALUES (" + strings.Repeat("?,", 199) + "?)"}}}
	for i := range 200 {
		manyParams.Statements[0].Params = append(manyParams.Statements[0].Params, Param{Value: Integer(int64(i) * 1000003)})
	}
	return map[string]*Entry{
		"zero":            {},
		"sample":          sampleEntry(),
		"max header":      {Index: math.MaxUint64, Epoch: math.MaxUint64, Time: math.MinInt64, Seed: math.MaxUint64, Txn: true},
		"negative time":   {Index: 1, Epoch: 1, Time: -1},
		"no foreign keys": {Index: 2, Epoch: 1, Txn: true, NoForeignKeys: true, Statements: []Statement{{SQL: "INSERT INTO c VALUES (1)"}}},
		"no fk, no txn":   {Index: 3, Epoch: 1, NoForeignKeys: true},
		"no params":       {Index: 1, Epoch: 1, Statements: []Statement{{SQL: "CREATE TABLE t (a)"}}},
		"empty sql":       {Index: 1, Epoch: 1, Statements: []Statement{{}}},
		"max pos":         {Index: 1, Epoch: 1, Statements: []Statement{{SQL: "SELECT 1", Pos: math.MaxUint32}}},
		"many statements": many,
		"many params":     manyParams,
		"integers": {Index: 3, Epoch: 2, Statements: []Statement{{SQL: "x", Params: []Param{
			{Value: Integer(0)}, {Value: Integer(1)}, {Value: Integer(-1)},
			{Value: Integer(63)}, {Value: Integer(-64)}, {Value: Integer(64)},
			{Value: Integer(math.MaxInt64)}, {Value: Integer(math.MinInt64)},
			{Value: Integer(math.MaxInt32)}, {Value: Integer(math.MinInt32)},
		}}}},
		"reals": {Index: 4, Epoch: 2, Statements: []Statement{{SQL: "x", Params: []Param{
			{Value: Real(0)}, {Value: Real(math.Copysign(0, -1))}, {Value: Real(1.5)},
			{Value: Real(-3.25e100)}, {Value: Real(math.SmallestNonzeroFloat64)},
			{Value: Real(-math.SmallestNonzeroFloat64)}, {Value: Real(math.MaxFloat64)},
			{Value: Real(math.Inf(1))}, {Value: Real(math.Inf(-1))}, {Value: Real(1e-310)},
		}}}},
		"texts": {Index: 5, Epoch: 2, Statements: []Statement{{SQL: "x", Params: []Param{
			{Value: Text("")}, {Value: Text("plain")}, {Value: Text("ünïcødé ✓")},
			{Value: Text("\x00\xff\xfe binary \x00")}, {Value: Text(strings.Repeat("long ", 10000))},
		}}}},
		"blobs": {Index: 6, Epoch: 2, Statements: []Statement{{SQL: "x", Params: []Param{
			{Value: Blob(nil)}, {Value: Blob([]byte{})}, {Value: Blob([]byte{0})},
			{Value: Blob(bytes.Repeat([]byte{0xde, 0xad}, 5000))},
		}}}},
		"nulls": {Index: 7, Epoch: 2, Statements: []Statement{{SQL: "x", Params: []Param{{Value: Null()}, {Value: Null()}}}}},
		"named params": {Index: 8, Epoch: 2, Statements: []Statement{{SQL: "INSERT INTO t VALUES (:a, @b, $c)", Params: []Param{
			{Name: "a", Value: Integer(1)}, {Name: "b", Value: Text("two")}, {Name: "c", Value: Blob([]byte("3"))},
			{Name: "ü\x00", Value: Null()},
		}}}},
		"check marker": {Index: 10, Epoch: 5, Time: 1700000000001, Check: &Check{}},
		"check result": {Index: 11, Epoch: 5, Time: 1700000000002, Check: &Check{Of: 10, Parts: []Part{
			{Name: "", Sum: sumOf(0)}, {Name: "kv", Sum: sumOf(1)}, {Name: "sqlite_header", Sum: sumOf(2)},
			{Name: "sqlite_schema", Sum: sumOf(3)}, {Name: "ünï", Sum: sumOf(0xff)},
		}}},
		"check result, no parts": {Index: 12, Epoch: 5, Check: &Check{Of: math.MaxUint64}},
		"txn mixed": {Index: 9, Epoch: 5, Time: 1700000000000, Seed: 99, Txn: true, Statements: []Statement{
			{SQL: "INSERT INTO a VALUES (?)", Pos: 0, Params: []Param{{Value: Integer(1)}}},
			{SQL: "INSERT INTO b VALUES (?)", Pos: 2, Params: []Param{{Value: Real(-0.5)}}},
			{SQL: "UPDATE c SET x = ?", Pos: 5, Params: []Param{{Value: Text("y")}, {Value: Blob(nil)}}},
		}},
	}
}

// sumOf returns a sum whose bytes count up from b.
func sumOf(b byte) [SumSize]byte {
	var s [SumSize]byte
	for i := range s {
		s[i] = b + byte(i)
	}
	return s
}

// diffEntry returns the first difference between two entries, or "". Reals
// compare by their bits (so -0.0 differs from 0.0); nil and empty slices are
// equal.
func diffEntry(a, b *Entry) string {
	if a.Index != b.Index || a.Epoch != b.Epoch || a.Time != b.Time || a.Seed != b.Seed || a.Txn != b.Txn || a.NoForeignKeys != b.NoForeignKeys {
		return fmt.Sprintf("header: %d/%d/%d/%d/%t/%t != %d/%d/%d/%d/%t/%t",
			a.Index, a.Epoch, a.Time, a.Seed, a.Txn, a.NoForeignKeys, b.Index, b.Epoch, b.Time, b.Seed, b.Txn, b.NoForeignKeys)
	}
	if (a.Check == nil) != (b.Check == nil) {
		return fmt.Sprintf("check %+v != %+v", a.Check, b.Check)
	}
	if a.Check != nil && (a.Check.Of != b.Check.Of || !slices.Equal(a.Check.Parts, b.Check.Parts)) {
		return fmt.Sprintf("check %+v != %+v", *a.Check, *b.Check)
	}
	if len(a.Statements) != len(b.Statements) {
		return fmt.Sprintf("%d statements != %d", len(a.Statements), len(b.Statements))
	}
	for i := range a.Statements {
		sa, sb := &a.Statements[i], &b.Statements[i]
		if sa.SQL != sb.SQL || sa.Pos != sb.Pos || len(sa.Params) != len(sb.Params) {
			return fmt.Sprintf("statement %d: %q pos %d (%d params) != %q pos %d (%d params)",
				i, sa.SQL, sa.Pos, len(sa.Params), sb.SQL, sb.Pos, len(sb.Params))
		}
		for j := range sa.Params {
			pa, pb := sa.Params[j], sb.Params[j]
			va, vb := pa.Value, pb.Value
			if pa.Name != pb.Name || va.Kind != vb.Kind || va.Int != vb.Int ||
				math.Float64bits(va.Real) != math.Float64bits(vb.Real) ||
				va.Text != vb.Text || !bytes.Equal(va.Blob, vb.Blob) {
				return fmt.Sprintf("statement %d, param %d: %+v != %+v", i, j, pa, pb)
			}
		}
	}
	return ""
}

func TestEntryRoundTrip(t *testing.T) {
	for name, want := range roundTripCases() {
		t.Run(name, func(t *testing.T) {
			b, err := want.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got Entry
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if d := diffEntry(want, &got); d != "" {
				t.Fatal(d)
			}
			for _, s := range got.Statements {
				for _, p := range s.Params {
					if p.Value.Kind == KindBlob && p.Value.Blob == nil {
						t.Error("decoded blob is nil, want a non-nil slice")
					}
				}
			}
			// One encoding per entry: re-marshaling gives the same bytes.
			again, err := got.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, b) {
				t.Fatal("re-marshaled bytes differ")
			}
			// AppendBinary appends, and its checksum covers its own bytes.
			prefix := []byte("prefix")
			app, err := want.AppendBinary(bytes.Clone(prefix))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(app[:len(prefix)], prefix) || !bytes.Equal(app[len(prefix):], b) {
				t.Fatal("AppendBinary differs from MarshalBinary")
			}
		})
	}
}

// TestEntryUnmarshalCopies checks that a decoded entry shares no memory
// with its input: bbolt's values are only valid inside their transaction.
func TestEntryUnmarshalCopies(t *testing.T) {
	b, err := sampleEntry().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Entry
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	clear(b)
	if d := diffEntry(sampleEntry(), &got); d != "" {
		t.Fatal(d)
	}
}

func TestEntryMarshalErrors(t *testing.T) {
	var nilEntry *Entry
	if _, err := nilEntry.MarshalBinary(); err == nil {
		t.Error("nil entry: no error")
	}
	e := &Entry{Index: 5, Statements: []Statement{{SQL: "x", Params: []Param{{Value: Value{Kind: 9}}}}}}
	if _, err := e.MarshalBinary(); err == nil || !strings.Contains(err.Error(), "unknown value kind 9") {
		t.Errorf("unknown kind: err = %v", err)
	}
	// AppendBinary leaves the buffer as it was on error.
	if b, err := e.AppendBinary([]byte("abc")); err == nil || string(b) != "abc" {
		t.Errorf("AppendBinary on error = %q, %v", b, err)
	}
	// A check entry has one form only.
	for name, c := range map[string]struct {
		e    *Entry
		want string
	}{
		"statements":       {&Entry{Check: &Check{}, Statements: []Statement{{SQL: "x"}}}, "has statements"},
		"txn":              {&Entry{Check: &Check{Of: 1}, Txn: true}, "Txn or NoForeignKeys"},
		"no foreign keys":  {&Entry{Check: &Check{}, NoForeignKeys: true}, "Txn or NoForeignKeys"},
		"marker with part": {&Entry{Check: &Check{Parts: []Part{{Name: "t"}}}}, "marker has parts"},
		"unsorted":         {&Entry{Check: &Check{Of: 1, Parts: []Part{{Name: "u"}, {Name: "t"}}}}, "ascending order"},
		"duplicate":        {&Entry{Check: &Check{Of: 1, Parts: []Part{{Name: "t"}, {Name: "t"}}}}, "ascending order"},
	} {
		if b, err := c.e.AppendBinary([]byte("abc")); err == nil || !strings.Contains(err.Error(), c.want) || string(b) != "abc" {
			t.Errorf("check entry, %s: %q, %v; want an error saying %q", name, b, err, c.want)
		}
	}
}

func TestEntryGolden(t *testing.T) {
	b, err := sampleEntry().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		writeFixtures(t, b)
	}
	golden, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("%v (run go test -run TestEntryGolden -update to create it)", err)
	}
	if !bytes.Equal(b, golden) {
		t.Fatalf("the encoding of sampleEntry changed: the on-disk format drifted.\ngot  %x\nwant %x", b, golden)
	}
	var got Entry
	if err := got.UnmarshalBinary(golden); err != nil {
		t.Fatal(err)
	}
	if d := diffEntry(sampleEntry(), &got); d != "" {
		t.Fatal(d)
	}
}

// withCRC returns body followed by its CRC-32C, as an encoding ends.
func withCRC(body []byte) []byte {
	return binary.BigEndian.AppendUint32(bytes.Clone(body), crc32.Checksum(body, castagnoli))
}

// header returns the fixed-width part of an encoding of index 1, epoch 1.
func header() []byte {
	b, _ := (&Entry{Index: 1, Epoch: 1}).MarshalBinary()
	return b[:entryHeaderSize]
}

// corruptFixtures derives the damaged encodings of testdata/corrupt from the
// golden one, each with the error detail it must produce. All but the first
// two carry a valid checksum, so that decoding reaches the damage.
func corruptFixtures(golden []byte) map[string][]byte {
	body := golden[:len(golden)-entryCRCSize]
	flipped := bytes.Clone(golden)
	flipped[len(flipped)/2] ^= 0x01
	badVersion := bytes.Clone(body)
	badVersion[0] = 2
	badFlags := bytes.Clone(body)
	badFlags[33] = 0x08
	marker, _ := (&Entry{Index: 1, Epoch: 1, Check: &Check{}}).MarshalBinary()
	markerBody := marker[:len(marker)-entryCRCSize]
	checkTxn := bytes.Clone(markerBody)
	checkTxn[33] = flagCheck | flagTxn
	result, _ := (&Entry{Index: 2, Epoch: 1, Check: &Check{Of: 1, Parts: []Part{{Name: "a"}, {Name: "b"}}}}).MarshalBinary()
	resultBody := result[:len(result)-entryCRCSize]
	unsorted := bytes.Clone(resultBody)
	unsorted[len(unsorted)-SumSize-1] = 'a' // the second part's name: "a" after "a"
	withParts := bytes.Clone(resultBody)
	clear(withParts[entryHeaderSize : entryHeaderSize+8]) // of = 0: a marker, with parts
	nullParam, _ := (&Entry{Index: 1, Epoch: 1, Statements: []Statement{{SQL: "x", Params: []Param{{Value: Null()}}}}}).MarshalBinary()
	badKind := bytes.Clone(nullParam[:len(nullParam)-entryCRCSize])
	badKind[len(badKind)-1] = 9
	return map[string][]byte{
		"flipped-byte.bin":       flipped,
		"truncated.bin":          golden[:len(golden)-5],
		"truncated-header.bin":   golden[:20],
		"bad-version.bin":        withCRC(badVersion),
		"bad-flags.bin":          withCRC(badFlags),
		"check-txn.bin":          withCRC(checkTxn),
		"check-unsorted.bin":     withCRC(unsorted),
		"check-marker-parts.bin": withCRC(withParts),
		"check-short-sum.bin":    withCRC(resultBody[:len(resultBody)-1]),
		"check-statements.bin":   withCRC(append(bytes.Clone(markerBody), 0)),
		"bad-kind.bin":           withCRC(badKind),
		"trailing-bytes.bin":     withCRC(append(bytes.Clone(body), 0)),
		"non-minimal-varint.bin": withCRC(append(header(), 0x80, 0x00)),
		"huge-count.bin":         withCRC(binary.AppendUvarint(header(), 1<<62)),
		"huge-length.bin":        withCRC(binary.AppendUvarint(append(header(), 1, 0), 1<<40)),
		"big-pos.bin":            withCRC(binary.AppendUvarint(append(header(), 1), 1<<32)),
		"missing-kind.bin":       withCRC(append(header(), 1, 0, 1, 'x', 1, 1, 'n')),
		"short-real.bin":         withCRC(append(header(), 1, 0, 1, 'x', 1, 0, byte(KindReal), 1, 2, 3)),
	}
}

func TestEntryCorrupt(t *testing.T) {
	for name, detail := range map[string]string{
		"flipped-byte.bin":       "checksum mismatch",
		"truncated.bin":          "checksum mismatch",
		"truncated-header.bin":   "20 bytes, an entry takes at least 39",
		"bad-version.bin":        "unknown version 2",
		"bad-flags.bin":          "unknown flags 0x08",
		"check-txn.bin":          "check entry with flags 0x05",
		"check-unsorted.bin":     `"a" does not follow "a"`,
		"check-marker-parts.bin": "check marker with 2 parts",
		"check-short-sum.bin":    "sum: 31 bytes remain, need 32",
		"check-statements.bin":   "1 trailing bytes",
		"bad-kind.bin":           "unknown value kind 9",
		"trailing-bytes.bin":     "1 trailing bytes",
		"non-minimal-varint.bin": "non-minimal varint",
		"huge-count.bin":         "statement count 4611686018427387904 exceeds",
		"huge-length.bin":        "sql length 1099511627776 exceeds",
		"big-pos.bin":            "position 4294967296 exceeds 32 bits",
		"missing-kind.bin":       "missing value kind",
		"short-real.bin":         "real: 3 bytes remain, need 8",
	} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(corruptDir, name))
			if err != nil {
				t.Fatal(err)
			}
			e := Entry{Index: 77}
			err = e.UnmarshalBinary(b)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), detail) {
				t.Fatalf("err = %v, want it to say %q", err, detail)
			}
			if e.Index != 77 {
				t.Fatal("a failed UnmarshalBinary changed the entry")
			}
		})
	}
}

// TestEntryTruncatedEverywhere cuts the golden encoding at every length:
// each must fail cleanly.
func TestEntryTruncatedEverywhere(t *testing.T) {
	b, err := sampleEntry().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(b) {
		var e Entry
		if err := e.UnmarshalBinary(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%d of %d bytes: err = %v, want ErrCorrupt", n, len(b), err)
		}
	}
}

// TestEntryHugeLengthsDoNotAllocate checks that a declared count or length
// is refused before anything of that size is allocated.
func TestEntryHugeLengthsDoNotAllocate(t *testing.T) {
	inputs := map[string][]byte{
		// 1<<24 statements would take ~1 GiB of Statement structs.
		"statements": withCRC(append(binary.AppendUvarint(header(), 1<<24), make([]byte, 64)...)),
		"params":     withCRC(append(binary.AppendUvarint(append(header(), 1, 0, 0), 1<<24), make([]byte, 64)...)),
		"sql":        withCRC(append(binary.AppendUvarint(append(header(), 1, 0), 1<<30), make([]byte, 64)...)),
		"text":       withCRC(append(binary.AppendUvarint(append(header(), 1, 0, 0, 1, 0, byte(KindText)), 1<<30), make([]byte, 64)...)),
		"blob":       withCRC(append(binary.AppendUvarint(append(header(), 1, 0, 0, 1, 0, byte(KindBlob)), 1<<30), make([]byte, 64)...)),
	}
	for name, b := range inputs {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range 10 {
				var e Entry
				if err := e.UnmarshalBinary(b); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("err = %v, want ErrCorrupt", err)
				}
			}
			runtime.ReadMemStats(&after)
			if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
				t.Fatalf("decoding allocated %d bytes", n)
			}
		})
	}
}

// writeFixtures rewrites the golden fixture, the corrupt fixtures and the
// fuzz seed corpus (-update).
func writeFixtures(t *testing.T, golden []byte) {
	t.Helper()
	for _, dir := range []string{corruptDir, fuzzDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path string, b []byte) {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(goldenPath, golden)
	fuzz := func(name string, b []byte) {
		write(filepath.Join(fuzzDir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b))
	}
	fuzz("golden", golden)
	for name, e := range map[string]*Entry{"check-marker": roundTripCases()["check marker"], "check-result": roundTripCases()["check result"]} {
		fuzz(name, mustMarshal(t, e))
	}
	for name, b := range corruptFixtures(golden) {
		write(filepath.Join(corruptDir, name), b)
		fuzz(strings.TrimSuffix(name, ".bin"), b)
	}
	t.Log("rewrote the fixtures under testdata/")
}

// TestDecoder decodes a run of entries with one Decoder: each is what
// UnmarshalBinary gives, SQL text seen before is shared, and a corrupt
// entry neither decodes nor disturbs the entries before or after it.
func TestDecoder(t *testing.T) {
	var dec Decoder
	var got []*Entry
	var cases []*Entry
	for _, name := range slices.Sorted(maps.Keys(roundTripCases())) {
		cases = append(cases, roundTripCases()[name])
	}
	for round := 0; round < 2*slabSize/len(cases)+2; round++ {
		for _, want := range cases {
			b, err := want.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var plain Entry
			if err := plain.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			e, err := dec.Decode(b)
			if err != nil {
				t.Fatalf("Decode entry %d: %v", want.Index, err)
			}
			if !reflect.DeepEqual(*e, plain) {
				t.Fatalf("Decode: %+v, UnmarshalBinary: %+v", *e, plain)
			}
			if round == 1 {
				bad := bytes.Clone(b)
				bad[len(bad)/2] ^= 1
				if e, err := dec.Decode(bad); !errors.Is(err, ErrCorrupt) || e != nil {
					t.Fatalf("Decode of a damaged entry: %v, %v, want ErrCorrupt", e, err)
				}
			}
			got = append(got, e)
		}
	}
	// Entries from the slabs stay as they were decoded.
	for i, e := range got {
		want := cases[i%len(cases)]
		b, _ := e.MarshalBinary()
		w, _ := want.MarshalBinary()
		if !bytes.Equal(b, w) {
			t.Fatalf("entry %d changed after later decodes", i)
		}
	}
	// Equal SQL text is shared, not copied each time.
	e1, _ := dec.Decode(mustMarshal(t, &Entry{Index: 1, Epoch: 1, Statements: []Statement{{SQL: "INSERT INTO t VALUES (1)"}}}))
	e2, _ := dec.Decode(mustMarshal(t, &Entry{Index: 2, Epoch: 1, Statements: []Statement{{SQL: "INSERT INTO t VALUES (1)"}}}))
	if unsafe.StringData(e1.Statements[0].SQL) != unsafe.StringData(e2.Statements[0].SQL) {
		t.Fatal("equal SQL text was not shared")
	}
}

func mustMarshal(t *testing.T, e *Entry) []byte {
	t.Helper()
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
