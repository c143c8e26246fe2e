package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	humanize "github.com/dustin/go-humanize"

	"github.com/walship/walship/archive"
)

const archiveSynopsis = `walship archive ls DIR | verify DIR

ls lists what a master's archive (walship master --archive DIR) holds: each
history (log_id), the indexes and times it can be restored to (walship
restore --archive), its snapshots and segments. verify checks every file
of the archive against its SHA-256 and says which do not match (exit 1).
Both read the archive beside the master that writes it.`

// runArchive runs 'walship archive ls|verify DIR'.
func runArchive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("archive", archiveSynopsis, stderr)
	verbose := fs.Bool("v", false, "ls: list every snapshot and segment")
	pos, err := parseFlagsAnywhere(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || (pos[0] != "ls" && pos[0] != "verify") {
		fs.Usage()
		return errors.New("archive needs ls DIR or verify DIR")
	}
	a, err := archive.OpenReadOnly(pos[1])
	if err != nil {
		return err
	}
	if pos[0] == "verify" {
		return a.Verify(ctx, func(path string, err error) {
			if err != nil {
				fmt.Fprintf(stdout, "DAMAGED %s: %v\n", path, err)
			} else if *verbose {
				fmt.Fprintf(stdout, "ok      %s\n", path)
			}
		})
	}
	hs, err := a.List()
	if err != nil {
		return err
	}
	if len(hs) == 0 {
		fmt.Fprintf(stdout, "%s holds nothing yet\n", a.Dir())
		return nil
	}
	for i, h := range hs {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printHistory(stdout, h, *verbose)
	}
	return nil
}

func printHistory(w io.Writer, h archive.History, verbose bool) {
	var bytes int64
	for _, s := range h.Segments {
		bytes += s.Size
	}
	for _, s := range h.Snapshots {
		bytes += s.Compressed
	}
	fmt.Fprintf(w, "log %s: %d snapshots, %d segments, %s\n", h.LogID, len(h.Snapshots), len(h.Segments), humanize.IBytes(uint64(bytes)))
	rs := h.Ranges()
	if len(rs) == 0 {
		fmt.Fprintln(w, "  restorable: nothing (no snapshot that its segments follow)")
	}
	for _, r := range rs {
		fmt.Fprintf(w, "  restorable: indexes %d to %d, %s to %s\n", r.First, r.Last, lsTime(r.FirstTime), lsTime(r.LastTime))
	}
	if !verbose {
		return
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  KIND\tINDEXES\tTIMES\tSIZE\tSHA-256")
	for _, s := range h.Snapshots {
		fmt.Fprintf(tw, "  snapshot\t%d\ttaken %s\t%s (%s)\t%s\n", s.Index, lsTime(s.Created), humanize.IBytes(uint64(s.Compressed)),
			humanize.IBytes(uint64(s.Size)), s.FileSHA256[:16])
	}
	for _, s := range h.Segments {
		fmt.Fprintf(tw, "  segment\t%d..%d\t%s to %s\t%s\t%s\n", s.First, s.Last, lsTime(s.FirstTime), lsTime(s.LastTime),
			humanize.IBytes(uint64(s.Size)), s.SHA256[:16])
	}
	tw.Flush()
}

func lsTime(t time.Time) string {
	if t.IsZero() {
		return "(time unknown)"
	}
	return strings.Replace(t.UTC().Format("2006-01-02 15:04:05.000Z"), " ", "T", 1)
}
