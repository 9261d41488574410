package console

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// The view of a five-region cluster: the leader, the quorum its commits wait on (the two
// fastest followers), each link's RTT as both ends measured it and its class, and the
// leader's lease found by its Status fields.
func TestViewOfFiveRegions(t *testing.T) {
	c, members := newFakeCluster(t, 1)
	con := newTestConsole(t, c, members, 4)
	v := fresh(t, con)
	if v.Leader == nil || v.Leader.ID != 1 || v.Leader.Region != "us-central1" {
		t.Fatalf("leader %+v, want node 1 in us-central1", v.Leader)
	}
	if v.Self == nil || v.Self.ID != 4 {
		t.Errorf("self %+v, want node 4", v.Self)
	}
	if v.Healthy != 5 || len(v.Problems) != 0 {
		t.Errorf("%d healthy, problems %q", v.Healthy, v.Problems)
	}
	// From us-central1 the fastest followers are us-east1 (32 ms) and us-west1 (36 ms).
	var quorum []uint64
	for _, n := range v.Quorum.Followers {
		quorum = append(quorum, n.ID)
	}
	if len(quorum) != 2 || quorum[0] != 2 || quorum[1] != 3 || v.Quorum.RTT != "36.0 ms" || v.Quorum.Majority != 3 {
		t.Errorf("quorum %v (RTT %s, majority %d), want nodes 2 and 3, 36.0 ms, 3", quorum, v.Quorum.RTT, v.Quorum.Majority)
	}
	if len(v.Links) != 10 {
		t.Fatalf("%d links, want 10", len(v.Links))
	}
	classes := map[string]string{}
	quorumLinks := 0
	for _, l := range v.Links {
		classes[l.A.Region+"-"+l.B.Region] = l.Class + " " + l.RTT
		if l.Quorum {
			quorumLinks++
		}
	}
	for pair, want := range map[string]string{
		"us-central1-us-east1":     "short 32.0 ms",
		"us-central1-europe-west1": "long 100 ms",
		"europe-west1-asia-east1":  "far 250 ms",
		"us-central1-asia-east1":   "long 155 ms",
		"us-east1-asia-east1":      "long 185 ms",
		"us-west1-asia-east1":      "long 118 ms",
		"us-east1-europe-west1":    "medium 90.0 ms",
		"us-central1-us-west1":     "short 36.0 ms",
		"us-east1-us-west1":        "medium 65.0 ms",
		"us-west1-europe-west1":    "long 135 ms",
	} {
		if classes[pair] != want {
			t.Errorf("link %s: %q, want %q", pair, classes[pair], want)
		}
	}
	if quorumLinks != 2 {
		t.Errorf("%d links marked as the quorum's, want 2", quorumLinks)
	}
	leases := v.Leader.Leases
	if len(leases) != 1 || leases[0].Name != "leader lease" || leases[0].State != "held" || !leases[0].Running ||
		leases[0].RemainingMs != 300 || leases[0].TotalMs != 350 || leases[0].Key != "1:lease" {
		t.Errorf("leader's leases %+v", leases)
	}
	for _, n := range v.Nodes {
		if n.ID != 1 && (len(n.Leases) != 1 || n.Leases[0].Running || n.Leases[0].State != "none") {
			t.Errorf("node %d's leases %+v, want one, not running", n.ID, n.Leases)
		}
	}
}

