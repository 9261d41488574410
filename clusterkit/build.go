package clusterkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// TestHooksTag builds georaftd with the hooks the chaos harness needs (a clock rate from
// the environment); production builds lack them.
const TestHooksTag = "georaft_testhooks"

// Build compiles the main package pkg ("./node/cmd/georaftd") of the module in root into
// dir, with the given build tags, and returns the binary's path. The binary keeps the
// package's name, which is how the kit's process matchers know it.
func Build(ctx context.Context, root, dir, pkg string, tags ...string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	args := []string{"build", "-o", out}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s in %s: %w\n%s", strings.Join(append(args, pkg), " "), root, err, msg)
	}
	return out, nil
}

// ModuleRoot is the directory of the go.mod governing the working directory.
func ModuleRoot(ctx context.Context) (string, error) {
	raw, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(raw))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the georaft module: run from the repository (go env GOMOD is empty)")
	}
	return filepath.Dir(gomod), nil
}
