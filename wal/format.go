package wal

// This file is the one place that defines walship's on-disk log format: the
// bbolt bucket and key names, the key codec, the metadata values and the
// encoding of an entry. Changing anything here changes the format of every
// existing log.db: add a new version instead.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// Buckets of log.db.
var (
	// bucketEntries maps an index (encodeKey) to an encoded entry
	// (Entry.MarshalBinary).
	bucketEntries = []byte("entries")
	// bucketMeta holds the log's identity and bounds, under the meta keys.
	bucketMeta = []byte("meta")
)

// Keys of the meta bucket. Their values are fixed-width big-endian.
var (
	// keyLogID holds the log's random 128-bit identity: 16 bytes.
	keyLogID = []byte("log_id")
	// keyEpoch holds the log's epoch (master generation): 8 bytes.
	keyEpoch = []byte("epoch")
	// keyFirstIndex holds the index of the first entry: 8 bytes, >= 1.
	keyFirstIndex = []byte("first_index")
	// keyLastIndex holds the index of the last entry: 8 bytes. An empty log
	// has last_index = first_index - 1.
	keyLastIndex = []byte("last_index")
)

const (
	// logIDSize is the size of a log_id in bytes.
	logIDSize = 16
	// keySize is the size of an entries key and of every numeric meta value.
	keySize = 8
)

// encodeKey returns the entries-bucket key of index: 8 bytes big-endian, so
// that bbolt's byte order is index order.
func encodeKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, keySize), index)
}

// decodeKey returns the index of an entries-bucket key.
func decodeKey(k []byte) (uint64, error) {
	if len(k) != keySize {
		return 0, fmt.Errorf("key of %d bytes, want %d", len(k), keySize)
	}
	return binary.BigEndian.Uint64(k), nil
}

// encodeUint64 and decodeUint64 are the codec of the numeric meta values.
func encodeUint64(v uint64) []byte { return encodeKey(v) }

func decodeUint64(b []byte) (uint64, error) {
	if len(b) != keySize {
		return 0, fmt.Errorf("value of %d bytes, want %d", len(b), keySize)
	}
	return binary.BigEndian.Uint64(b), nil
}

// Entry encoding, version 1. All fixed-width integers are big-endian.
//
//	version      u8   = 1
//	index        u64
//	epoch        u64
//	time         i64  (Unix ms)
//	seed         u64
//	flags        u8   bit 0 = Txn, bit 1 = NoForeignKeys, bit 2 = Check;
//	                  the other bits must be 0, and so must bits 0 and 1
//	                  when bit 2 is set
//
// An entry without Check then holds its statements:
//
//	statements   uvarint count, then per statement:
//	  pos        uvarint (<= MaxUint32)
//	  sql        uvarint length + bytes
//	  params     uvarint count, then per param:
//	    name     uvarint length + bytes (empty: positional)
//	    kind     u8 (ValueKind)
//	    payload  null: nothing; integer: zig-zag varint; real: u64 of
//	             math.Float64bits; text, blob: uvarint length + bytes
//	crc          u32  CRC-32C (Castagnoli) of every byte before it
//
// A check entry (bit 2, Entry.Check) has no statements; it holds instead
//
//	of           u64  the index of the marker it is the result of; 0 for a
//	                  marker
//	parts        uvarint count (0 for a marker), then per part, in strictly
//	             ascending byte order of name:
//	  name       uvarint length + bytes
//	  sum        32 bytes (SHA-256)
//	crc          u32  as above
//
// A reader that predates bit 2 refuses a check entry (unknown flags): it
// never applies one as an empty write.
//
// Varints are minimal (canonical), so one entry has exactly one encoding and
// decoding then re-encoding gives the same bytes.
const (
	// entryVersion is the version byte written by MarshalBinary.
	entryVersion byte = 1
	// entryHeaderSize is the size of the fixed-width fields before the
	// statements: version, index, epoch, time, seed, flags.
	entryHeaderSize = 1 + 8 + 8 + 8 + 8 + 1
	// entryCRCSize is the size of the trailing checksum.
	entryCRCSize = 4
	// minEntrySize is the size of an entry without statements.
	minEntrySize = entryHeaderSize + 1 + entryCRCSize

	// flagTxn is the flags bit of Entry.Txn, flagNoFK of
	// Entry.NoForeignKeys. An entry with a bit a reader does not know is
	// refused, never applied without it.
	flagTxn   byte = 1 << 0
	flagNoFK  byte = 1 << 1
	flagCheck byte = 1 << 2

	// minStatementSize is the least a statement takes: pos, sql length and
	// param count, one byte each. minParamSize: name length and kind.
	minStatementSize = 3
	minParamSize     = 2
	// minPartSize is the least a check entry's part takes: the name's
	// length and the sum.
	minPartSize = 1 + SumSize
)

