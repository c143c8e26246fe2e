package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/walship/walship/api"
)

// versionText says which walship this is: its version (the one GET
// /status reports), the module version and VCS revision Go recorded in
// the binary when it was built (bi, from debug.ReadBuildInfo; nil when
// there is none), and the Go that built it. A binary built in a git
// checkout carries its revision; one built by 'go install
// module@version', the module's version.
func versionText(bi *debug.BuildInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "walship %s\n", api.Version)
	if bi != nil {
		path, version := bi.Main.Path, bi.Main.Version
		if path == "" {
			path = "github.com/walship/walship"
		}
		if version == "" {
			version = "(unknown)"
		}
		fmt.Fprintf(&b, "module %s %s\n", path, version)
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		if rev := settings["vcs.revision"]; rev != "" {
			line := "revision " + rev
			if t := settings["vcs.time"]; t != "" {
				line += " (" + t + ")"
			}
			if settings["vcs.modified"] == "true" {
				line += ", with uncommitted changes"
			}
			b.WriteString(line + "\n")
		}
	}
	fmt.Fprintf(&b, "built with %s for %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return b.String()
}

// runVersion runs 'walship version' (and --version).
func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "walship version\n\nThe version of walship, the module version and VCS revision it was built from, and the Go that built it.", stderr)
	pos, err := parseFlagsAnywhere(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(pos, " "))
	}
	bi, _ := debug.ReadBuildInfo()
	_, err = io.WriteString(stdout, versionText(bi))
	return err
}
