// Package auth decides who may do what: it loads a credentials file in
// rqlite's format (users, their passwords as bcrypt hashes or plain text,
// their permissions), checks a user's password, and authorizes a request
// for a permission. File keeps the current credentials of a file and
// re-reads it on SIGHUP.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/bcrypt"
)

// Perm is a permission.
type Perm string

// The permissions: rqlite's, and walship's own replicate and schema.
const (
	PermAll          Perm = "all" // every permission
	PermExecute      Perm = "execute"
	PermQuery        Perm = "query"
	PermLoad         Perm = "load"
	PermBackup       Perm = "backup"
	PermStatus       Perm = "status"
	PermReady        Perm = "ready"
	PermSnapshot     Perm = "snapshot"
	PermRemove       Perm = "remove"
	PermJoin         Perm = "join"
	PermJoinReadOnly Perm = "join-read-only"
	PermLeaderOps    Perm = "leader-ops"
	PermUI           Perm = "ui"
	PermReplicate    Perm = "replicate" // walship's own: the replication feed and snapshots
	PermSchema       Perm = "schema"    // walship's own: schema statements (CREATE/ALTER/DROP) besides execute
)

// knownPerms lists every permission, in the order errors name them.
var knownPerms = []Perm{
	PermAll, PermExecute, PermQuery, PermLoad, PermBackup, PermStatus, PermReady,
	PermSnapshot, PermRemove, PermJoin, PermJoinReadOnly, PermLeaderOps, PermUI,
	PermReplicate, PermSchema,
}

// KnownPerms returns every permission a credentials file may grant.
func KnownPerms() []Perm { return slices.Clone(knownPerms) }

// Known reports whether p is one of the permissions.
func (p Perm) Known() bool { return slices.Contains(knownPerms, p) }

// Anonymous is the username whose permissions every request has, with or
// without credentials. It has no password: no one logs in as "*".
const Anonymous = "*"

// The bcrypt costs HashPassword accepts. Each step doubles the time a
// password check takes, and so the time an offline guess takes.
const (
	MinCost     = bcrypt.MinCost
	MaxCost     = bcrypt.MaxCost
	DefaultCost = bcrypt.DefaultCost
)

// maxPasswordLen is the longest password bcrypt reads: it ignores the
// bytes after the 72nd, so a longer password never matches a hash.
const maxPasswordLen = 72

// ErrUnauthenticated is returned when a request needs credentials it did
// not carry, or carried credentials that are wrong.
var ErrUnauthenticated = errors.New("valid credentials required")

// ErrForbidden is returned (as a *ForbiddenError) when the authenticated
// user lacks the permission a request needs.
var ErrForbidden = errors.New("permission denied")

// ForbiddenError says which permission User lacked.
type ForbiddenError struct {
	User string
	Perm Perm
}

func (e *ForbiddenError) Error() string {
	return fmt.Sprintf("permission denied: user %q lacks the %q permission", e.User, e.Perm)
}

// Unwrap returns ErrForbidden.
func (e *ForbiddenError) Unwrap() error { return ErrForbidden }

// user is one entry of a credentials file.
type user struct {
	name     string
	password string // plain text, or a bcrypt hash when hashed; empty for Anonymous
	hashed   bool
	perms    map[Perm]bool
}

func (u *user) has(p Perm) bool { return u.perms[p] || u.perms[PermAll] }

