package compare

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/client/bench"
)

// etcd read modes, as rows of the bench report.
const (
	// EtcdLinearizable is etcd's default read: the member confirms leadership with a
	// ReadIndex round before answering.
	EtcdLinearizable = "linearizable"
	// EtcdSerializable answers from the member's local state, possibly stale.
	EtcdSerializable = "serializable"
)

// EtcdDriver drives an etcd cluster through the official v3 client, for client/bench.
type EtcdDriver struct {
	Client *clientv3.Client
	// OpTimeout bounds one operation, as the georaft client's RequestTimeout does: a stuck
	// cluster costs an error, not a hung benchmark.
	OpTimeout time.Duration
}

// NewEtcdDriver connects to endpoints (host:port). The client keeps to them: it does not
// sync the member list, so traffic stays on the links the harness chose.
func NewEtcdDriver(endpoints []string, opTimeout time.Duration) (*EtcdDriver, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("etcd driver: no endpoints")
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", endpoints, err)
	}
	if opTimeout <= 0 {
		opTimeout = 10 * time.Second
	}
	return &EtcdDriver{Client: c, OpTimeout: opTimeout}, nil
}

// Close closes the client.
func (d *EtcdDriver) Close() error { return d.Client.Close() }

func (d *EtcdDriver) Name() string { return "etcd" }

func (d *EtcdDriver) Set(ctx context.Context, key string, value []byte) error {
	ctx, cancel := context.WithTimeout(ctx, d.OpTimeout)
	defer cancel()
	_, err := d.Client.Put(ctx, key, string(value))
	return err
}

// Get reads key linearizably (etcd's default) or serializably.
func (d *EtcdDriver) Get(ctx context.Context, key string, mode string) (string, error) {
	var opts []clientv3.OpOption
	switch mode {
	case EtcdLinearizable:
	case EtcdSerializable:
		opts = append(opts, clientv3.WithSerializable())
	default:
		return "", fmt.Errorf("etcd driver: read mode %q: want %s or %s", mode, EtcdLinearizable, EtcdSerializable)
	}
	ctx, cancel := context.WithTimeout(ctx, d.OpTimeout)
	defer cancel()
	if _, err := d.Client.Get(ctx, key, opts...); err != nil {
		return "", err
	}
	return mode, nil
}

// ClassifyError names the kind of a failed etcd operation with the engine's error kinds.
func (d *EtcdDriver) ClassifyError(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return bench.ErrKindTimeout
	case errors.Is(err, context.Canceled):
		return bench.ErrKindCanceled
	}
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.DeadlineExceeded:
			return bench.ErrKindTimeout
		case codes.Canceled:
			return bench.ErrKindCanceled
		case codes.Unavailable:
			return bench.ErrKindUnavailable
		case codes.InvalidArgument:
			return bench.ErrKindInvalid
		}
		return "etcd:" + s.Code().String()
	}
	return bench.ErrKindOther
}
