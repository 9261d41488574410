package client

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/readmode"
)

func TestBackoffFullJitterStaysUnderTheCeiling(t *testing.T) {
	b := Backoff{Base: 10 * time.Millisecond, Max: 500 * time.Millisecond}
	wantCeilings := []time.Duration{10, 20, 40, 80, 160, 320, 500, 500, 500}
	rng := rand.New(rand.NewPCG(1, 2))
	for n, want := range wantCeilings {
		want *= time.Millisecond
		if got := b.Ceiling(n); got != want {
			t.Fatalf("Ceiling(%d) = %v, want %v", n, got, want)
		}
		const draws = 2000
		var sum time.Duration
		var lowHalf int
		for i := 0; i < draws; i++ {
			d := b.Delay(n, rng)
			if d < 0 || d >= want {
				t.Fatalf("Delay(%d) = %v, outside [0, %v)", n, d, want)
			}
			sum += d
			if d < want/2 {
				lowHalf++
			}
		}
		// Full jitter is uniform: the mean sits near half the ceiling, and about half the
		// draws fall in the lower half (a fixed or "equal jitter" backoff would fail these).
		if mean := sum / draws; mean < want*35/100 || mean > want*65/100 {
			t.Fatalf("retry %d: mean delay %v, want about %v", n, mean, want/2)
		}
		if lowHalf < draws*35/100 || lowHalf > draws*65/100 {
			t.Fatalf("retry %d: %d of %d draws below half the ceiling", n, lowHalf, draws)
		}
	}
	if got := b.Ceiling(1000); got != b.Max {
		t.Fatalf("Ceiling(1000) = %v, want the cap %v (no overflow)", got, b.Max)
	}
}

func TestSessionsCarryOneWriteEach(t *testing.T) {
	p := newSessionPool(42)
	s1, w1 := p.acquire()
	if w1 != (WriteSession{ClientID: 42, Sequence: 1}) {
		t.Fatalf("first write session = %+v, want client 42 seq 1", w1)
	}
	// A second write while the first is in flight must not share its client id: the node
	// would drop whichever of the two arrived with the lower sequence second.
	s2, w2 := p.acquire()
	if w2.ClientID == 42 || w2.ClientID == 0 || w2.Sequence != 1 {
		t.Fatalf("concurrent write session = %+v, want a fresh non-zero client id at seq 1", w2)
	}
	p.release(s1)
	s3, w3 := p.acquire()
	if w3 != (WriteSession{ClientID: 42, Sequence: 2}) {
		t.Fatalf("next write on the released session = %+v, want client 42 seq 2", w3)
	}
	p.release(s2)
	p.release(s3)

	// Under concurrency every in-flight write has its own client id, and each id's
	// sequences grow by one.
	var mu sync.Mutex
	inFlight := map[uint64]bool{}
	last := map[uint64]uint64{42: 2, w2.ClientID: 1}
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				s, ws := p.acquire()
				mu.Lock()
				if inFlight[ws.ClientID] {
					mu.Unlock()
					t.Errorf("client id %d has two writes in flight", ws.ClientID)
					return
				}
				if ws.Sequence != last[ws.ClientID]+1 {
					mu.Unlock()
					t.Errorf("client %d: seq %d after %d", ws.ClientID, ws.Sequence, last[ws.ClientID])
					return
				}
				inFlight[ws.ClientID], last[ws.ClientID] = true, ws.Sequence
				mu.Unlock()
				mu.Lock()
				inFlight[ws.ClientID] = false
				mu.Unlock()
				p.release(s)
			}
		}()
	}
	wg.Wait()
	if p.size() > 16+2 {
		t.Fatalf("%d sessions for at most 16 concurrent writers", p.size())
	}
}

