package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	humanize "github.com/dustin/go-humanize"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
)

const backupSynopsis = `walship backup [--node URL] [--sql] [--compress] [--vacuum] [--tables T,…] FILE

Writes a backup of the node's database to FILE, taken while the node keeps
writing: a SQLite file that plain sqlite3 opens (its _walship table says the
log index it holds), or with --sql a SQL dump that 'walship restore' or
'walship load' or sqlite3 reads. Any node serves one: a slave's backup is at
the index it applied, and spares the master the work. The file is checked
(SQLite's integrity_check) before it takes its name, and its SHA-256 is
written beside it to FILE.sha256 (sha256sum -c reads it; walship restore
checks it); a progress line shows the bytes received. FILE "-" writes to
standard output.`

// runBackup runs 'walship backup'.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", backupSynopsis, stderr)
	node := fs.String("node", "http://127.0.0.1:8080", "the node's URL (any node)")
	sqlDump := fs.Bool("sql", false, "a SQL dump instead of a SQLite file")
	compress := fs.Bool("compress", false, "gzip the backup (FILE is then a .gz)")
	vacuum := fs.Bool("vacuum", false, "vacuum the copy: smaller, pages laid out anew (SQLite file only)")
	tables := fs.String("tables", "", "with --sql: only these tables, comma-separated (LIKE patterns)")
	timeout := fs.Duration("timeout", 0, "time limit of the whole backup (0: none)")
	rem := addRemoteFlags(fs)
	pos, err := rem.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("backup needs one FILE")
	}
	if *vacuum && *sqlDump {
		return errors.New("--vacuum applies to a SQLite file, not to --sql")
	}
	if *tables != "" && !*sqlDump {
		return errors.New("--tables applies to --sql only")
	}
	c := rem.client(nodeURL(*node), *timeout)
	opts := client.BackupOptions{SQL: *sqlDump, Compress: *compress, Vacuum: *vacuum}
	if *tables != "" {
		opts.Tables = strings.Split(*tables, ",")
	}
	return backupTo(ctx, c, opts, pos[0], stdout, stderr)
}

// backupTo writes a backup of c's node to file ("-": out), reporting on
// out and its progress on progress.
func backupTo(ctx context.Context, c *client.Client, opts client.BackupOptions, file string, out, progress io.Writer) error {
	start := time.Now()
	b, err := c.Backup(ctx, opts)
	if err != nil {
		return nodeError(c.URL, err)
	}
	defer b.Body.Close()
	pr := newTransfer(progress, "backup", b.Size)
	if file == "-" {
		n, err := io.Copy(out, pr.reader(b.Body))
		pr.end()
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		fmt.Fprintf(progress, "backup of %s at log index %d: %s in %s\n", c.URL, b.Index, humanize.IBytes(uint64(n)), time.Since(start).Round(time.Millisecond))
		return nil
	}
	if _, err := os.Stat(file); err == nil {
		return fmt.Errorf("%s exists: choose a new name (a backup never overwrites a file)", file)
	}
	tmp := file + ".part"
	sum := sha256.New()
	n, err := writeFileSynced(tmp, io.TeeReader(pr.reader(b.Body), sum))
	pr.end()
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("backup: %w", nodeError(c.URL, err))
	}
	if b.Size >= 0 && n != b.Size {
		_ = os.Remove(tmp)
		return fmt.Errorf("backup: received %d bytes of %d: the transfer was cut", n, b.Size)
	}
	if !opts.SQL {
		if err := checkBackup(ctx, tmp, opts.Compress); err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("backup: the file received is damaged: %w", err)
		}
	}
	// Its checksum beside it, in sha256sum's format: restore checks it,
	// and so does 'sha256sum -c'.
	line := fmt.Sprintf("%x  %s\n", sum.Sum(nil), filepath.Base(file))
	if err := os.WriteFile(file+sumSuffix, []byte(line), 0o644); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("backup: %w", err)
	}
	kind := "SQLite file"
	if opts.SQL {
		kind = "SQL dump"
	}
	fmt.Fprintf(out, "backup of %s at log index %d (log %s): %s, %s %s in %s\n", c.URL, b.Index, b.LogID, file,
		humanize.IBytes(uint64(n)), kind, time.Since(start).Round(time.Millisecond))
	return nil
}

// sumSuffix names the checksum file walship backup writes beside a backup.
const sumSuffix = ".sha256"

// checkSum checks file against the SHA-256 in file.sha256, when there is
// one; it reports whether there was.
func checkSum(file string) (bool, error) {
	want, err := os.ReadFile(file + sumSuffix)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	fields := strings.Fields(string(want))
	if len(fields) < 1 || len(fields[0]) != 64 {
		return true, fmt.Errorf("%s%s is not a SHA-256 checksum file", file, sumSuffix)
	}
	f, err := os.Open(file)
	if err != nil {
		return true, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return true, err
	}
	if got := fmt.Sprintf("%x", h.Sum(nil)); got != strings.ToLower(fields[0]) {
		return true, fmt.Errorf("%s does not match its checksum (%s%s): it was changed or damaged since the backup (SHA-256 %s, expected %s)",
			file, file, sumSuffix, got, fields[0])
	}
	return true, nil
}

// writeFileSynced writes r to a new file at path and fsyncs it.
func writeFileSynced(path string, r io.Reader) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	n, err := io.Copy(bw, r)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// checkBackup runs SQLite's integrity check on a backup file (gunzipped to
// a temporary file first when compressed).
func checkBackup(ctx context.Context, path string, compressed bool) error {
	if !compressed {
		return db.CheckFile(ctx, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".check-*.sqlite")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, zr)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return db.CheckFile(ctx, tmp.Name())
}

// transfer shows the progress of a transfer: on a terminal one line rewritten
// every 200ms, elsewhere a line every 5s; nothing for a short transfer.
type transfer struct {
	out   io.Writer
	what  string
	total int64 // -1: unknown
	tty   bool

	mu    sync.Mutex
	done  int64
	start time.Time
	last  time.Time
	shown bool
}

func newTransfer(out io.Writer, what string, total int64) *transfer {
	now := time.Now()
	return &transfer{out: out, what: what, total: total, tty: isTerminal(out), start: now, last: now}
}

// reader counts what r reads.
func (p *transfer) reader(r io.Reader) io.Reader { return &countingReader{r: r, p: p} }

type countingReader struct {
	r io.Reader
	p *transfer
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.add(int64(n))
	return n, err
}

func (p *transfer) add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	every := 5 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	if time.Since(p.last) < every {
		return
	}
	p.last = time.Now()
	p.shown = true
	rate := float64(p.done) / time.Since(p.start).Seconds()
	msg := fmt.Sprintf("%s: %s", p.what, humanize.IBytes(uint64(p.done)))
	if p.total > 0 {
		msg += fmt.Sprintf(" of %s (%d%%)", humanize.IBytes(uint64(p.total)), p.done*100/p.total)
	}
	msg += fmt.Sprintf(", %s/s", humanize.IBytes(uint64(rate)))
	if p.tty {
		fmt.Fprintf(p.out, "\r%s\x1b[K", msg)
	} else {
		fmt.Fprintln(p.out, msg)
	}
}

// end clears the transfer line.
func (p *transfer) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.shown {
		fmt.Fprint(p.out, "\r\x1b[K")
	}
}
