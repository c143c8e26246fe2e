package main

import (
	"bytes"
	"context"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/walship/walship/api"
)

// walship version and --version print the version, the module's and the
// Go that built it; a binary built in a checkout, its VCS revision.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out, errOut bytes.Buffer
		if err := Run(context.Background(), args, &out, &errOut); err != nil {
			t.Fatalf("%v: %v %s", args, err, errOut.String())
		}
		lines := strings.Split(out.String(), "\n")
		if lines[0] != "walship "+api.Version || !strings.HasPrefix(lines[1], "module github.com/walship/walship ") ||
			!strings.Contains(out.String(), "\nbuilt with "+runtime.Version()+" for "+runtime.GOOS+"/"+runtime.GOARCH+"\n") {
			t.Fatalf("%v:\n%s", args, out.String())
		}
	}
	if err := Run(context.Background(), []string{"version", "extra"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || err.Error() != "unexpected arguments: extra" {
		t.Fatalf("version extra: %v", err)
	}
	bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/walship/walship", Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	want := "walship " + api.Version + "\n" +
		"module github.com/walship/walship v1.2.3\n" +
		"revision 0123456789abcdef0123456789abcdef01234567 (2026-01-02T03:04:05Z), with uncommitted changes\n" +
		"built with " + runtime.Version() + " for " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if got := versionText(bi); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if got := versionText(nil); !strings.HasPrefix(got, "walship "+api.Version+"\nbuilt with ") {
		t.Fatalf("without build info:\n%s", got)
	}
}
