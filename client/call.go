package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// routing says which node an operation needs.
type routing int

const (
	// toLeader: writes, linearizable reads, leadership transfer.
	toLeader routing = iota
	// toLocal: stale reads, which any node answers; the client's own region first, else the
	// nearest node by measured round trip.
	toLocal
	// toLeaseServer: lease reads, which the leader and read-lease holders answer; the
	// nearest of them by measured round trip (rtt.go).
	toLeaseServer
)

// run sends rpc until it succeeds, fails definitively, or the operation's deadline passes.
// It returns the endpoint that answered and the number of attempts.
func (c *Client) run(ctx context.Context, op string, route routing, rpc func(context.Context, *endpoint) error) (*endpoint, int, error) {
	start := time.Now()
	// WithTimeout keeps the caller's deadline when it is the earlier one.
	ctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	defer cancel()

	var (
		attempts  int
		failures  int // attempts that ended in a backoff
		redirects int // consecutive redirects followed without backing off
		last      attemptError
		redirect  *endpoint
		// refused holds the endpoints whose last attempt found nothing listening.
		refused = map[*endpoint]bool{}
	)
	giveUp := func(deadline bool) error {
		return &UnavailableError{Op: op, Reason: last.reason, Cause: c.diagnose(), Attempts: attempts,
			Elapsed: time.Since(start), Deadline: deadline, Last: last.cause}
	}
	for {
		var ep *endpoint
		var err error
		switch {
		case redirect != nil:
			ep, redirect = redirect, nil
		case route == toLeader:
			ep, err = c.leaderTarget()
		case route == toLeaseServer:
			ep, err = c.nearestTarget(ctx, failures, true)
		default:
			ep, err = c.localTarget(ctx, failures)
		}
		if err != nil {
			return nil, attempts, fmt.Errorf("%s: %w", op, err)
		}

		attemptCtx, cancelAttempt := context.WithTimeout(ctx, c.opts.AttemptTimeout)
		err = rpc(attemptCtx, ep)
		cancelAttempt()
		attempts++
		if err == nil {
			if route == toLeader {
				c.setLeader(ep)
			}
			return ep, attempts, nil
		}

		ae := classify(op, err, ctx)
		c.opts.Logger.Debug("attempt failed", "op", op, "endpoint", ep.addr, "attempt", attempts, "reason", ae.reason, "err", err)
		switch ae.kind {
		case failFinal:
			if errors.Is(ae.final, context.DeadlineExceeded) {
				if last.cause == nil {
					last = ae
				}
				return nil, attempts, giveUp(true)
			}
			if errors.Is(ae.final, context.Canceled) {
				return nil, attempts, fmt.Errorf("%s: %w", op, ae.final)
			}
			return nil, attempts, ae.final
		case failRedirect:
			last = ae
			if route == toLeaseServer {
				c.noLeaseAt(ep)
			}
			target := c.resolveLeader(ctx, ae.notLeader)
			// Follow a redirect at once, but not around a loop of nodes that each name
			// another (stale knowledge during an election): that deserves a backoff.
			if target != nil && target != ep && redirects < len(c.Endpoints())+1 {
				c.setLeader(target)
				redirect = target
				redirects++
				c.opts.Logger.Debug("following redirect", "op", op, "from", ep.addr, "leader", ae.notLeader.GetLeaderId(), "to", target.addr)
				continue
			}
			c.forgetLeader(ep)
		case failRetry:
			last = ae
			c.forgetLeader(ep)
		}
		if refusedConnection(err) {
			refused[ep] = true
			// Nothing listens at any endpoint: waiting out the deadline would only hide that.
			if every := c.Endpoints(); len(refused) >= len(every) && allRefused(every, refused) {
				return nil, attempts, &UnavailableError{Op: op, Reason: last.reason, Attempts: attempts, Elapsed: time.Since(start), Last: last.cause,
					Cause: fmt.Sprintf("no node reachable: every endpoint refused the connection (%s)", strings.Join(every, ", "))}
			}
		} else {
			delete(refused, ep)
		}

		redirects = 0
		failures++
		if c.opts.MaxRetries < 0 || (c.opts.MaxRetries > 0 && failures > c.opts.MaxRetries) {
			return nil, attempts, giveUp(false)
		}
		timer := time.NewTimer(c.backoff.Delay(failures-1, nil))
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, attempts, c.doneError(ctx, op, giveUp)
		}
	}
}

// allRefused reports whether every address in addrs is the address of a refused endpoint.
func allRefused(addrs []string, refused map[*endpoint]bool) bool {
	for _, a := range addrs {
		found := false
		for ep := range refused {
			found = found || ep.addr == a
		}
		if !found {
			return false
		}
	}
	return true
}

// doneError is the error of an operation whose context ended while it waited.
func (c *Client) doneError(ctx context.Context, op string, giveUp func(bool) error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	return giveUp(true)
}
