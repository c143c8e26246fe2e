package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	humanize "github.com/dustin/go-humanize"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
)

const restoreSynopsis = `walship restore [--node URL] FILE
       walship restore --archive DIR (--to-index N | --to-time T) --data NEWDIR (its help: walship restore --archive DIR --help)

Replaces the cluster's database with FILE, a backup. A SQLite file (from
'walship backup', sqlite3, or any SQLite database; gzipped is fine) is
checked here (against FILE.sha256 when walship backup wrote one, and by
SQLite's integrity check), sent to the master and installed there as one
operation: the cluster starts a new history at the next log index, and
every slave bootstraps to it. A SQL dump is run on the master as one
transaction, added to what the database holds (as rqlite's /db/load does);
a dump larger than a request is refused: 'walship load FILE' sends it in
chunks. Only the master restores: a slave's URL is answered with the
master's.`

// runRestore runs 'walship restore'.
func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", restoreSynopsis, stderr)
	node := fs.String("node", "http://127.0.0.1:8080", "the master's URL")
	timeout := fs.Duration("timeout", 0, "time limit of the whole restore (0: none)")
	rem := addRemoteFlags(fs)
	pos, err := rem.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("restore needs one FILE")
	}
	return restoreFrom(ctx, rem.client(nodeURL(*node), *timeout), pos[0], stdout, stderr)
}

// restoreFrom sends file to c's node's POST /db/load, reporting on out and
// the progress on progress.
func restoreFrom(ctx context.Context, c *client.Client, file string, out, progress io.Writer) error {
	if had, err := checkSum(file); err != nil {
		return err
	} else if !had {
		fmt.Fprintf(progress, "restore: %s has no %s beside it: checked by SQLite's integrity check only\n", file, file+sumSuffix)
	}
	path, cleanup, err := gunzipped(file)
	if err != nil {
		return err
	}
	defer cleanup()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	head := make([]byte, 16)
	n, _ := io.ReadFull(f, head)
	isDB := db.IsSQLiteHeader(head[:n])
	if isDB {
		if err := db.CheckFile(ctx, path); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	start := time.Now()
	pr := newTransfer(progress, "restore: sent", fi.Size())
	res, err := c.Load(ctx, pr.reader(bufio.NewReaderSize(f, 1<<20)), fi.Size())
	pr.end()
	if err != nil {
		return fmt.Errorf("restore %s: %w", file, nodeError(c.URL, err))
	}
	took := time.Since(start).Round(time.Millisecond)
	if isDB {
		fmt.Fprintf(out, "restored %s (%s) to %s in %s: the database is now that file, at log index %d, a new history (log %s); the slaves bootstrap to it\n",
			file, humanize.IBytes(uint64(fi.Size())), c.URL, took, res.Index, res.LogID)
		return nil
	}
	fmt.Fprintf(out, "ran the SQL dump %s on %s as one transaction in %s: %d results, log index %d\n",
		file, c.URL, took, len(res.Response.Results), res.Index)
	return nil
}

// gunzipped returns file's path, or when file is gzipped the path of a
// temporary copy gunzipped, with the function that removes it.
func gunzipped(file string) (string, func(), error) {
	none := func() {}
	f, err := os.Open(file)
	if err != nil {
		return "", none, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	if magic, _ := br.Peek(2); len(magic) < 2 || magic[0] != 0x1f || magic[1] != 0x8b {
		return file, none, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return "", none, fmt.Errorf("%s: %w", file, err)
	}
	tmp, err := os.CreateTemp("", "walship-restore-*")
	if err != nil {
		return "", none, err
	}
	remove := func() { _ = os.Remove(tmp.Name()) }
	_, err = io.Copy(tmp, zr)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		remove()
		return "", none, fmt.Errorf("%s: gunzip: %w", file, err)
	}
	return tmp.Name(), remove, nil
}
