package wal

// ValueKind is the SQLite storage class of a parameter value.
type ValueKind uint8

// The storage classes, as SQLite defines them. Their numbers are part of the
// on-disk format (see format.go): never renumber them.
const (
	KindNull    ValueKind = 0
	KindInteger ValueKind = 1
	KindReal    ValueKind = 2
	KindText    ValueKind = 3
	KindBlob    ValueKind = 4
)

// String returns the lower-case SQLite name of the storage class.
func (k ValueKind) String() string {
	switch k {
	case KindNull:
		return "null"
	case KindInteger:
		return "integer"
	case KindReal:
		return "real"
	case KindText:
		return "text"
	case KindBlob:
		return "blob"
	}
	return "unknown"
}

// Value represents one typed SQL parameter. Only the field that matches Kind
// is meaningful; the others are zero.
type Value struct {
	Kind ValueKind
	Int  int64
	Real float64
	Text string
	Blob []byte
}

// Null, Integer, Real, Text and Blob return a Value of that storage class.
func Null() Value           { return Value{Kind: KindNull} }
func Integer(v int64) Value { return Value{Kind: KindInteger, Int: v} }
func Real(v float64) Value  { return Value{Kind: KindReal, Real: v} }
func Text(v string) Value   { return Value{Kind: KindText, Text: v} }
func Blob(v []byte) Value   { return Value{Kind: KindBlob, Blob: v} }

// Param represents one bound parameter. Name is empty for a positional
// parameter (?, ?NNN); otherwise it is the name without its prefix character,
// and it binds to :name, @name and $name alike.
type Param struct {
	Name  string
	Value Value
}

// Statement represents one SQL statement of an entry, with its parameters.
//
// Pos is the statement's position in the request the master accepted. It
// seeds the statement's PRNG together with the entry's Seed, so that a
// statement that failed on the master and was left out of the entry shifts
// no random value of the statements after it.
type Statement struct {
	SQL    string
	Params []Param
	Pos    uint32
}

// Entry represents one accepted write request: the unit that every node
// applies atomically and in index order.
//
// Invariant: in a log, entry N+1 follows entry N without gaps, and an entry's
// Epoch is never lower than the Epoch of the entry before it.
type Entry struct {
	// Index is the entry's position in the log: 1, 2, 3 …
	Index uint64
	// Epoch is the master generation that appended the entry.
	Epoch uint64
	// Time is the master's clock when it accepted the request, in Unix
	// milliseconds: the "now" of every date and time function while the
	// entry is applied.
	Time int64
	// Seed seeds random() and randomblob() while the entry is applied.
	Seed uint64
	// Txn makes the entry all-or-nothing on the master. Without it each
	// statement was atomic on its own, and only those that succeeded were
	// logged.
	Txn bool
	// NoForeignKeys applies the entry with foreign key enforcement off, in
	// a SQLite transaction of its own (a dump loaded after PRAGMA
	// foreign_keys=OFF).
	NoForeignKeys bool
	// Statements are applied in order.
	Statements []Statement
	// Check, if set, makes the entry a replica check instead of a write:
	// it has no statements, Txn and NoForeignKeys are false, and applying
	// it changes no content (only the applied index advances).
	Check *Check
}

// SumSize is the size of one Part's sum: a SHA-256.
const SumSize = 32

// Check is the content of a check entry, by which the master asks every
// node to compare its content with the master's (replica verification).
//
// A marker (Of == 0, no Parts) says: the content at this entry's index is
// checked; every node hashes its content there. A result (Of == K, the
// index of a marker) carries the master's hash of its content at K, one
// sum per part, for every node to compare with its own.
type Check struct {
	// Of is the index of the marker whose content Parts hash; 0 for a
	// marker.
	Of uint64
	// Parts are the sums of the content's parts, in ascending byte order
	// of Name, without duplicates; none for a marker.
	Parts []Part
}

// Part is the sum of one part of a database's content: a table, or one
// of the parts that are no table (its schema, its header fields).
type Part struct {
	Name string
	Sum  [SumSize]byte
}

// IsMarker reports whether c is a marker: the content at its entry's
// index is checked.
func (c *Check) IsMarker() bool { return c != nil && c.Of == 0 }
