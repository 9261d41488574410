// Package layering holds the checks on what may import what: the rules of docs/design.md
// that the compiler does not enforce.
package layering

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/georaft/georaft"

// repoRoot is the checkout this file is in.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// goList runs `go list` in the repository and returns its output lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = repoRoot()
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return strings.Fields(string(out))
}

// The client is a library applications embed: it must build without the daemon, so
// nothing under client/ (tests aside) may depend on node/..., directly or not.
func TestClientNeverDependsOnTheNode(t *testing.T) {
	deps := goList(t, "-deps", "./client/...")
	if len(deps) == 0 {
		t.Fatal("go list -deps ./client/... listed nothing")
	}
	for _, dep := range deps {
		if dep == module+"/node" || strings.HasPrefix(dep, module+"/node/") {
			t.Errorf("client depends on %s; move what it needs out of node/ (as tlsutil was)", dep)
		}
	}
}
