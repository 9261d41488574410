package bench

import (
	"context"
	"errors"
	"fmt"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/readmode"
)

// Driver is the store under load. The georaft client is one; the etcd comparison plugs in
// another. Implementations must be safe for concurrent use.
type Driver interface {
	// Name labels the report ("georaft", "etcd").
	Name() string
	Set(ctx context.Context, key string, value []byte) error
	// Get reads key in the named mode ("lease", "index", "log", "stale", or whatever the
	// driver supports) and returns the mode that actually served it.
	Get(ctx context.Context, key string, mode string) (served string, err error)
}

// ErrorClassifier names the kind of a failed operation for the errors-by-kind counts.
// Drivers may implement it; otherwise ClassifyError is used.
type ErrorClassifier interface {
	ClassifyError(err error) string
}

// ClientDriver drives a georaft cluster through the client library.
type ClientDriver struct {
	Client *client.Client
}

func (d ClientDriver) Name() string { return "georaft" }

func (d ClientDriver) Set(ctx context.Context, key string, value []byte) error {
	_, err := d.Client.Set(ctx, key, value)
	return err
}

func (d ClientDriver) Get(ctx context.Context, key string, mode string) (string, error) {
	m, err := readmode.Parse(mode)
	if err != nil {
		return "", err
	}
	res, err := d.Client.Get(ctx, key, m)
	if err != nil {
		return "", err
	}
	return res.Served.String(), nil
}

func (d ClientDriver) ClassifyError(err error) string { return ClassifyError(err) }

// Error kinds counted in reports.
const (
	ErrKindTimeout     = "timeout"     // the operation's deadline passed
	ErrKindUnavailable = "unavailable" // retries gave up without a deadline (MaxRetries)
	ErrKindInvalid     = "invalid"     // the node refused the request as malformed
	ErrKindRefused     = "refused"     // any other definitive refusal
	ErrKindCanceled    = "canceled"    // the bench was interrupted
	ErrKindOther       = "other"
)

// ClassifyError maps client library errors onto error kinds.
func ClassifyError(err error) string {
	var unavailable *client.UnavailableError
	switch {
	case errors.As(err, &unavailable):
		if unavailable.Deadline {
			return ErrKindTimeout
		}
		if unavailable.Reason != "" {
			return fmt.Sprintf("%s:%s", ErrKindUnavailable, unavailable.Reason)
		}
		return ErrKindUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return ErrKindTimeout
	case errors.Is(err, context.Canceled):
		return ErrKindCanceled
	case errors.Is(err, client.ErrInvalidArgument):
		return ErrKindInvalid
	case errors.Is(err, client.ErrRefused):
		return ErrKindRefused
	}
	return ErrKindOther
}
