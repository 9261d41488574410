// Package testenv finds the outside tools some tests drive (ansible, promtool, etcd,
// etcdctl, chromium). On a developer's machine a missing tool skips its test; in CI, where
// .ci/run installs every one of them and sets CI, a missing tool fails it, so a broken
// install can never pass as a green run.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Tool returns the path of the named program, or skips t (fails it in CI) with the hint
// saying how to install it.
func Tool(t testing.TB, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	Missing(t, name+" is not on PATH ("+install+")")
	return ""
}

// Missing skips t for a missing prerequisite described by why, or fails it in CI.
func Missing(t testing.TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatal(why + "; CI installs it (.ci/run), so its absence is a failure")
	}
	t.Skip(why)
}

// InCI reports whether the tests run in CI (.ci/run sets CI).
func InCI() bool { return os.Getenv("CI") != "" }