// A member that stops answering turns unreachable, with an event the console writes for it
// (it cannot say so itself), and one again when it answers; the members' own events are
// merged in time order, each fetched once.
func TestHealthAndEvents(t *testing.T) {
	c, members := newFakeCluster(t, 1)
	base := time.Now().Add(-time.Minute)
	c.update(func() {
		c.events[1] = []*georaftv1.NodeEvent{
			{Seq: 10, UnixNanos: base.Add(2 * time.Second).UnixNano(), Category: "election", Text: "term 3: became leader"},
			{Seq: 11, UnixNanos: base.Add(3 * time.Second).UnixNano(), Category: "lease", Text: "term 3: lease acquired, valid for 350 ms"},
		}
		c.events[2] = []*georaftv1.NodeEvent{
			{Seq: 7, UnixNanos: base.Add(1 * time.Second).UnixNano(), Category: "election", Text: "term 3: vote granted to node 1"},
		}
	})
	con := newTestConsole(t, c, members, 1)
	v := fresh(t, con)
	var texts []string
	for _, e := range v.Events {
		texts = append(texts, e.Text)
	}
	want := []string{"term 3: lease acquired, valid for 350 ms", "term 3: became leader", "term 3: vote granted to node 1"}
	if strings.Join(texts, "|") != strings.Join(want, "|") {
		t.Fatalf("events newest first %q, want %q", texts, want)
	}

	c.update(func() {
		c.down[5] = status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:2815: connect: connection refused"`)
	})
	v = fresh(t, con)
	n5 := v.Nodes[4]
	if n5.Health != healthUnreachable || n5.HealthText != "connection refused" || !n5.Stale || n5.Role != "unknown" {
		t.Errorf("node 5: health %q (%q), stale %v, role %q", n5.Health, n5.HealthText, n5.Stale, n5.Role)
	}
	if v.Events[0].Text != "node 5 (asia-east1) does not answer: connection refused" || !v.Events[0].Observed || v.Events[0].Category != "health" {
		t.Errorf("newest event %+v", v.Events[0])
	}
	if len(v.Problems) != 1 || !strings.Contains(v.Problems[0], "node 5 (asia-east1)") {
		t.Errorf("problems %q", v.Problems)
	}
	for _, l := range v.Links {
		if (l.A.ID == 5 || l.B.ID == 5) != (l.Class == "down") {
			t.Errorf("link %s: class %s", l.ID, l.Class)
		}
	}
	c.update(func() { delete(c.down, 5) })
	v = fresh(t, con)
	if v.Nodes[4].Health != healthOK || v.Events[0].Text != "node 5 (asia-east1) answers again" {
		t.Errorf("after recovery: %q, newest event %q", v.Nodes[4].Health, v.Events[0].Text)
	}
	count := 0
	for _, e := range v.Events {
		if e.Text == "term 3: became leader" {
			count++
		}
	}
	if count != 1 {
		t.Errorf("an event seen %d times", count)
	}
}

// Without a quorum of recent acknowledgements the console says commits are stuck.
func TestQuorumLost(t *testing.T) {
	c, members := newFakeCluster(t, 1)
	c.update(func() {
		for _, p := range c.st[1].Peers[1:] {
			p.LastAckAgeNanos = int64(5 * time.Second)
		}
	})
	v := fresh(t, newTestConsole(t, c, members, 1))
	if !v.Quorum.Lost || !strings.Contains(v.Quorum.Text, "1 of 4 voting followers") {
		t.Errorf("quorum %+v", v.Quorum)
	}
}

// Learners count in no quorum: two fresh learners do not make up for silent voters, and they
// are shown as learners.
func TestQuorumSkipsLearners(t *testing.T) {
	c, members := newFakeCluster(t, 1)
	c.update(func() {
		peers := c.st[1].Peers
		for _, p := range peers[:2] {
			p.LastAckAgeNanos = int64(5 * time.Second)
		}
		for _, p := range peers[2:] {
			p.Learner = true
			c.st[p.Id].Learner = true
		}
	})
	v := fresh(t, newTestConsole(t, c, members, 1))
	if !v.Quorum.Lost || v.Quorum.Voters != 3 || !strings.Contains(v.Quorum.Text, "0 of 2 voting followers") {
		t.Errorf("quorum %+v", v.Quorum)
	}
	learners := 0
	for _, n := range v.Nodes {
		if n.Role == "learner" {
			learners++
		}
	}
	if learners != 2 {
		t.Errorf("%d nodes shown as learners, want 2", learners)
	}
}

