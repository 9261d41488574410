package lab

import (
	"context"
	"time"
)

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
func LocalUp(ctx context.Context, opts LocalOptions) (*Cluster, LeaderInfo, error) {
	c, err := OpenCluster(opts.ClusterOptions)
	if err != nil {
		return nil, LeaderInfo{}, err
	}
	timeout := opts.LeaderTimeout
	if timeout <= 0 {
		timeout = DefaultLocalOptions().LeaderTimeout
	}
	info, err := c.Up(ctx, timeout)
	if err != nil {
		return nil, LeaderInfo{}, err
	}
	return c, info, nil
}

// LocalDown stops the nodes the config directory's PID files name.
func LocalDown(ctx context.Context, opts LocalOptions) error {
	c, err := OpenCluster(opts.ClusterOptions)
	if err != nil {
		return err
	}
	return c.Stop(ctx)
}
