package node_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/tlsutil"
)

// Status carries what the console shows: the timing it is judged against, the node's recent
// story (only what came after a number when asked) and its latency histograms.
func TestStatusActivity(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	c.waitLeader(10 * time.Second)
	c.mustSet("k", "v")
	if _, err := c.get(0, "k", georaftv1.ReadMode_READ_MODE_LEASE); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	plain, err := c.clients[0].Status(ctx, &georaftv1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plain.Events) != 0 || len(plain.Latencies) != 0 || plain.LeaseDurationNanos != int64(400*time.Millisecond) ||
		plain.MaxStalenessNanos != int64(2*time.Second) {
		t.Errorf("a plain status: %d events, %d histograms, lease %d, staleness %d",
			len(plain.Events), len(plain.Latencies), plain.LeaseDurationNanos, plain.MaxStalenessNanos)
	}
	st, err := c.clients[0].Status(ctx, &georaftv1.StatusRequest{IncludeActivity: true})
	if err != nil {
		t.Fatal(err)
	}
	var leaderAt uint64
	for _, e := range st.Events {
		if e.Category == "election" && strings.HasSuffix(e.Text, ": became leader") {
			leaderAt = e.Seq
		}
		if strings.Contains(e.Text, "client request") || strings.Contains(e.Text, "committed up to") {
			t.Errorf("client traffic among the events: %q", e.Text)
		}
	}
	if leaderAt == 0 {
		t.Fatalf("no election among the events: %v", st.Events)
	}
	later, err := c.clients[0].Status(ctx, &georaftv1.StatusRequest{IncludeActivity: true, EventsAfter: leaderAt})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range later.Events {
		if e.Seq <= leaderAt {
			t.Errorf("event %d handed out again after %d", e.Seq, leaderAt)
		}
	}
	counts := map[string]uint64{}
	for _, h := range st.Latencies {
		counts[h.Name] = h.Count
		if len(h.UpperBoundsSeconds) != len(h.CumulativeCounts) || len(h.UpperBoundsSeconds) == 0 {
			t.Errorf("histogram %s: %d bounds, %d counts", h.Name, len(h.UpperBoundsSeconds), len(h.CumulativeCounts))
		}
	}
	if counts["write set"] < 1 || counts["read lease"] != 1 || counts["wal fsync"] < 1 {
		t.Errorf("histogram counts %v", counts)
	}
}

// With TLS on, the metrics listener still answers Prometheus in plain HTTP, sends the
// console to HTTPS on the same port, and serves it there to the clients the client port
// takes; the console reaches the other members over TLS with the node's certificate and
// shows the whole cluster. A certificate of another CA gets nowhere.
func TestConsoleOverTLS(t *testing.T) {
	files := generateTLSFiles(t, 3)
	tune, metrics := withMetricsListeners(t, 3, func(cfg *config.Config) {
		f := files.Nodes[cfg.Node.ID]
		cfg.TLS = config.TLSConfig{Enabled: true, CAFile: files.CA.Cert, CertFile: f.Cert, KeyFile: f.Key}
	})
	c := newTestCluster(t, 3, tune)
	if code, body := waitPlain(t, metrics[0], "/metrics"); code != http.StatusOK || !strings.Contains(body, "georaft_term") {
		t.Fatalf("plain /metrics: %d", code)
	}
	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := plain.Get("http://" + metrics[0] + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://"+metrics[0]+"/ui" {
		t.Errorf("plain /ui: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	admin := httpsClient(clientTLS(t, files.CA.Cert, files.Clients[tlsClientName], tlsutil.NodeServerName(1)))
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body, err := fetch(admin, "https://"+metrics[0]+"/ui")
		if err == nil && code == http.StatusOK && strings.Count(body, `health-pill health-ok`) == 3 && strings.Contains(body, "is-leader") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the console over TLS never showed three healthy nodes and a leader: %d %v\n%.2000s", code, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Without a client certificate, the console answers exactly when the client port does.
	caOnly := clientTLS(t, files.CA.Cert, tlsutil.Files{}, tlsutil.NodeServerName(1))
	_, _, consoleErr := fetch(httpsClient(caOnly), "https://"+metrics[0]+"/ui")
	clientConn, err := grpc.NewClient(c.cfgs[0].Listen.Client, grpc.WithTransportCredentials(credentials.NewTLS(caOnly)))
	if err != nil {
		t.Fatal(err)
	}
	defer clientConn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, portErr := georaftv1.NewKVServiceClient(clientConn).Status(ctx, &georaftv1.StatusRequest{})
	if (consoleErr == nil) != (portErr == nil) {
		t.Errorf("without a client certificate the console says %v and the client port %v", consoleErr, portErr)
	}

	stranger := generateTLSFiles(t, 1)
	foreign := clientTLS(t, files.CA.Cert, stranger.Clients[tlsClientName], tlsutil.NodeServerName(1))
	if code, _, err := fetch(httpsClient(foreign), "https://"+metrics[0]+"/ui"); err == nil {
		t.Errorf("a certificate of another CA was served the console: %d", code)
	}
}

// console.enabled false leaves the metrics listener as it was.
func TestConsoleDisabled(t *testing.T) {
	tune, metrics := withMetricsListeners(t, 1, func(cfg *config.Config) { cfg.Console.Enabled = false })
	newTestCluster(t, 1, tune)
	if code, _ := waitPlain(t, metrics[0], "/ui"); code != http.StatusNotFound {
		t.Errorf("/ui with the console off: %d", code)
	}
}

func waitPlain(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, err := httpStatus(t, addr, path)
		if err == nil {
			return code, body
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s%s: %v", addr, path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpsClient(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func fetch(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}