// castagnoli is the CRC-32C table of the entry checksum.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary returns the encoding of e (version 1, see format.go). It
// fails on a nil entry and on a parameter of unknown kind.
func (e *Entry) MarshalBinary() ([]byte, error) {
	if e == nil {
		return nil, errors.New("wal: marshal entry: nil entry")
	}
	return e.AppendBinary(make([]byte, 0, e.encodedSize()))
}

// AppendBinary appends the encoding of e to b and returns the extended
// buffer. The checksum covers only the appended bytes.
func (e *Entry) AppendBinary(b []byte) ([]byte, error) {
	if e == nil {
		return b, errors.New("wal: marshal entry: nil entry")
	}
	if err := e.validCheck(); err != nil {
		return b, fmt.Errorf("wal: marshal entry %d: %w", e.Index, err)
	}
	start := len(b)
	b = append(b, entryVersion)
	b = binary.BigEndian.AppendUint64(b, e.Index)
	b = binary.BigEndian.AppendUint64(b, e.Epoch)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time))
	b = binary.BigEndian.AppendUint64(b, e.Seed)
	var flags byte
	if e.Txn {
		flags |= flagTxn
	}
	if e.NoForeignKeys {
		flags |= flagNoFK
	}
	if e.Check != nil {
		flags |= flagCheck
	}
	b = append(b, flags)
	if e.Check != nil {
		b = binary.BigEndian.AppendUint64(b, e.Check.Of)
		b = binary.AppendUvarint(b, uint64(len(e.Check.Parts)))
		for i := range e.Check.Parts {
			p := &e.Check.Parts[i]
			b = appendBytes(b, p.Name)
			b = append(b, p.Sum[:]...)
		}
		return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli)), nil
	}
	b = binary.AppendUvarint(b, uint64(len(e.Statements)))
	for i := range e.Statements {
		s := &e.Statements[i]
		b = binary.AppendUvarint(b, uint64(s.Pos))
		b = appendBytes(b, s.SQL)
		b = binary.AppendUvarint(b, uint64(len(s.Params)))
		for j := range s.Params {
			p := &s.Params[j]
			b = appendBytes(b, p.Name)
			b = append(b, byte(p.Value.Kind))
			switch p.Value.Kind {
			case KindNull:
			case KindInteger:
				b = binary.AppendVarint(b, p.Value.Int)
			case KindReal:
				b = binary.BigEndian.AppendUint64(b, math.Float64bits(p.Value.Real))
			case KindText:
				b = appendBytes(b, p.Value.Text)
			case KindBlob:
				b = appendBytes(b, p.Value.Blob)
			default:
				return b[:start], fmt.Errorf("wal: marshal entry %d: statement %d, param %d: unknown value kind %d",
					e.Index, i, j, p.Value.Kind)
			}
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli)), nil
}

// validCheck returns why e cannot be a check entry as format.go defines
// one; nil for a valid one and for an entry without Check.
func (e *Entry) validCheck() error {
	c := e.Check
	if c == nil {
		return nil
	}
	switch {
	case len(e.Statements) > 0:
		return errors.New("a check entry has statements")
	case e.Txn || e.NoForeignKeys:
		return errors.New("a check entry has Txn or NoForeignKeys set")
	case c.Of == 0 && len(c.Parts) > 0:
		return errors.New("a check marker has parts")
	}
	for i := 1; i < len(c.Parts); i++ {
		if c.Parts[i-1].Name >= c.Parts[i].Name {
			return fmt.Errorf("check parts not in ascending order of name without duplicates: %q, then %q",
				c.Parts[i-1].Name, c.Parts[i].Name)
		}
	}
	return nil
}