func TestNewPicksARandomClientID(t *testing.T) {
	a, err := New(Options{Endpoints: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New(Options{Endpoints: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.ClientID() == 0 || a.ClientID() == b.ClientID() {
		t.Fatalf("client ids %d and %d: want distinct non-zero ids", a.ClientID(), b.ClientID())
	}
	c, err := New(Options{Endpoints: []string{"127.0.0.1:1"}, ClientID: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.ClientID() != 7 {
		t.Fatalf("ClientID() = %d, want the configured 7", c.ClientID())
	}
}

func TestOptionsValidation(t *testing.T) {
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "no endpoints") {
		t.Fatalf("New without endpoints: err = %v", err)
	}
	if _, err := New(Options{Endpoints: []string{" ", ""}}); err == nil {
		t.Fatal("New accepted blank endpoints")
	}
	if _, err := New(Options{Endpoints: []string{"a:1"}, NodeIDs: map[string]uint64{"a:1": 0}}); err == nil {
		t.Fatal("New accepted node id 0")
	}
	o, err := Options{Endpoints: []string{"a:1", "a:1", "b:2"}, RequestTimeout: 600 * time.Millisecond}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Endpoints) != 2 {
		t.Fatalf("endpoints %v: want duplicates removed", o.Endpoints)
	}
	if o.AttemptTimeout > o.RequestTimeout {
		t.Fatalf("attempt timeout %v above the request timeout %v", o.AttemptTimeout, o.RequestTimeout)
	}
}

// closedAddress returns a loopback address nothing listens on.
func closedAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// silentAddress returns a loopback address that accepts TCP connections (the kernel
// completes them into the backlog) but never answers: a node that hangs.
func silentAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// When every endpoint refuses the connection, nothing listens: the operation fails at
// once, saying so, instead of retrying until its deadline.
func TestFailsFastWhenEveryEndpointRefuses(t *testing.T) {
	a, b := closedAddress(t), closedAddress(t)
	c, err := New(Options{Endpoints: []string{a, b}, RequestTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, mode := range []readmode.Mode{readmode.Lease, readmode.Stale} {
		start := time.Now()
		_, err := c.Get(context.Background(), "k", mode)
		var unavailable *UnavailableError
		if !errors.As(err, &unavailable) || unavailable.Deadline || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("%s get: err = %v, want cluster unavailable before the deadline", mode, err)
		}
		if elapsed := time.Since(start); elapsed > 30*time.Second {
			t.Fatalf("%s get: gave up after %v with every endpoint refusing", mode, elapsed)
		}
		if unavailable.Attempts < 2 || !strings.Contains(err.Error(), "every endpoint refused the connection") ||
			!strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) {
			t.Fatalf("%s get: %v (%d attempts): want both endpoints tried and named", mode, err, unavailable.Attempts)
		}
	}
}

// With no node answering (connections accepted, nothing said), an operation keeps retrying
// and gives up at its deadline, not much before or after, with an error saying the cluster
// is unavailable and no node answered.
func TestDeadlineHonouredWhenNoNodeAnswers(t *testing.T) {
	const timeout = 800 * time.Millisecond
	c, err := New(Options{Endpoints: []string{silentAddress(t), silentAddress(t)}, RequestTimeout: timeout, AttemptTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, op := range []struct {
		name string
		call func() error
	}{
		{"set", func() error { _, err := c.Set(context.Background(), "k", []byte("v")); return err }},
		{"get", func() error { _, err := c.Get(context.Background(), "k", readmode.Lease); return err }},
		{"stale get", func() error { _, err := c.Get(context.Background(), "k", readmode.Stale); return err }},
	} {
		start := time.Now()
		err := op.call()
		elapsed := time.Since(start)
		var unavailable *UnavailableError
		if !errors.As(err, &unavailable) || !unavailable.Deadline {
			t.Fatalf("%s: err = %v, want an UnavailableError at the deadline", op.name, err)
		}
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: %v does not match ErrUnavailable and context.DeadlineExceeded", op.name, err)
		}
		if unavailable.Attempts < 2 {
			t.Fatalf("%s: %d attempts in %v: want retries", op.name, unavailable.Attempts, timeout)
		}
		if ratio := float64(elapsed) / float64(timeout); ratio < 0.95 || ratio > 3 {
			t.Fatalf("%s: gave up after %v, %.2f× the %v deadline", op.name, elapsed, ratio, timeout)
		}
		if !strings.Contains(err.Error(), "no node reachable") {
			t.Fatalf("%s: %v: want the cause", op.name, err)
		}
	}
}

func TestCallerDeadlineWinsWhenEarlier(t *testing.T) {
	c, err := New(Options{Endpoints: []string{closedAddress(t)}, RequestTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := c.Get(ctx, "k", readmode.Index); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want cluster unavailable", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the caller's 300ms deadline was not honoured")
	}
}

func TestCancelIsNotUnavailable(t *testing.T) {
	c, err := New(Options{Endpoints: []string{silentAddress(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	_, err = c.Set(ctx, "k", []byte("v"))
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want context.Canceled and not unavailable", err)
	}
}

func TestNegativeMaxRetriesTriesOnce(t *testing.T) {
	c, err := New(Options{Endpoints: []string{closedAddress(t)}, MaxRetries: -1, RequestTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Get(context.Background(), "k", readmode.Lease)
	var unavailable *UnavailableError
	if !errors.As(err, &unavailable) || unavailable.Attempts != 1 || unavailable.Deadline {
		t.Fatalf("err = %#v, want one attempt, given up without the deadline", err)
	}
}

func TestClosedClientRefusesCalls(t *testing.T) {
	c, err := New(Options{Endpoints: []string{closedAddress(t)}})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := c.Get(context.Background(), "k", readmode.Lease); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

func statusWith(t *testing.T, code codes.Code, msg string, details ...any) error {
	t.Helper()
	st := status.New(code, msg)
	for _, d := range details {
		var err error
		switch d := d.(type) {
		case *georaftv1.NotLeader:
			st, err = st.WithDetails(d)
		case *errdetails.ErrorInfo:
			st, err = st.WithDetails(d)
		case *errdetails.BadRequest:
			st, err = st.WithDetails(d)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return st.Err()
}

func TestClassifyNodeAnswers(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		err    error
		ctx    context.Context
		kind   failure
		reason string
		is     error
	}{
		{"redirect", statusWith(t, codes.FailedPrecondition, "not leader", &georaftv1.NotLeader{LeaderId: 2, LeaderAddress: "x:1", Term: 3}), live, failRedirect, "not leader", nil},
		{"no leader", statusWith(t, codes.Unavailable, "election", &errdetails.ErrorInfo{Reason: "NO_LEADER"}), live, failRetry, "NO_LEADER", nil},
		{"connection refused", status.Error(codes.Unavailable, "connection refused"), live, failRetry, "connection failed", nil},
		{"attempt timeout", status.Error(codes.DeadlineExceeded, "slow"), live, failRetry, "attempt timed out", nil},
		{"overall deadline", status.Error(codes.DeadlineExceeded, "slow"), ended, failFinal, "", context.Canceled},
		{"bad key", statusWith(t, codes.InvalidArgument, "key too long", &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "key", Description: "longer than 4096 bytes"}}}), live, failFinal, "", ErrInvalidArgument},
		{"stale sequence", status.Error(codes.FailedPrecondition, "stale sequence"), live, failFinal, "", ErrRefused},
		{"permission", status.Error(codes.PermissionDenied, "wrong cluster"), live, failFinal, "", ErrRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify("op", tt.err, tt.ctx)
			if got.kind != tt.kind {
				t.Fatalf("kind = %v, want %v", got.kind, tt.kind)
			}
			if tt.reason != "" && got.reason != tt.reason {
				t.Fatalf("reason = %q, want %q", got.reason, tt.reason)
			}
			if tt.is != nil && !errors.Is(got.final, tt.is) {
				t.Fatalf("final = %v, want it to match %v", got.final, tt.is)
			}
		})
	}
	got := classify("set", tests[5].err, live)
	var inv *InvalidArgumentError
	if !errors.As(got.final, &inv) || inv.Field != "key" || !strings.Contains(inv.Error(), "longer than 4096") {
		t.Fatalf("invalid argument = %#v, want field key with the description", got.final)
	}
}

func TestParseEndpoints(t *testing.T) {
	eps, err := ParseEndpoints(" 127.0.0.1:7201, 2=127.0.0.1:7202 ,,")
	if err != nil {
		t.Fatal(err)
	}
	want := []Endpoint{{Address: "127.0.0.1:7201"}, {Address: "127.0.0.1:7202", NodeID: 2}}
	if len(eps) != 2 || eps[0] != want[0] || eps[1] != want[1] {
		t.Fatalf("ParseEndpoints = %+v, want %+v", eps, want)
	}
	for _, bad := range []string{"nohost", "0=127.0.0.1:1", "x=127.0.0.1:1"} {
		if _, err := ParseEndpoints(bad); err == nil {
			t.Errorf("ParseEndpoints(%q) accepted", bad)
		}
	}
}

const nodeConfigTemplate = `cluster_id: georaft-test
node:
  id: ID
  region: r1
  data_dir: data/nodeID
listen:
  peer: 127.0.0.1:710ID
  client: 127.0.0.1:720ID
peers:
  - {id: 1, region: us-central1, peer_address: 127.0.0.1:7101, client_address: 127.0.0.1:7201}
  - {id: 2, region: us-east1, peer_address: 127.0.0.1:7102, client_address: 127.0.0.1:7202}
  - {id: 3, region: us-west1, peer_address: 127.0.0.1:7103, client_address: 127.0.0.1:7203}
timing:
  heartbeat_interval: 50ms
tls:
  enabled: true
  ca_file: certs/ca.pem
`

func TestEndpointsFromNodeConfigs(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for _, id := range []string{"1", "2", "3"} {
		p := filepath.Join(dir, "node"+id+".yaml")
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(nodeConfigTemplate, "ID", id)), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	cfg, err := EndpointsFromNodeConfigs(paths...)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClusterID != "georaft-test" || !cfg.TLS.Enabled || cfg.TLS.CAFile != "certs/ca.pem" {
		t.Fatalf("config = %+v", cfg)
	}
	if len(cfg.Endpoints) != 3 || cfg.Endpoints[1] != (Endpoint{Address: "127.0.0.1:7202", NodeID: 2, Region: "us-east1"}) {
		t.Fatalf("endpoints = %+v", cfg.Endpoints)
	}
	opts := OptionsFor(Options{}, cfg.Endpoints)
	if opts.NodeIDs["127.0.0.1:7203"] != 3 || len(opts.Endpoints) != 3 {
		t.Fatalf("options = %+v", opts)
	}

	conflicting := filepath.Join(dir, "other.yaml")
	os.WriteFile(conflicting, []byte(strings.ReplaceAll(strings.ReplaceAll(nodeConfigTemplate, "ID", "1"), "127.0.0.1:7202", "127.0.0.1:9999")), 0o644)
	if _, err := EndpointsFromNodeConfigs(paths[0], conflicting); err == nil || !strings.Contains(err.Error(), "peers[1].client_address") {
		t.Fatalf("conflicting files: err = %v, want it to name peers[1].client_address", err)
	}
	broken := filepath.Join(dir, "broken.yaml")
	os.WriteFile(broken, []byte("peers: [{id: 1}]\n"), 0o644)
	if _, err := EndpointsFromNodeConfigs(broken); err == nil || !strings.Contains(err.Error(), "client_address") || !strings.Contains(err.Error(), "broken.yaml") {
		t.Fatalf("missing client_address: err = %v", err)
	}
	if _, err := EndpointsFromNodeConfigs(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("a missing file was accepted")
	}
}

func TestRegionLinksRoundTrip(t *testing.T) {
	links := RegionLinks{
		"us-central1": {1: "127.0.0.1:27101", 2: "127.0.0.1:27102"},
		"us-east1":    {1: "127.0.0.1:27201", 2: "127.0.0.1:27202"},
	}
	var buf bytes.Buffer
	if err := links.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), "# connecting to node N from region R") {
		t.Fatalf("links file lacks its comment:\n%s", buf.String())
	}
	back, err := ParseRegionLinks(buf.Bytes())
	if err != nil {
		t.Fatalf("parse what Write wrote: %v\n%s", err, buf.String())
	}
	eps, err := back.Endpoints("us-east1")
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 2 || eps[0] != (Endpoint{Address: "127.0.0.1:27201", NodeID: 1}) || eps[1].NodeID != 2 {
		t.Fatalf("us-east1 endpoints = %+v", eps)
	}
	if _, err := back.Endpoints("mars"); err == nil || !strings.Contains(err.Error(), "us-central1") {
		t.Fatalf("unknown region: err = %v, want the known regions listed", err)
	}
	for name, doc := range map[string]string{
		"empty":       "",
		"no regions":  "regions: {}\n",
		"node 0":      "regions:\n  r: {0: \"a:1\"}\n",
		"no address":  "regions:\n  r: {1: \"\"}\n",
		"unknown key": "regoins:\n  r: {1: \"a:1\"}\n",
	} {
		if _, err := ParseRegionLinks([]byte(doc)); err == nil {
			t.Errorf("%s: accepted %q", name, doc)
		}
	}
}
