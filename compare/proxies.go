package compare

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/georaft/georaft/lab"
)

// BinaryName is the harness binary; proxy processes run it with `proxy-serve`.
const BinaryName = "georaft-compare"

// ProxyProcess is one process running a proxy plan (lab.ServeProxies), in the root
// namespace or in a member's namespace.
type ProxyProcess struct {
	Name      string
	Plan      lab.ProxyPlan
	Namespace string
	// Binary is georaft-compare, absolute.
	Binary string
	RunDir string
}

func (p *ProxyProcess) planPath() string  { return filepath.Join(p.RunDir, p.Name+".plan.json") }
func (p *ProxyProcess) readyPath() string { return filepath.Join(p.RunDir, p.Name+".ready") }
func (p *ProxyProcess) pidPath() string   { return filepath.Join(p.RunDir, p.Name+".pid") }
func (p *ProxyProcess) stderrPath() string {
	return filepath.Join(p.RunDir, p.Name+".stderr")
}

// ProxyServe matches `georaft-compare proxy-serve --plan PATH` for that PATH.
func ProxyServe(planPath string) lab.ArgvMatcher {
	return func(argv []string) bool {
		return len(argv) > 1 && filepath.Base(argv[0]) == BinaryName && slices.Contains(argv[1:], "proxy-serve") &&
			flagValue(argv[1:], "--plan") == planPath
	}
}

// Start writes the plan, starts the process detached and waits until every link listens.
func (p *ProxyProcess) Start(ctx context.Context) error {
	if filepath.Base(p.Binary) != BinaryName {
		return fmt.Errorf("proxies %s: proxy-serve must run from a binary named %s (so a later run can recognise it), got %s", p.Name, BinaryName, p.Binary)
	}
	if err := os.MkdirAll(p.RunDir, 0o755); err != nil {
		return fmt.Errorf("proxies %s: create run dir: %w", p.Name, err)
	}
	if err := p.Stop(ctx); err != nil {
		return fmt.Errorf("proxies %s: stop leftover of an earlier run: %w", p.Name, err)
	}
	if err := lab.WritePlan(p.planPath(), p.Plan); err != nil {
		return err
	}
	if err := os.Remove(p.readyPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("proxies %s: remove stale ready file: %w", p.Name, err)
	}
	bin, args := p.Binary, []string{"proxy-serve", "--plan", p.planPath(), "--ready", p.readyPath()}
	if p.Namespace != "" {
		bin, args = "ip", append([]string{"netns", "exec", p.Namespace, p.Binary}, args...)
	}
	pid, err := lab.StartDetached(lab.ProcessSpec{
		Name: "proxies " + p.Name, Binary: bin, Args: args, Dir: p.RunDir, PIDFile: p.pidPath(),
		StdoutFile: filepath.Join(p.RunDir, p.Name+".stdout"), StderrFile: p.stderrPath(),
	})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if raw, err := os.ReadFile(p.readyPath()); err == nil && strings.TrimSpace(string(raw)) == strconv.Itoa(pid) {
			return nil
		}
		var why string
		switch {
		case !lab.ProcessAlive(pid):
			why = "exited before its links were up"
		case time.Now().After(deadline):
			why = "did not report its links up within 15s"
		case ctx.Err() != nil:
			why = "was interrupted: " + ctx.Err().Error()
		}
		if why != "" {
			err := fmt.Errorf("proxies %s (pid %d) %s\n--- tail of %s ---\n%s", p.Name, pid, why, p.stderrPath(), tail(p.stderrPath(), 20))
			return errors.Join(err, p.Stop(context.Background()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the process its PID file names, if it is still this plan's proxy-serve.
func (p *ProxyProcess) Stop(ctx context.Context) error {
	if _, _, err := lab.StopByPIDFile(ctx, p.pidPath(), ProxyServe(p.planPath()), 5*time.Second); err != nil {
		return fmt.Errorf("stop proxies %s: %w", p.Name, err)
	}
	return nil
}

// PID is the running process, if any.
func (p *ProxyProcess) PID() (int, bool) { return lab.LivePID(p.pidPath(), ProxyServe(p.planPath())) }
