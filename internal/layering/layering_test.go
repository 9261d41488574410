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

// harnessModules are what the test harnesses need and the product must not carry: the etcd
// client (the comparison drives etcd with it), toxiproxy (the emulated links), the loggers
// those two bring, and the browser driver of the console tests.
var harnessModules = []string{
	"go.etcd.io/etcd/client/v3",
	"github.com/Shopify/toxiproxy/v2",
	"go.uber.org/zap",
	"github.com/rs/zerolog",
	"github.com/chromedp/",
}

// harnessPackages are the repository's own harness packages.
var harnessPackages = []string{"clusterkit", "lab", "chaos", "compare"}

// The product binaries, as `make build` builds them, link none of the harness's
// dependencies: `go version -m` lists every module a binary was linked with.
func TestProductBinariesCarryNoHarnessDependency(t *testing.T) {
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/", "./node/cmd/georaftd", "./client/cmd/georaft")
	build.Dir = repoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, bin := range []string{"georaftd", "georaft"} {
		out, err := exec.Command("go", "version", "-m", filepath.Join(dir, bin)).Output()
		if err != nil {
			t.Fatalf("go version -m %s: %v", bin, err)
		}
		deps := 0
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || (f[0] != "dep" && f[0] != "=>") {
				continue
			}
			deps++
			for _, m := range harnessModules {
				if f[1] == m || (strings.HasSuffix(m, "/") && strings.HasPrefix(f[1], m)) {
					t.Errorf("%s links %s, a harness dependency", bin, f[1])
				}
			}
		}
		if deps == 0 {
			t.Errorf("go version -m %s lists no dependency: the check would pass on anything\n%s", bin, out)
		}
	}
	// The module's own harness packages stay out too (go version -m names modules only).
	for _, pkg := range goList(t, "-deps", "./node/cmd/georaftd", "./client/cmd/georaft") {
		for _, h := range harnessPackages {
			if pkg == module+"/"+h || strings.HasPrefix(pkg, module+"/"+h+"/") {
				t.Errorf("a product binary depends on %s", pkg)
			}
		}
	}
}
