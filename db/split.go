package db

import (
	"fmt"
	"regexp"
	"strings"
)

// Split cuts sql into single statements, each with its terminating
// semicolon where it had one; each is a substring of sql. It follows SQLite's own tokenizer, the state
// machine of sqlite3_complete (complete.c): semicolons inside strings,
// quoted identifiers, comments and CREATE TRIGGER bodies do not end a
// statement. Empty statements (white space, comments, lone semicolons) are
// dropped, and so are the white space and comments before a statement and
// after a last statement that has no semicolon, so that every statement,
// with a semicolon appended where it has none, is complete for SQLite.
//
// An unterminated string, identifier, comment or trigger body is an error
// wrapping ErrIncomplete, and so is a NUL byte: SQLite reads SQL text only
// up to the first NUL, and would silently drop whatever follows it.
func Split(sql string) ([]string, error) {
	const (
		tkSEMI = iota
		tkWS
		tkOTHER
		tkEXPLAIN
		tkCREATE
		tkTEMP
		tkTRIGGER
		tkEND
	)
	// trans[state][token], as in complete.c. States: 0 INVALID, 1 START,
	// 2 NORMAL, 3 EXPLAIN, 4 CREATE, 5 TRIGGER, 6 SEMI, 7 END.
	trans := [8][8]uint8{
		{1, 0, 2, 3, 4, 2, 2, 2},
		{1, 1, 2, 3, 4, 2, 2, 2},
		{1, 2, 2, 2, 2, 2, 2, 2},
		{1, 3, 3, 2, 4, 2, 2, 2},
		{1, 4, 2, 2, 2, 4, 5, 2},
		{6, 5, 5, 5, 5, 5, 5, 5},
		{6, 6, 5, 5, 5, 5, 5, 7},
		{1, 7, 5, 5, 5, 5, 5, 5},
	}
	if i := strings.IndexByte(sql, 0); i >= 0 {
		return nil, fmt.Errorf("%w: NUL byte at offset %d; SQLite would ignore the text after it", ErrIncomplete, i)
	}
	var out []string
	state := uint8(0)
	start, end := 0, 0 // the current statement: its first token and the end of its last one
	content := false   // the current statement has a token other than white space
	for i := 0; i < len(sql); i++ {
		first := i // the token's first byte; i ends on its last
		var token int
		switch ch := sql[i]; ch {
		case ';':
			token = tkSEMI
		case ' ', '\r', '\t', '\n', '\f':
			token = tkWS
		case '/':
			if i+1 >= len(sql) || sql[i+1] != '*' {
				token = tkOTHER
				break
			}
			j := i + 2
			for j+1 < len(sql) && !(sql[j] == '*' && sql[j+1] == '/') {
				j++
			}
			if j+1 >= len(sql) {
				return nil, fmt.Errorf("%w: unterminated /* comment", ErrIncomplete)
			}
			i = j + 1
			token = tkWS
		case '-':
			if i+1 >= len(sql) || sql[i+1] != '-' {
				token = tkOTHER
				break
			}
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
			token = tkWS
		case '[':
			j := i + 1
			for j < len(sql) && sql[j] != ']' {
				j++
			}
			if j >= len(sql) {
				return nil, fmt.Errorf("%w: unterminated [identifier]", ErrIncomplete)
			}
			i = j
			token = tkOTHER
		case '`', '"', '\'':
			j := i + 1
			for j < len(sql) && sql[j] != ch {
				j++
			}
			if j >= len(sql) {
				return nil, fmt.Errorf("%w: unterminated quoted string or identifier", ErrIncomplete)
			}
			i = j
			token = tkOTHER
		default:
			if !idChar(ch) {
				token = tkOTHER
				break
			}
			j := i + 1
			for j < len(sql) && idChar(sql[j]) {
				j++
			}
			token = keyword(sql[i:j])
			i = j - 1
		}
		if token == tkWS {
			continue // white space never changes the state
		}
		if token != tkSEMI && !content {
			start, content = first, true
		}
		state = trans[state][token]
		if token == tkSEMI && state == 1 {
			if content {
				out = append(out, sql[start:i+1])
			}
			content = false
			continue
		}
		end = i + 1
	}
	if content {
		if state == 5 || state == 6 {
			return nil, fmt.Errorf("%w: CREATE TRIGGER without END", ErrIncomplete)
		}
		out = append(out, sql[start:end])
	}
	return out, nil
}

