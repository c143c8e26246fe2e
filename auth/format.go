package auth

// The credentials file is rqlite's: a JSON array with one object per user,
//
//	[
//	  {"username": "bob", "password": "$2a$10$…", "perms": ["all"]},
//	  {"username": "ann", "password": "secret", "perms": ["query", "status"]},
//	  {"username": "*", "perms": ["status", "ready"]}
//	]
//
// A password is a bcrypt hash ("$2a$", "$2b$" or "$2y$", as printed by
// walship passwd) or else plain text. The user "*" is anonymous: it has no
// password and its perms apply to every request. Unlike rqlite, which takes
// any file that parses, a file is refused for the first entry that is
// wrong: an unknown field or permission, an empty or repeated username, a
// user without a password, a password for "*", a malformed bcrypt hash.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// entry is one user as the file writes it.
type entry struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	Perms    []string `json:"perms"`
}

// Load reads and parses the credentials file at path.
func Load(path string) (*Store, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	return s, nil
}

// Parse parses and checks a credentials file's content. Its errors name the
// entry (counted from 1) and its username.
func Parse(b []byte) (*Store, error) {
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 {
		return nil, errors.New("empty: want a JSON array of users")
	}
	if trimmed[0] != '[' {
		return nil, errors.New("not a JSON array of users (it must start with '[')")
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return nil, jsonError(b, err)
	}
	s := &Store{users: make(map[string]*user, len(raws))}
	index := make(map[string]int, len(raws)) // username → its entry number
	maxCost := 0
	for i, raw := range raws {
		n := i + 1
		u, err := parseEntry(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", entryName(n, raw), err)
		}
		if prev, ok := index[u.name]; ok {
			return nil, fmt.Errorf("%s: user %q is already entry %d", entryName(n, raw), u.name, prev)
		}
		index[u.name] = n
		s.users[u.name] = u
		if u.hashed {
			cost, _ := bcrypt.Cost([]byte(u.password)) // checked by parseEntry
			maxCost = max(maxCost, cost)
		}
	}
	if maxCost > 0 {
		s.dummy = dummyHash(maxCost)
	}
	return s, nil
}

// entryName names entry n for an error: its number and, when it has one,
// its username.
func entryName(n int, raw json.RawMessage) string {
	var probe struct {
		Username string `json:"username"`
	}
	if json.Unmarshal(raw, &probe) == nil && probe.Username != "" {
		return fmt.Sprintf("entry %d (%q)", n, probe.Username)
	}
	return fmt.Sprintf("entry %d", n)
}

// parseEntry decodes and checks one entry.
func parseEntry(raw json.RawMessage) (*user, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var e entry
	if err := dec.Decode(&e); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "" {
			return nil, errors.New("not an object with username, password and perms")
		}
		if te != nil {
			return nil, fmt.Errorf("field %q: want %s, found a JSON %s", te.Field, jsonKind(te.Type.String()), te.Value)
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return nil, fmt.Errorf("unknown field %s (the fields are username, password, perms)", f)
		}
		return nil, err
	}
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, errors.New("null instead of a user")
	}
	u := &user{name: e.Username, password: e.Password, perms: make(map[Perm]bool, len(e.Perms))}
	switch {
	case e.Username == "":
		return nil, errors.New("no username")
	case strings.Contains(e.Username, ":"):
		return nil, errors.New("username contains ':', which basic auth cannot carry")
	case e.Username == Anonymous && e.Password != "":
		return nil, errors.New(`the anonymous user "*" takes no password`)
	case e.Username != Anonymous && e.Password == "":
		return nil, errors.New("no password")
	}
	if e.Username != Anonymous {
		hashed, err := checkPassword(e.Password)
		if err != nil {
			return nil, err
		}
		u.hashed = hashed
	}
	for _, p := range e.Perms {
		if !Perm(p).Known() {
			return nil, fmt.Errorf("unknown permission %q (known: %s)", p, permList())
		}
		u.perms[Perm(p)] = true
	}
	return u, nil
}

// bcryptPrefixes are the bcrypt variants a password may be hashed with.
var bcryptPrefixes = []string{"$2a$", "$2b$", "$2y$"}

// bcryptLike matches what looks meant as a bcrypt hash of any variant.
var bcryptLike = regexp.MustCompile(`^\$2[a-z]?\$[0-9]{2}\$`)

// bcryptAlphabet is the base64 alphabet of a bcrypt hash's salt and hash.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// checkPassword reports whether a file's password is a bcrypt hash, and
// whether it is a well-formed one.
func checkPassword(pw string) (hashed bool, err error) {
	supported := false
	for _, p := range bcryptPrefixes {
		supported = supported || strings.HasPrefix(pw, p)
	}
	if !supported {
		if bcryptLike.MatchString(pw) {
			return false, fmt.Errorf("password looks like a bcrypt hash of variant %q; walship reads %s", pw[:strings.Index(pw[1:], "$")+2], strings.Join(bcryptPrefixes, ", "))
		}
		return false, nil
	}
	// "$2a$10$" then 22 characters of salt and 31 of hash.
	if len(pw) != 60 {
		return true, fmt.Errorf("bad bcrypt hash: %d characters, want 60", len(pw))
	}
	if _, err := bcrypt.Cost([]byte(pw)); err != nil {
		return true, fmt.Errorf("bad bcrypt hash: %w", err)
	}
	if pw[6] != '$' {
		return true, errors.New("bad bcrypt hash: no '$' after the cost")
	}
	if i := strings.IndexFunc(pw[7:], func(r rune) bool { return !strings.ContainsRune(bcryptAlphabet, r) }); i >= 0 {
		return true, fmt.Errorf("bad bcrypt hash: character %q at %d is not in bcrypt's alphabet", pw[7+i], 7+i)
	}
	return true, nil
}

// permList lists the known permissions for an error.
func permList() string {
	names := make([]string, len(knownPerms))
	for i, p := range knownPerms {
		names[i] = string(p)
	}
	return strings.Join(names, ", ")
}

// jsonKind names a Go type of entry as a JSON kind.
func jsonKind(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "[]string":
		return "an array of strings"
	}
	return goType
}

// jsonError makes a decoding error of the whole file say where it is.
func jsonError(b []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := lineCol(b, se.Offset-1) // Offset counts the offending byte
		return fmt.Errorf("line %d, column %d: %w", line, col, err)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("not a JSON array of users: found a JSON %s", te.Value)
	}
	return err
}

// lineCol returns the line and column (from 1) of byte offset off of b.
func lineCol(b []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(b)))
	before := b[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = len(before) - bytes.LastIndexByte(before, '\n')
	return line, col
}