// sortedPerms returns u's permissions, sorted.
func (u *user) sortedPerms() []Perm {
	ps := make([]Perm, 0, len(u.perms))
	for p := range u.perms {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// Store is one loaded credentials file. It is safe for concurrent use and
// never changes once loaded; File swaps in a new one on reload.
type Store struct {
	users map[string]*user
	// dummy is a bcrypt hash at the file's highest cost, checked for an
	// unknown user so that the answer takes as long as for a known one;
	// nil when the file holds no hash.
	dummy []byte
}

// dummySaltAndHash is the salt and hash of a bcrypt hash of a password no
// one knows; dummyHash puts a cost in front of it. bcrypt does the same
// work for any salt, so one serves every cost.
const dummySaltAndHash = "r3rk41cMIKaubYHBgL.bHuFG8YlBKG6j.DvB1EM4aFRRzJ9UQ0ywi"

func dummyHash(cost int) []byte {
	return fmt.Appendf(nil, "$2a$%02d$%s", cost, dummySaltAndHash)
}

// dummyPlain is compared against when the file holds no hash.
var dummyPlain = sha256.Sum256([]byte("walship: no such user"))

// Authenticate reports whether user is a known user whose password is
// password. It takes the same time whether or not the user exists: for
// an unknown user (and for "*", who has no password) it checks the
// password against a dummy bcrypt hash of the file's highest cost, or,
// in a file without hashes, compares it in constant time with a dummy
// text. A plain-text password is compared in constant time (of SHA-256
// digests, so that its length does not show either); in a file that also
// holds hashes its check then does the dummy bcrypt work too, so that
// plain-text users do not stand out. Users whose hashes have a lower cost
// than the highest answer faster: hash every password with one cost.
func (s *Store) Authenticate(name, password string) bool {
	u, ok := s.users[name]
	if !ok || name == Anonymous {
		s.dummyCheck(password)
		return false
	}
	if u.hashed {
		match := bcrypt.CompareHashAndPassword([]byte(u.password), []byte(password)) == nil
		return match && len(password) <= maxPasswordLen
	}
	match := plainEqual(u.password, password)
	if s.dummy != nil {
		_ = bcrypt.CompareHashAndPassword(s.dummy, []byte(password))
	}
	return match
}

// dummyCheck does the work of checking password for a user that does not
// exist.
func (s *Store) dummyCheck(password string) {
	if s.dummy != nil {
		_ = bcrypt.CompareHashAndPassword(s.dummy, []byte(password))
		return
	}
	got := sha256.Sum256([]byte(password))
	subtle.ConstantTimeCompare(got[:], dummyPlain[:])
}

// plainEqual compares two passwords in a time that depends on neither
// their content nor their lengths.
func plainEqual(want, got string) bool {
	w, g := sha256.Sum256([]byte(want)), sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(w[:], g[:]) == 1
}

// Authorize decides a request that needs perm; hasAuth says whether it
// carried basic-auth credentials (user and password). Without them it is
// allowed if the anonymous user "*" holds perm (or all), and otherwise
// gets ErrUnauthenticated. With them it gets ErrUnauthenticated if they
// do not authenticate (wrong credentials are refused even where "*" would
// be allowed), is allowed if the user or "*" holds perm (or all), and
// otherwise gets a *ForbiddenError naming perm.
func (s *Store) Authorize(name, password string, hasAuth bool, perm Perm) error {
	if !hasAuth {
		if s.anonymousHas(perm) {
			return nil
		}
		return ErrUnauthenticated
	}
	if !s.Authenticate(name, password) {
		return ErrUnauthenticated
	}
	if s.HasPerm(name, perm) {
		return nil
	}
	return &ForbiddenError{User: name, Perm: perm}
}

// HasPerm reports whether user holds perm, or all, or gets it from "*"
// (rqlite's rule: the anonymous user's permissions apply to every user).
// It checks no password.
func (s *Store) HasPerm(name string, perm Perm) bool {
	if s.anonymousHas(perm) {
		return true
	}
	u, ok := s.users[name]
	return ok && u.has(perm)
}

func (s *Store) anonymousHas(perm Perm) bool {
	u, ok := s.users[Anonymous]
	return ok && u.has(perm)
}

// Users returns the usernames of the file, sorted, "*" among them if the
// file has it.
func (s *Store) Users() []string {
	names := make([]string, 0, len(s.users))
	for name := range s.users {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Perms returns the permissions the file gives user itself, sorted (not
// those it gets from "*"); nil for an unknown user.
func (s *Store) Perms(name string) []Perm {
	u, ok := s.users[name]
	if !ok {
		return nil
	}
	return u.sortedPerms()
}

// PlainText returns the users whose password the file holds in plain
// text, sorted.
func (s *Store) PlainText() []string {
	var names []string
	for name, u := range s.users {
		if name != Anonymous && !u.hashed {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// HashPassword returns the bcrypt hash of password at cost (0 means
// DefaultCost), for the password field of a credentials file.
func HashPassword(password string, cost int) (string, error) {
	if cost == 0 {
		cost = DefaultCost
	}
	if cost < MinCost || cost > MaxCost {
		return "", fmt.Errorf("bcrypt cost %d out of range %d to %d", cost, MinCost, MaxCost)
	}
	if password == "" {
		return "", errors.New("empty password")
	}
	if len(password) > maxPasswordLen {
		return "", fmt.Errorf("password of %d bytes: bcrypt reads at most %d", len(password), maxPasswordLen)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}
