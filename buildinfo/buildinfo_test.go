package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestInfoNamesTheBuild(t *testing.T) {
	i := Read()
	if i.Version == "" || i.GoVersion != runtime.Version() {
		t.Fatalf("Read() = %+v", i)
	}
	full := Info{Version: "devel-0123456789ab-dirty", Revision: "0123456789abcdef", Time: "2026-12-01T10:00:00Z", Modified: true, GoVersion: "go1.26.8"}
	want := "devel-0123456789ab-dirty (revision 0123456789abcdef (2026-12-01T10:00:00Z), with uncommitted changes, go1.26.8)"
	if got := full.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := (Info{Version: "v1.2.3", GoVersion: "go1.26.8"}).String(); !strings.HasPrefix(got, "v1.2.3 (go1.26.8)") {
		t.Errorf("release String() = %q", got)
	}
}