// appendBytes appends the uvarint length of s and s.
func appendBytes[T string | []byte](b []byte, s T) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodedSize returns the size of e's encoding, or a little more.
func (e *Entry) encodedSize() int {
	n := minEntrySize - 1 + binary.MaxVarintLen64
	if e.Check != nil {
		n += 8
		for i := range e.Check.Parts {
			n += binary.MaxVarintLen64 + len(e.Check.Parts[i].Name) + SumSize
		}
	}
	for i := range e.Statements {
		s := &e.Statements[i]
		n += 3*binary.MaxVarintLen64 + len(s.SQL)
		for j := range s.Params {
			p := &s.Params[j]
			n += 2*binary.MaxVarintLen64 + 1 + len(p.Name) + len(p.Value.Text) + len(p.Value.Blob)
		}
	}
	return n
}

// UnmarshalBinary decodes an entry encoded by MarshalBinary into e. It checks
// the checksum first and then every length against the bytes that remain, so
// hostile input can neither crash it nor make it allocate much more than the
// input's size. Any failure wraps ErrCorrupt, and e is left unchanged.
//
// The decoded entry shares no memory with data. A blob of length 0 decodes
// as a non-nil empty slice; an entry or statement without statements or
// params decodes with nil slices.
func (e *Entry) UnmarshalBinary(data []byte) error {
	var d Entry
	if err := decodeEntry(&d, data, nil); err != nil {
		return corruptf("decode entry: %v", err)
	}
	*e = d
	return nil
}

// checkEncoded checks an entry's encoding without decoding its statements:
// size, checksum and version. It returns the entry's index and epoch. An
// entry that passes holds exactly the bytes MarshalBinary wrote.
func checkEncoded(data []byte) (index, epoch uint64, err error) {
	if len(data) < minEntrySize {
		return 0, 0, fmt.Errorf("%d bytes, an entry takes at least %d", len(data), minEntrySize)
	}
	body := data[:len(data)-entryCRCSize]
	stored := binary.BigEndian.Uint32(data[len(body):])
	if sum := crc32.Checksum(body, castagnoli); sum != stored {
		return 0, 0, fmt.Errorf("checksum mismatch: stored %08x, computed %08x", stored, sum)
	}
	if v := body[0]; v != entryVersion {
		return 0, 0, fmt.Errorf("unknown version %d", v)
	}
	return binary.BigEndian.Uint64(body[1:]), binary.BigEndian.Uint64(body[9:]), nil
}

// encodedTime returns the time (Unix ms) of an entry's encoding that
// checkEncoded accepted.
func encodedTime(data []byte) int64 {
	return int64(binary.BigEndian.Uint64(data[17:]))
}

// Decoder decodes many entries, as a slave reads a feed answer, with fewer
// allocations than UnmarshalBinary: entries and single statements come from
// slabs, and SQL text seen before is shared (a workload repeats its
// statements). Its zero value is ready; it is not safe for concurrent use.
type Decoder struct {
	entries []Entry
	stmts   []Statement
	slab    int // the size of the next slab
	sql     map[string]string
}

// slabSize bounds how many entries (and single statements) one slab holds;
// slabs start at one and double, so that decoding few entries allocates
// little.
const slabSize = 256

// nextSlab returns the size of the next slab.
func (dec *Decoder) nextSlab() int {
	dec.slab = min(max(2*dec.slab, 1), slabSize)
	return dec.slab
}

// maxInterned bounds the distinct SQL texts a Decoder shares.
const maxInterned = 1024

