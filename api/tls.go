package api

import (
	"log"
	"log/slog"
	"strings"
)

// handshakeError starts net/http's log line of a failed TLS handshake.
const handshakeError = "http: TLS handshake error from "

// errorLog returns the log of the HTTP server's own errors. A refused TLS
// handshake (a client certificate this node does not accept, a client
// that does not accept this node's certificate, plain HTTP sent to the
// TLS port) is a warning naming the client and the reason, rate-limited
// per reason; a client that hung up during the handshake, and every other
// line, stays at debug level.
func (s *Server) errorLog() *log.Logger {
	return log.New(serverErrors{s}, "", 0)
}

type serverErrors struct{ s *Server }

func (e serverErrors) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	rest, ok := strings.CutPrefix(line, handshakeError)
	remote, reason, _ := strings.Cut(rest, ": ")
	if !ok || hungUp(reason) {
		e.s.logger.Debug(line)
		return len(p), nil
	}
	e.s.failures.Log(e.s.logger, slog.LevelWarn, "tls: "+reason, "refused a TLS connection", "remote", remote, "err", reason)
	return len(p), nil
}

// hungUp reports whether a handshake failed because the client went away
// or stayed silent (a port probe, a client that gave up), which says
// nothing about certificates.
func hungUp(reason string) bool {
	for _, s := range []string{"connection reset by peer", "broken pipe", "i/o timeout"} {
		if strings.Contains(reason, s) {
			return true
		}
	}
	return reason == "EOF"
}
