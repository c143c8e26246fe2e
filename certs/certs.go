// Package certs gives walship's TLS its certificates, with crypto/tls
// only: a certificate and its key read from PEM files and read again when
// the files change (Pair), so that certificates rotate without a restart,
// and the server and client configurations built on them (ServerConfig,
// ClientConfig).
//
// # Rotation
//
// A Pair looks at its two files (size, modification time, inode) when a
// handshake asks for the certificate, at most once a CheckInterval. When
// either file changed it reads both again. A valid new pair serves the
// next handshakes; connections already open keep the one they began with.
// A new pair that does not load (a key that does not match the
// certificate, a half-written file, a missing file) is logged once, and
// the previous pair stays in use until the files change again. Writing the
// new files beside the old ones and renaming them into place keeps the
// window in which the two files do not match short; a reader that sees it
// keeps the previous pair and loads the new one at its next look.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCheckInterval is how often, at most, a Pair (and a client CA
// file) is looked at for changes.
const DefaultCheckInterval = time.Second

// Pair is a certificate and its private key read from two PEM files, read
// again when either changes. Its GetCertificate and GetClientCertificate
// methods are tls.Config's callbacks of the same names. It is safe for
// concurrent use.
type Pair struct {
	cur atomic.Pointer[tls.Certificate]
	w   watch
}

// LoadPair reads the certificate (the PEM file may hold its chain after
// it) and the key, and returns a Pair that reads them again when they
// change, looking at most once every interval (0: DefaultCheckInterval).
// Reloads, and new pairs that fail to load, are logged on logger (nil:
// slog.Default()).
func LoadPair(certFile, keyFile string, interval time.Duration, logger *slog.Logger) (*Pair, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("certs: a certificate needs both its certificate file and its key file")
	}
	p := &Pair{}
	p.w = watch{files: []string{certFile, keyFile}, what: "certificate", interval: interval, logger: logger,
		load: func() ([]any, error) {
			c, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("certs: certificate %s with key %s: %w", certFile, keyFile, err)
			}
			p.cur.Store(&c)
			return describe(c.Leaf), nil
		}}
	if err := p.w.init(); err != nil {
		return nil, err
	}
	return p, nil
}

// Certificate returns the current certificate, reading the files again
// first if they changed and the last look is older than the interval.
func (p *Pair) Certificate() *tls.Certificate {
	p.w.check()
	return p.cur.Load()
}

// GetCertificate serves tls.Config.GetCertificate: the current
// certificate, whatever the client asks for.
func (p *Pair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return p.Certificate(), nil
}

// GetClientCertificate serves tls.Config.GetClientCertificate: the current
// certificate, even when the server names CAs that did not sign it (the
// server then refuses it and says so in its log, which is clearer than a
// client that sent nothing).
func (p *Pair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return p.Certificate(), nil
}

// describe names a certificate in the logs.
func describe(leaf *x509.Certificate) []any {
	if leaf == nil {
		return nil
	}
	return []any{"subject", leaf.Subject.String(), "dns_names", strings.Join(leaf.DNSNames, ","),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339)}
}

// watch reads a set of files again when they change, at most once every
// interval, and logs a failed read once per state of the files.
type watch struct {
	files    []string
	what     string // "certificate", "client CA", for the logs
	interval time.Duration
	logger   *slog.Logger
	// load reads the files and installs what they hold; it returns what
	// to log about it.
	load func() ([]any, error)

	last atomic.Int64  // when the files were last looked at, Unix ns
	mu   sync.Mutex    // one look at a time; held by check
	seen []os.FileInfo // the files loaded
	// bad and badErr are the files whose load failed, or the error of
	// the look at them, logged already.
	bad    []os.FileInfo
	badErr string
}

// init loads the files for the first time: a failure is the caller's
// error.
func (w *watch) init() error {
	if w.interval <= 0 {
		w.interval = DefaultCheckInterval
	}
	if w.logger == nil {
		w.logger = slog.Default()
	}
	seen, err := stat(w.files)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if _, err := w.load(); err != nil {
		return err
	}
	w.seen = seen
	w.last.Store(time.Now().UnixNano())
	return nil
}

// check loads the files again if they changed since they were loaded. It
// returns at once when the last look is recent, or when another handshake
// is looking now: that one installs what it finds.
func (w *watch) check() {
	now := time.Now().UnixNano()
	if now-w.last.Load() < int64(w.interval) || !w.mu.TryLock() {
		return
	}
	defer w.mu.Unlock()
	if now-w.last.Load() < int64(w.interval) {
		return
	}
	w.last.Store(now)
	// The files are looked at before they are read: a change after the
	// look is seen at the next one.
	seen, err := stat(w.files)
	switch {
	case err == nil && sameFiles(seen, w.seen):
		w.bad, w.badErr = nil, ""
		return
	case err != nil:
		if err.Error() != w.badErr {
			w.bad, w.badErr = nil, err.Error()
			w.failed(err)
		}
		return
	case w.bad != nil && sameFiles(seen, w.bad):
		return // logged already
	}
	args, err := w.load()
	if err != nil {
		w.bad, w.badErr = seen, ""
		w.failed(err)
		return
	}
	w.seen, w.bad, w.badErr = seen, nil, ""
	w.logger.Info(w.what+" reloaded", append([]any{"files", strings.Join(w.files, ",")}, args...)...)
}

// failed logs that the files changed into something that cannot be used.
func (w *watch) failed(err error) {
	w.logger.Warn("the "+w.what+" files changed but cannot be used; keeping the previous "+w.what,
		"files", strings.Join(w.files, ","), "err", err)
}

func stat(files []string) ([]os.FileInfo, error) {
	out := make([]os.FileInfo, len(files))
	for i, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		out[i] = fi
	}
	return out, nil
}

// sameFiles reports whether a and b describe the same files, unchanged.
func sameFiles(a, b []os.FileInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !os.SameFile(a[i], b[i]) || a[i].Size() != b[i].Size() || !a[i].ModTime().Equal(b[i].ModTime()) {
			return false
		}
	}
	return true
}
