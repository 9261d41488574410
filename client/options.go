package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Options configures a Client. Only Endpoints is required.
type Options struct {
	// Endpoints are client addresses (host:port) of some or all nodes, or of proxies in
	// front of them. One is enough to discover the rest through redirects.
	Endpoints []string
	// NodeIDs says, when known in advance, which node an endpoint reaches (from node config
	// files, or a region's links file in the geo lab). Endpoints missing here are identified
	// with a Status call when a redirect needs it. Redirects to a known id go to that
	// node's endpoint in this list, so traffic through proxies stays on the proxies.
	NodeIDs map[string]uint64
	// Region is where the client runs: stale reads go to a node of this region when one
	// is among the endpoints, else to the nearest node by measured round trip.
	Region string
	// ReadEndpoint, when set, takes lease and stale reads first whatever the measured round
	// trips: a harness that spreads reads over the nodes sets it. A lease read it cannot
	// answer is sent to the leader as usual.
	ReadEndpoint string

	// DialTimeout bounds establishing a connection (default 2s).
	DialTimeout time.Duration
	// RequestTimeout is the overall deadline of one operation, retries included (default
	// 5s), applied when the caller's context has no earlier deadline.
	RequestTimeout time.Duration
	// AttemptTimeout bounds a single RPC so that a hung link costs one attempt and not the
	// whole deadline (default RequestTimeout/2, at least 1s and at most RequestTimeout).
	AttemptTimeout time.Duration
	// MaxRetries caps the retries of one operation; 0 retries until the deadline, a
	// negative value never retries.
	MaxRetries int
	// BackoffBase and BackoffMax shape the exponential backoff with full jitter between
	// retries (defaults 10ms and 500ms).
	BackoffBase time.Duration
	BackoffMax  time.Duration

	// TLS, when set, secures every connection; nil means plaintext.
	TLS *tls.Config
	// Logger receives retries and redirects at debug level (default: discard).
	Logger *slog.Logger
	// ClientID is the write session id of this client; 0 picks a random non-zero one.
	ClientID uint64
}

const (
	defaultDialTimeout    = 2 * time.Second
	defaultRequestTimeout = 5 * time.Second
	defaultBackoffBase    = 10 * time.Millisecond
	defaultBackoffMax     = 500 * time.Millisecond
)

func (o Options) withDefaults() (Options, error) {
	var endpoints []string
	seen := map[string]bool{}
	for _, e := range o.Endpoints {
		e = strings.TrimSpace(e)
		if e == "" || seen[e] {
			continue
		}
		seen[e] = true
		endpoints = append(endpoints, e)
	}
	if len(endpoints) == 0 {
		return o, errors.New("client: no endpoints (use --endpoints, GEORAFT_ENDPOINTS or --config)")
	}
	o.Endpoints = endpoints
	for addr, id := range o.NodeIDs {
		if id == 0 {
			return o, fmt.Errorf("client: endpoint %s: node id 0 is not a valid node id", addr)
		}
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = defaultDialTimeout
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = defaultRequestTimeout
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = max(o.RequestTimeout/2, time.Second)
	}
	o.AttemptTimeout = min(o.AttemptTimeout, o.RequestTimeout)
	if o.BackoffBase <= 0 {
		o.BackoffBase = defaultBackoffBase
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = defaultBackoffMax
	}
	if o.BackoffMax < o.BackoffBase {
		o.BackoffMax = o.BackoffBase
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
