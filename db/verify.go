package db

import (
	"slices"
	"time"

	"github.com/walship/walship/wal"
)

// This file holds what replica verification (check entries, wal.Check)
// shares between the master, which records the content's sums at a
// marker, and the slaves, which compare theirs with it.

// Outcomes of a replica check (CheckResult.Outcome).
const (
	// CheckRecorded: the master hashed its content at the marker and
	// appended the result entry.
	CheckRecorded = "recorded"
	// CheckOK: a slave's content at the marker has the master's sums.
	CheckOK = "ok"
	// CheckMismatch: a slave's content at the marker differs from the
	// master's in CheckResult.Differs; the slave stopped applying.
	CheckMismatch = "mismatch"
	// CheckSkipped: the node has no sums of its own at the marker (it
	// restarted or installed a snapshot after it, or could not hash), or
	// the master skipped a marker while a check still ran.
	CheckSkipped = "skipped"
	// CheckFailed: the master could not hash its content at the marker.
	CheckFailed = "failed"
)

// CheckResult is one replica check as a node saw it.
type CheckResult struct {
	// Index is the marker's index: the content that was checked. On the
	// master, for a skipped marker, the index at which it was due.
	Index uint64
	// ResultIndex is the index of the result entry (0 when none).
	ResultIndex uint64
	// Outcome is one of the Check* outcomes.
	Outcome string
	// Differs names the parts whose sums differ (CheckMismatch).
	Differs []string
	// Parts are the master's sums (on the master only).
	Parts []wal.Part
	// Time is when the check ended.
	Time time.Time
	// Err says why a check was skipped or failed.
	Err string
}

// Verification is a node's latest replica check and its counts.
type Verification struct {
	// Last is the latest check; nil before the first.
	Last *CheckResult
	// Checks counts the checks done: results recorded (master), sums
	// compared (slave). Mismatches counts those that differed, Skipped
	// the checks not done.
	Checks, Mismatches, Skipped uint64
}

// Record counts r and makes it the latest check.
func (v *Verification) Record(r CheckResult) {
	switch r.Outcome {
	case CheckSkipped, CheckFailed:
		v.Skipped++
	case CheckMismatch:
		v.Checks++
		v.Mismatches++
	default:
		v.Checks++
	}
	v.Last = &r
}

// DiffParts returns the names of the parts whose sums differ between want
// and got, or that only one of them has, in ascending order; none when
// they are equal.
func DiffParts(want, got []wal.Part) []string {
	sums := make(map[string][wal.SumSize]byte, len(got))
	for _, p := range got {
		sums[p.Name] = p.Sum
	}
	var out []string
	for _, p := range want {
		if s, ok := sums[p.Name]; !ok || s != p.Sum {
			out = append(out, p.Name)
		}
		delete(sums, p.Name)
	}
	for name := range sums {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
