package clusterkit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// stopError makes WaitFor give up at once.
type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }
func (e stopError) Unwrap() error { return e.err }

// Stop wraps err so that WaitFor gives up at once with it instead of trying again: the
// awaited thing cannot happen any more (a process exited).
func Stop(err error) error { return stopError{err} }

// WaitFor calls cond every 20 ms until it returns nil, returns an error wrapped by Stop, ctx
// ends or timeout passes. cond's error says why it is not done yet; the last one ends the
// timeout's message, after what was awaited.
func WaitFor(ctx context.Context, timeout time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		var stop stopError
		if errors.As(err, &stop) {
			return fmt.Errorf("waiting for %s: %w", what, stop.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s: %w", timeout, what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
