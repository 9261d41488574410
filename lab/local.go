package lab

import (
	"context"
	"io"
	"time"

	"github.com/georaft/georaft/clusterkit"
)

// ClusterOptions locate a cluster's configs and binary.
type ClusterOptions struct {
	ConfigDir string
	// Georaftd is the node binary (bin/georaftd from the repo root).
	Georaftd string
	// WorkDir defaults to the current directory.
	WorkDir string
	// Out receives progress lines; nil discards them.
	Out io.Writer
}

// Open opens the cluster of a config directory; its nodes run detached, outliving the
// command that starts them.
func (o ClusterOptions) Open(kit clusterkit.Options) (*clusterkit.Cluster, error) {
	kit.Georaftd, kit.WorkDir, kit.Log, kit.Detached = o.Georaftd, o.WorkDir, o.Out, true
	return clusterkit.Open(o.ConfigDir, kit)
}

// LocalOptions locate the local cluster.
type LocalOptions struct {
	ClusterOptions
	LeaderTimeout time.Duration
}

// DefaultLocalOptions are the paths `make local-up` uses, relative to the repo root.
func DefaultLocalOptions() LocalOptions {
	return LocalOptions{
		ClusterOptions: ClusterOptions{ConfigDir: "configs/local", Georaftd: "bin/georaftd"},
		LeaderTimeout:  30 * time.Second,
	}
}

// LocalUp checks every port is free, starts the nodes detached and waits for a leader.
func LocalUp(ctx context.Context, opts LocalOptions) (*clusterkit.Cluster, clusterkit.Leader, error) {
	c, err := opts.Open(clusterkit.Options{})
	if err != nil {
		return nil, clusterkit.Leader{}, err
	}
	timeout := opts.LeaderTimeout
	if timeout <= 0 {
		timeout = DefaultLocalOptions().LeaderTimeout
	}
	leader, err := c.Up(ctx, timeout, clusterkit.Want{})
	if err != nil {
		return nil, clusterkit.Leader{}, err
	}
	return c, leader, nil
}

// LocalDown stops the nodes the config directory's PID files name.
func LocalDown(ctx context.Context, opts LocalOptions) error {
	c, err := opts.Open(clusterkit.Options{})
	if err != nil {
		return err
	}
	return c.Stop(ctx)
}