// Decode decodes data, as UnmarshalBinary does, into a new entry. The
// entry shares no memory with data.
func (dec *Decoder) Decode(data []byte) (*Entry, error) {
	if len(dec.entries) == 0 {
		dec.entries = make([]Entry, dec.nextSlab())
	}
	e := &dec.entries[0]
	if err := decodeEntry(e, data, dec); err != nil {
		*e = Entry{}
		return nil, corruptf("decode entry: %v", err)
	}
	dec.entries = dec.entries[1:]
	return e, nil
}

// statements returns room for n statements.
func (dec *Decoder) statements(n int) []Statement {
	if dec == nil || n != 1 {
		return make([]Statement, n)
	}
	if len(dec.stmts) == 0 {
		dec.stmts = make([]Statement, max(dec.slab, 1))
	}
	s := dec.stmts[:1:1]
	dec.stmts = dec.stmts[1:]
	return s
}

// text returns b as a string, shared with an earlier equal one.
func (dec *Decoder) text(b []byte) string {
	if dec == nil {
		return string(b)
	}
	if s, ok := dec.sql[string(b)]; ok {
		return s
	}
	s := string(b)
	if dec.sql == nil {
		dec.sql = make(map[string]string)
	}
	if len(dec.sql) < maxInterned {
		dec.sql[s] = s
	}
	return s
}

// decodeEntry decodes data into e, with dec's slabs when dec is not nil.
// Its errors carry the detail only; callers wrap them in ErrCorrupt with
// their context.
func decodeEntry(e *Entry, data []byte, dec *Decoder) error {
	if _, _, err := checkEncoded(data); err != nil {
		return err
	}
	body := data[:len(data)-entryCRCSize]
	e.Index = binary.BigEndian.Uint64(body[1:])
	e.Epoch = binary.BigEndian.Uint64(body[9:])
	e.Time = int64(binary.BigEndian.Uint64(body[17:]))
	e.Seed = binary.BigEndian.Uint64(body[25:])
	flags := body[33]
	if flags&^(flagTxn|flagNoFK|flagCheck) != 0 {
		return fmt.Errorf("unknown flags %#02x", flags)
	}
	e.Txn = flags&flagTxn != 0
	e.NoForeignKeys = flags&flagNoFK != 0

	d := decoder{b: body, off: entryHeaderSize}
	if flags&flagCheck != 0 {
		if flags != flagCheck {
			return fmt.Errorf("check entry with flags %#02x: a check entry has no Txn or NoForeignKeys", flags)
		}
		return d.check(e)
	}
	n, err := d.count("statement count", minStatementSize)
	if err != nil {
		return err
	}
	if n > 0 {
		e.Statements = dec.statements(n)
	}
	for i := range e.Statements {
		s := &e.Statements[i]
		pos, err := d.uvarint("statement position")
		if err != nil {
			return fmt.Errorf("statement %d: %w", i, err)
		}
		if pos > math.MaxUint32 {
			return fmt.Errorf("statement %d: position %d exceeds 32 bits", i, pos)
		}
		s.Pos = uint32(pos)
		sql, err := d.bytes("sql")
		if err != nil {
			return fmt.Errorf("statement %d: %w", i, err)
		}
		s.SQL = dec.text(sql)
		np, err := d.count("param count", minParamSize)
		if err != nil {
			return fmt.Errorf("statement %d: %w", i, err)
		}
		if np > 0 {
			s.Params = make([]Param, np)
		}
		for j := range s.Params {
			if err := d.param(&s.Params[j]); err != nil {
				return fmt.Errorf("statement %d, param %d: %w", i, j, err)
			}
		}
	}
	if rest := len(body) - d.off; rest != 0 {
		return fmt.Errorf("%d trailing bytes", rest)
	}
	return nil
}

// decoder reads the variable part of an entry, checking every length
// against the bytes that remain.
type decoder struct {
	b   []byte
	off int
}

func (d *decoder) remaining() int { return len(d.b) - d.off }

