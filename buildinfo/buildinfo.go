// Package buildinfo says which georaft a binary is, from what the Go toolchain records in
// it (runtime/debug.ReadBuildInfo): the module version when built from a tagged release,
// else the VCS revision of the checkout, whether it had uncommitted changes, and the Go
// version. georaftd and georaft both report it (--version, `georaft version`, Status, the
// georaft_build_info metric), so an operator can tell which build answers.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Info is a binary's build.
type Info struct {
	// Version is the module version (v1.2.3), or "devel" plus the revision's first 12
	// digits and "-dirty" for a build from a checkout with changes.
	Version string
	// Revision is the VCS commit the binary was built from ("" when unknown).
	Revision string
	// Time is the commit's time, RFC 3339 ("" when unknown).
	Time string
	// Modified: the checkout had uncommitted changes.
	Modified  bool
	GoVersion string
}

// Read returns this binary's build information.
func Read() Info {
	info := Info{Version: "devel", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	switch v := bi.Main.Version; {
	case v != "" && v != "(devel)":
		info.Version = v
	case info.Revision != "":
		info.Version = "devel-" + info.Revision[:min(12, len(info.Revision))]
		if info.Modified {
			info.Version += "-dirty"
		}
	}
	return info
}

// String is the one line `--version` prints after the program's name.
func (i Info) String() string {
	var parts []string
	if i.Revision != "" {
		rev := "revision " + i.Revision
		if i.Time != "" {
			rev += " (" + i.Time + ")"
		}
		if i.Modified {
			rev += ", with uncommitted changes"
		}
		parts = append(parts, rev)
	}
	parts = append(parts, i.GoVersion)
	return fmt.Sprintf("%s (%s)", i.Version, strings.Join(parts, ", "))
}