// Rates and quantiles come from the difference between snapshots within the window; an
// idle series shows its figures since start.
func TestLatencySeries(t *testing.T) {
	bounds := []float64{0.001, 0.0025, 0.005, 0.01}
	at := time.Now()
	older := histSnapshot{at: at.Add(-5 * time.Second), hists: []*georaftv1.LatencyHistogram{
		{Name: "read lease", UpperBoundsSeconds: bounds, CumulativeCounts: []uint64{100, 100, 100, 100}, Count: 100},
		{Name: "wal fsync", UpperBoundsSeconds: bounds, CumulativeCounts: []uint64{10, 20, 20, 20}, Count: 20},
	}}
	newer := histSnapshot{at: at, hists: []*georaftv1.LatencyHistogram{
		// 500 more, all between 2.5 and 5 ms.
		{Name: "read lease", UpperBoundsSeconds: bounds, CumulativeCounts: []uint64{100, 100, 600, 600}, Count: 600},
		{Name: "wal fsync", UpperBoundsSeconds: bounds, CumulativeCounts: []uint64{10, 20, 20, 20}, Count: 20},
	}}
	series, fsync := seriesOf([]histSnapshot{older, newer})
	if len(series) != 2 {
		t.Fatalf("series %+v", series)
	}
	lease := series[0]
	if !lease.Window || lease.Rate != "100/s" || lease.P50 != "3.75 ms" || lease.P99 != "4.98 ms" {
		t.Errorf("read lease %+v, want 100/s, p50 3.75 ms, p99 4.98 ms", lease)
	}
	if series[1].Window || fsync != "2.47 ms (since start)" {
		t.Errorf("idle fsync %+v, p99 %q", series[1], fsync)
	}
	if s, beyond := quantile(0.5, bounds, []uint64{0, 0, 0, 0}, 10); !beyond || s != 0.01 {
		t.Errorf("a quantile past the last bound: %v %v", s, beyond)
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct {
		s    float64
		want string
	}{{0.000273, "0.273 ms"}, {0.0362, "36.2 ms"}, {0.155, "155 ms"}, {1.25, "1.25 s"}, {0, "0 ms"}} {
		if got := fmtSeconds(tc.s); got != tc.want {
			t.Errorf("fmtSeconds(%v) = %q, want %q", tc.s, got, tc.want)
		}
	}
}

// The map: every region of configs/geo is placed where it is; regions the table does not
// know share a strip under the map; nodes of one region do not sit on each other; labels of
// the close US regions do not cover each other.
func TestPlacement(t *testing.T) {
	var nodes []nodeRegion
	for i, r := range fiveRegions {
		nodes = append(nodes, nodeRegion{uint64(i + 1), r})
	}
	p := placeNodes(nodes)
	if p.Strip {
		t.Error("a strip for known regions")
	}
	x, y := p.pos[5][0], p.pos[5][1]
	// Taiwan: 120.5°E, 24°N.
	if math.Abs(x-(120.52+180)/360*world.Width) > 0.01 || y < world.Height*0.35 || y > world.Height*0.5 {
		t.Errorf("asia-east1 at %v,%v", x, y)
	}
	apart := func(p placement, ids ...uint64) {
		t.Helper()
		for i, id := range ids {
			for _, other := range ids[i+1:] {
				if math.Hypot(p.pos[id][0]-p.pos[other][0], p.pos[id][1]-p.pos[other][1]) < 40 {
					t.Errorf("nodes %d and %d overlap: %v %v", id, other, p.pos[id], p.pos[other])
				}
			}
		}
	}
	// Some regions unknown: those nodes go side by side on the strip.
	p = placeNodes([]nodeRegion{{1, "us-east1"}, {2, "dc-a"}, {3, "dc-a"}, {4, "dc-b"}})
	if !p.Strip || p.Schematic || p.Height != world.Height+stripHeight {
		t.Fatalf("no strip for unknown regions: %+v", p)
	}
	for _, id := range []uint64{2, 3, 4} {
		if y := p.pos[id][1]; y < world.Height || y > p.Height {
			t.Errorf("node %d of an unknown region at y %v, off the strip", id, y)
		}
	}
	apart(p, 2, 3, 4)
	// No region known (a cluster on one machine): a ring, no map.
	p = placeNodes([]nodeRegion{{1, "local"}, {2, "local"}, {3, "local"}, {4, "local"}, {5, "local"}})
	if !p.Schematic || p.Strip {
		t.Fatalf("one machine's cluster: %+v", p)
	}
	apart(p, 1, 2, 3, 4, 5)
	// Three nodes in one known region sit around it.
	p = placeNodes([]nodeRegion{{1, "europe-west1"}, {2, "europe-west1"}, {3, "europe-west1"}})
	for i := uint64(1); i <= 3; i++ {
		for j := i + 1; j <= 3; j++ {
			if math.Hypot(p.pos[i][0]-p.pos[j][0], p.pos[i][1]-p.pos[j][1]) < 16 {
				t.Errorf("nodes %d and %d of one region overlap", i, j)
			}
		}
	}

	c, members := newFakeCluster(t, 1)
	v := fresh(t, newTestConsole(t, c, members, 1))
	type box struct{ x0, y0, x1, y1 float64 }
	var boxes []box
	for _, n := range v.Nodes {
		w := 6.2 * float64(len(n.Caption)+9)
		x0 := n.X + n.LabelX - w/2
		switch n.LabelAnchor {
		case "start":
			x0 = n.X + n.LabelX
		case "end":
			x0 = n.X + n.LabelX - w
		}
		boxes = append(boxes, box{x0, n.Y + n.LabelY - 10, x0 + w*0.8, n.Y + n.LabelY + 14})
	}
	for i := range boxes {
		for j := i + 1; j < len(boxes); j++ {
			a, b := boxes[i], boxes[j]
			if a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1 {
				t.Errorf("the labels of %s and %s overlap", v.Nodes[i].Region, v.Nodes[j].Region)
			}
		}
	}
}

// A link across the Pacific leaves one edge of the map and enters the other.
func TestLinkPathWrapsAroundThePacific(t *testing.T) {
	x1, y1 := world.project(41.26, -95.86)
	x2, y2 := world.project(24.05, 120.52)
	d, spots := linkPath([2]float64{x1, y1}, [2]float64{x2, y2}, true)
	if !strings.Contains(d, "L0 ") || !strings.Contains(d, "M1000 ") {
		t.Errorf("path %s does not cross the edge", d)
	}
	if len(spots) == 0 || spots[0][0] > x1 {
		t.Errorf("label spots %v: the first should be on the longer, western piece", spots)
	}
	x3, y3 := world.project(50.45, 3.82)
	d, _ = linkPath([2]float64{x1, y1}, [2]float64{x3, y3}, true)
	if !strings.Contains(d, "Q") {
		t.Errorf("us-central1 to europe-west1 is not an arc: %s", d)
	}
}

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// The page renders every part, with text alternatives and the security headers; the
// static assets are served from the binary.
func TestPage(t *testing.T) {
	c, members := newFakeCluster(t, 1)
	con := newTestConsole(t, c, members, 1)
	srv := httptest.NewServer(con)
	defer srv.Close()
	code, body := get(t, srv, "/ui")
	if code != http.StatusOK {
		t.Fatalf("GET /ui: %d\n%s", code, body)
	}
	// The committed bench result says how much faster lease reads were; the page repeats it.
	var bench struct {
		Speedup float64 `json:"lease_vs_log_speedup"`
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "results", "bench-latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &bench); err != nil || bench.Speedup <= 0 {
		t.Fatalf("results/bench-latest.json: speedup %v, err %v", bench.Speedup, err)
	}
	for _, want := range []string{
		`id="map-node-1"`, `class="node role-leader health-ok is-leader`, `id="node-row-5"`, `<desc id="map-desc">5 nodes, 5 healthy. The leader is node 1 (us-central1), term 3.`,
		`data-lease="1:lease"`, `id="transfer-target"`, `<option value="2">node 2 (us-east1)</option>`,
		`make bench`, fmt.Sprintf("lease reads are %.1fx faster", bench.Speedup), `<table class="data links">`, `Commits wait for the two fastest of 4 followers`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	resp, err := srv.Client().Get(srv.URL + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	for _, asset := range []string{"/ui/static/console.js", "/ui/static/console.css"} {
		if code, body := get(t, srv, asset); code != http.StatusOK || len(body) < 1000 {
			t.Errorf("GET %s: %d, %d bytes", asset, code, len(body))
		}
	}
	if code, _ := get(t, srv, "/ui/nothing"); code != http.StatusNotFound {
		t.Errorf("GET /ui/nothing: %d", code)
	}
}

// With no results directory the benchmarks section says so; with one lacking the files,
// it says how to make them.
func TestResultsAbsent(t *testing.T) {
	if r := (&resultsCache{}).get(); r.Bench != nil || r.Dir != "" {
		t.Errorf("no dir: %+v", r)
	}
	r := (&resultsCache{dir: t.TempDir()}).get()
	if r.Bench != nil || r.Compare != nil || r.BenchErr != "" {
		t.Errorf("empty dir: %+v", r)
	}
	r = (&resultsCache{dir: repoRoot() + "/results"}).get()
	if r.Bench == nil || r.Compare == nil || !strings.Contains(string(r.BenchChart), "<svg") || !strings.Contains(string(r.CompareChart), "lease / linearizable") {
		t.Errorf("the committed results were not drawn: %v %v", r.BenchErr, r.CompareErr)
	}
}

// The stream sends countdowns after every poll and the fragments that changed once a
// second; a page's own rendering is not sent again.
func TestStream(t *testing.T) {
	c, members := newFakeCluster(t, 1)
	con := newTestConsole(t, c, members, 1)
	srv := httptest.NewServer(con)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/ui/stream", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var event string
	gotLeases, gotView := false, false
	for sc.Scan() && !(gotLeases && gotView) {
		line := sc.Text()
		if e, ok := strings.CutPrefix(line, "event: "); ok {
			event = e
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		switch event {
		case "leases":
			var l map[string]struct {
				State     string  `json:"state"`
				Remaining float64 `json:"remaining_ms"`
				Running   bool    `json:"running"`
			}
			if err := json.Unmarshal([]byte(data), &l); err != nil {
				t.Fatal(err)
			}
			if l["1:lease"].State == "held" && l["1:lease"].Running && l["1:lease"].Remaining == 300 {
				gotLeases = true
			}
		case "view":
			var v struct {
				Fragments map[string]string `json:"fragments"`
			}
			if err := json.Unmarshal([]byte(data), &v); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(v.Fragments["map-overlay"], `id="map-node-5"`) && strings.Contains(v.Fragments["summary"], "node 1 · us-central1") {
				gotView = true
			}
		}
	}
	if !gotLeases || !gotView {
		t.Errorf("stream: leases %v, view %v (%v)", gotLeases, gotView, sc.Err())
	}
}

// The transfer: a POST shows the confirmation; only its token (bound to the target, the
// leader and a deadline) makes the leader hand over, and the console then says so.
// Requests from another site, bad tokens and a leader that moved meanwhile are refused.
func TestTransfer(t *testing.T) {
	c, members := newFakeCluster(t, 1)
	con := newTestConsole(t, c, members, 3)
	srv := httptest.NewServer(con)
	defer srv.Close()
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	post := func(form url.Values, header map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/ui/transfer", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	resp, body := post(url.Values{"target": {"2"}}, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Transfer leadership?") || !strings.Contains(body, "From <strong>node 1 (us-central1)</strong>") {
		t.Fatalf("confirmation: %d\n%s", resp.StatusCode, body)
	}
	if len(c.transfers) != 0 {
		t.Fatal("a transfer before the confirmation")
	}
	confirmation := func(body string) url.Values {
		t.Helper()
		form := url.Values{"confirm": {"yes"}}
		for _, name := range []string{"target", "leader", "expires", "token"} {
			m := regexp.MustCompile(`name="` + name + `" value="([^"]*)"`).FindStringSubmatch(body)
			if m == nil {
				t.Fatalf("the confirmation has no %s", name)
			}
			form.Set(name, m[1])
		}
		return form
	}
	form := confirmation(body)
	_, body = post(url.Values{"target": {"3"}}, nil)
	toWest := confirmation(body)

	if resp, _ := post(form, map[string]string{"Sec-Fetch-Site": "cross-site"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-site confirmation: %d", resp.StatusCode)
	}
	if resp, _ := post(form, map[string]string{"Origin": "http://evil.example"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a confirmation from another origin: %d", resp.StatusCode)
	}
	forged := url.Values{}
	for k, v := range form {
		forged[k] = v
	}
	forged.Set("target", "5")
	if resp, _ := post(forged, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a token for node 2 used for node 5: %d", resp.StatusCode)
	}
	if len(c.transfers) != 0 {
		t.Fatalf("refused requests transferred: %v", c.transfers)
	}

	resp, _ = post(form, map[string]string{"Origin": srv.URL, "Sec-Fetch-Site": "same-origin"})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirmed transfer: %d", resp.StatusCode)
	}
	if len(c.transfers) != 1 || c.transfers[0] != 2 {
		t.Fatalf("transfers %v, want [2]", c.transfers)
	}
	_, page := get(t, srv, resp.Header.Get("Location"))
	if !strings.Contains(page, "Leadership moved to node 2 (us-east1), term 4.") {
		t.Errorf("the console does not say the transfer happened")
	}
	// A confirmation shown while node 1 led: the leader moved since, so it is asked anew.
	fresh(t, con)
	_, body = post(toWest, nil)
	if !strings.Contains(body, "Leadership moved to node 2 (us-east1) since you were asked") || len(c.transfers) != 1 {
		t.Errorf("a stale confirmation: transfers %v\n%s", c.transfers, body)
	}
	if resp, _ := post(url.Values{"target": {"9"}}, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a transfer to a stranger: %d", resp.StatusCode)
	}
	if code, _ := get(t, srv, "/ui/transfer"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /ui/transfer: %d", code)
	}
}

// With RequireTLS, plain HTTP is sent to HTTPS on the same address and posts are refused.
func TestRequireTLS(t *testing.T) {
	c, members := newFakeCluster(t, 1)
	con, err := New(Config{Self: 1, Local: fakeNode{c, 1}, Members: members, Remote: c.remote, RequireTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer con.Close()
	srv := httptest.NewServer(con)
	defer srv.Close()
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Get(srv.URL + "/ui?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://"+host+"/ui?x=1" {
		t.Errorf("plain GET: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = client.PostForm(srv.URL+"/ui/transfer", url.Values{"target": {"2"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("plain POST: %d", resp.StatusCode)
	}
}

// One listener serves plain HTTP and TLS; a connection that sends nothing does not hold up
// the others.
func TestSplitTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			io.WriteString(w, "tls")
			return
		}
		io.WriteString(w, "plain")
	}))
	srv.StartTLS() // for its certificate and a client that trusts it
	tlsCfg := srv.TLS
	addr := srv.Listener.Addr().String()
	srv.Close()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s was taken meanwhile: %v", addr, err)
	}
	split := SplitTLS(lis, tlsCfg)
	hs := &http.Server{Handler: srv.Config.Handler}
	go hs.Serve(split)
	defer hs.Close()

	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	plain := &http.Client{Timeout: 5 * time.Second}
	for _, tc := range []struct {
		client *http.Client
		url    string
		want   string
	}{{plain, "http://" + addr + "/", "plain"}, {srv.Client(), "https://" + addr + "/", "tls"}} {
		resp, err := tc.client.Get(tc.url)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != tc.want {
			t.Errorf("GET %s: %q, want %q", tc.url, body, tc.want)
		}
	}
	split.Close()
	if _, err := split.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
}
