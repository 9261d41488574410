package compare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/georaft/georaft/clusterkit"
)

// Clean stops whatever a killed run left behind, by the PID files it wrote (a PID is
// signalled only if it is still the process the file was written for), and removes the
// namespaces and bridge. A normal run does this itself before it starts; this is
// `make bench-compare-clean`.
func Clean(ctx context.Context, opts Options) error {
	if err := opts.resolve(); err != nil {
		return err
	}
	var errs []error
	for _, env := range []string{EnvLoopback, EnvGeo} {
		configDir := filepath.Join(opts.RunDir, env, "georaft-configs")
		if _, err := os.Stat(configDir); err == nil {
			c, err := clusterkit.Open(configDir, clusterkit.Options{WorkDir: opts.WorkDir, Detached: true, Log: opts.Out})
			if err == nil {
				err = c.Stop(ctx)
			}
			errs = append(errs, err)
		}
		pids, _ := filepath.Glob(filepath.Join(opts.RunDir, env, "etcd", "*.pid"))
		for _, pidFile := range pids {
			name := strings.TrimSuffix(filepath.Base(pidFile), ".pid")
			dataDir := filepath.Join(opts.DataRoot, env, "etcd", name)
			outcome, pid, err := clusterkit.StopByPIDFile(ctx, pidFile, EtcdWithDataDir(dataDir), 5*time.Second)
			if err != nil {
				errs = append(errs, fmt.Errorf("stop etcd %s (%s): %w", name, env, err))
			} else if outcome != clusterkit.NoPIDFile {
				fmt.Fprintf(opts.Out, "etcd %s (%s): pid %d %s\n", name, env, pid, outcome)
			}
		}
	}
	pids, _ := filepath.Glob(filepath.Join(opts.RunDir, EnvGeo, "*.pid"))
	for _, pidFile := range pids {
		p := &clusterkit.ProxyProcess{Name: strings.TrimSuffix(filepath.Base(pidFile), ".pid"), Binary: opts.Self, RunDir: filepath.Join(opts.RunDir, EnvGeo)}
		errs = append(errs, p.Stop(ctx))
	}
	if slices.Contains(opts.Envs, EnvGeo) && os.Geteuid() == 0 {
		plan, err := PlanNet(DefaultNetPrefix, DefaultSubnet, opts.Regions)
		if err == nil {
			err = plan.Teardown(ctx, ExecRunner)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ProbeHTTP makes count GET requests to url over one kept-alive connection and returns the
// fastest round trip: how the emulated link checks measure a link from inside a namespace.
// The minimum, because a busy machine only ever adds delay to a link.
func ProbeHTTP(ctx context.Context, url string, count int) (time.Duration, error) {
	if count < 1 {
		return 0, fmt.Errorf("probe %s: count %d: want at least 1", url, count)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	var times []time.Duration
	for i := range count {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, fmt.Errorf("probe %s: %w", url, err)
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, fmt.Errorf("probe %s: request %d: %w", url, i+1, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		times = append(times, time.Since(start))
	}
	return slices.Min(times), nil
}