// uvarint reads a minimal uvarint.
func (d *decoder) uvarint(what string) (uint64, error) {
	v, n := binary.Uvarint(d.b[d.off:])
	switch {
	case n == 0:
		return 0, fmt.Errorf("%s: truncated varint at offset %d", what, d.off)
	case n < 0:
		return 0, fmt.Errorf("%s: varint overflows 64 bits at offset %d", what, d.off)
	case n > 1 && d.b[d.off+n-1] == 0:
		return 0, fmt.Errorf("%s: non-minimal varint at offset %d", what, d.off)
	}
	d.off += n
	return v, nil
}

// count reads a uvarint count of items that take at least minSize bytes
// each, and refuses a count that the remaining bytes cannot hold.
func (d *decoder) count(what string, minSize int) (int, error) {
	n, err := d.uvarint(what)
	if err != nil {
		return 0, err
	}
	if n > uint64(d.remaining()/minSize) {
		return 0, fmt.Errorf("%s %d exceeds the %d bytes that remain", what, n, d.remaining())
	}
	return int(n), nil
}

// bytes reads a uvarint length and that many bytes. The result aliases the
// input: callers copy it.
func (d *decoder) bytes(what string) ([]byte, error) {
	n, err := d.uvarint(what + " length")
	if err != nil {
		return nil, err
	}
	if n > uint64(d.remaining()) {
		return nil, fmt.Errorf("%s length %d exceeds the %d bytes that remain", what, n, d.remaining())
	}
	b := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return b, nil
}

// check reads the rest of a check entry into e.Check.
func (d *decoder) check(e *Entry) error {
	if d.remaining() < 8 {
		return fmt.Errorf("check: %d bytes remain, need 8", d.remaining())
	}
	c := &Check{Of: binary.BigEndian.Uint64(d.b[d.off:])}
	d.off += 8
	n, err := d.count("check part count", minPartSize)
	if err != nil {
		return err
	}
	if c.Of == 0 && n > 0 {
		return fmt.Errorf("check marker with %d parts", n)
	}
	if n > 0 {
		c.Parts = make([]Part, n)
	}
	for i := range c.Parts {
		p := &c.Parts[i]
		name, err := d.bytes("part name")
		if err != nil {
			return fmt.Errorf("check part %d: %w", i, err)
		}
		p.Name = string(name)
		if i > 0 && c.Parts[i-1].Name >= p.Name {
			return fmt.Errorf("check part %d: %q does not follow %q in ascending order", i, p.Name, c.Parts[i-1].Name)
		}
		if d.remaining() < SumSize {
			return fmt.Errorf("check part %d: sum: %d bytes remain, need %d", i, d.remaining(), SumSize)
		}
		copy(p.Sum[:], d.b[d.off:])
		d.off += SumSize
	}
	if rest := d.remaining(); rest != 0 {
		return fmt.Errorf("%d trailing bytes", rest)
	}
	e.Check = c
	return nil
}

// param reads one parameter into p.
func (d *decoder) param(p *Param) error {
	name, err := d.bytes("name")
	if err != nil {
		return err
	}
	p.Name = string(name)
	if d.remaining() < 1 {
		return errors.New("missing value kind")
	}
	p.Value.Kind = ValueKind(d.b[d.off])
	d.off++
	switch p.Value.Kind {
	case KindNull:
	case KindInteger:
		u, err := d.uvarint("integer")
		if err != nil {
			return err
		}
		// Zig-zag, as binary.Varint decodes it.
		x := int64(u >> 1)
		if u&1 != 0 {
			x = ^x
		}
		p.Value.Int = x
	case KindReal:
		if d.remaining() < 8 {
			return fmt.Errorf("real: %d bytes remain, need 8", d.remaining())
		}
		p.Value.Real = math.Float64frombits(binary.BigEndian.Uint64(d.b[d.off:]))
		d.off += 8
	case KindText:
		s, err := d.bytes("text")
		if err != nil {
			return err
		}
		p.Value.Text = string(s)
	case KindBlob:
		s, err := d.bytes("blob")
		if err != nil {
			return err
		}
		p.Value.Blob = append([]byte{}, s...)
	default:
		return fmt.Errorf("unknown value kind %d", p.Value.Kind)
	}
	return nil
}