// idChar reports whether ch may be part of an identifier, as SQLite's
// IdChar: letters, digits, '_', '$' and every byte of a UTF-8 sequence.
func idChar(ch byte) bool {
	return ch >= 0x80 || ch == '_' || ch == '$' ||
		(ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
}

// keyword returns the complete.c token of an identifier.
func keyword(w string) int {
	eq := func(s string) bool {
		if len(w) != len(s) {
			return false
		}
		for i := 0; i < len(s); i++ {
			c := w[i]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != s[i] {
				return false
			}
		}
		return true
	}
	switch {
	case eq("create"):
		return 4
	case eq("trigger"):
		return 6
	case eq("temp"), eq("temporary"):
		return 5
	case eq("end"):
		return 7
	case eq("explain"):
		return 3
	}
	return 2
}

// Framing is what the framing statements of a dump say of a write request
// (Frame).
type Framing struct {
	// Skip holds the indexes of the framing statements: they are not run.
	Skip map[int]bool
	// Txn is set when BEGIN and COMMIT enclose the rest: the request is
	// one transaction, as it is in SQLite.
	Txn bool
	// NoForeignKeys is set when the request starts with PRAGMA
	// foreign_keys=OFF: the rest runs without foreign key enforcement, as
	// the sqlite3 shell reads such a dump.
	NoForeignKeys bool
}

var (
	framePragmaOff = regexp.MustCompile(`(?is)^PRAGMA\s+(main\s*\.\s*)?foreign_keys\s*=\s*(off|0|false|no)\s*;?\s*$`)
	framePragmaOn  = regexp.MustCompile(`(?is)^PRAGMA\s+(main\s*\.\s*)?foreign_keys\s*=\s*(on|1|true|yes)\s*;?\s*$`)
	frameBegin     = regexp.MustCompile(`(?is)^BEGIN(\s+(DEFERRED|IMMEDIATE|EXCLUSIVE))?(\s+TRANSACTION)?\s*;?\s*$`)
	frameCommit    = regexp.MustCompile(`(?is)^(COMMIT|END)(\s+TRANSACTION)?\s*;?\s*$`)
)

// Frame recognizes the framing that sqlite3's .dump writes around a
// database, in the statements of one write request (each as Split gives
// it): a first PRAGMA foreign_keys=OFF; a BEGIN [TRANSACTION] first (after
// that PRAGMA) and a COMMIT (or END) last that enclose the rest; and a
// PRAGMA foreign_keys=ON after them. A request already is one transaction,
// so the framing means what the request means, and its statements are
// skipped rather than refused as transaction control. Anything else is no
// framing: a BEGIN without its COMMIT stays refused.
func Frame(stmts []string) Framing {
	f := Framing{Skip: map[int]bool{}}
	first, last := 0, len(stmts)-1
	if first <= last && framePragmaOff.MatchString(stmts[first]) {
		f.NoForeignKeys, f.Skip[first] = true, true
		first++
	}
	if last > first && framePragmaOn.MatchString(stmts[last]) && (f.NoForeignKeys ||
		(frameBegin.MatchString(stmts[first]) && frameCommit.MatchString(stmts[last-1]))) {
		f.Skip[last] = true
		last--
	}
	if last > first && frameBegin.MatchString(stmts[first]) && frameCommit.MatchString(stmts[last]) {
		f.Txn, f.Skip[first], f.Skip[last] = true, true, true
	}
	if len(f.Skip) == len(stmts) && !(f.NoForeignKeys && f.Txn) {
		// Framing around nothing is no dump, but for the whole framing
		// .dump writes for an empty database.
		return Framing{}
	}
	return f
}
