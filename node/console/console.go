// Package console is georaftd's web console: a live picture of the whole cluster at /ui on
// the metrics listener. A map of the regions with each node's role, term, health and leases
// (live countdowns), the links between regions coloured by their measured round trip and
// the quorum the leader's commits wait on, per-node replication and latency, the merged
// event feed of every node, the latest benchmark results beside the physics prediction,
// and one action, a leadership transfer behind a confirmation.
//
// Any node shows the whole cluster: the console asks its own node and every other member
// for Status (over their client ports, with the node's TLS), while someone is looking,
// a few times a second. It never runs on the node's loop: Status is the one call it makes,
// the same any client makes. Pages are rendered on the server with html/template; a small
// script of plain JavaScript (no build step, nothing fetched from elsewhere) swaps in the
// fragments a server-sent event stream carries and animates the countdowns between them.
// docs/console.md describes what each part shows and where its numbers come from.
package console

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/tlsutil"
)

//go:embed assets/console.html assets/static
var assets embed.FS

// Config is what the console needs from georaftd.
type Config struct {
	// Self is the node serving the console; Local answers for it in process.
	Self      uint64
	ClusterID string
	Local     Node
	// Members are the cluster's members as the node's configuration lists them; members
	// the nodes report beyond these are added as they appear.
	Members []Member
	// DialOptions are how the console reaches member id's client port (its TLS).
	DialOptions func(id uint64) []grpc.DialOption
	// Remote, when set, replaces dialling: tests hand the console members of their own.
	Remote func(Member) (Node, error)
	// ResultsDir holds bench-latest.json and compare-latest.json ("" shows none).
	ResultsDir string
	// RequireTLS serves the console only over TLS; plain HTTP is sent to HTTPS on the
	// same port (see SplitTLS).
	RequireTLS bool
	// Poll is how often members are asked for their status while someone watches
	// (default 250ms: a lease countdown refreshed well within a lease).
	Poll   time.Duration
	Logger *slog.Logger
}

// Console serves /ui.
type Console struct {
	cfg     Config
	log     *slog.Logger
	g       *gatherer
	results *resultsCache
	tmpl    *template.Template
	static  http.Handler
	secret  []byte

	mu       sync.Mutex
	rendered *rendered
	// recent are the last few renderings by seq, so a stream knows what its page was
	// rendered with and sends only what changed since.
	recent  []*rendered
	notices map[string]notice
}

type notice struct {
	OK   bool
	Text string
	at   time.Time
}

// New makes a console. Nothing runs until the first request.
func New(cfg Config) (*Console, error) {
	if cfg.Local == nil {
		return nil, fmt.Errorf("console: no local node")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	tmpl, err := template.New("console").Funcs(templateFuncs).ParseFS(assets, "assets/console.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	static, err := fs.Sub(assets, "assets/static")
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	return &Console{
		cfg: cfg, log: cfg.Logger.With("component", "console"), g: newGatherer(cfg),
		results: &resultsCache{dir: cfg.ResultsDir}, tmpl: tmpl,
		static: http.StripPrefix("/ui/static/", http.FileServerFS(static)), secret: secret,
		notices: map[string]notice{},
	}, nil
}

// Close stops polling and closes the connections to the members.
func (c *Console) Close() { c.g.close() }

// Prefix is where the console is mounted; it answers every path under it.
const Prefix = "/ui"

// ServeHTTP routes /ui, /ui/stream, /ui/transfer and /ui/static/.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin: the browser still says where a form was posted from (Origin), to this
	// console only.
	h.Set("Referrer-Policy", "same-origin")
	if c.cfg.RequireTLS && r.TLS == nil {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "the console is served over HTTPS only (tls.enabled)", http.StatusForbidden)
			return
		}
		http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusPermanentRedirect)
		return
	}
	switch p := r.URL.Path; {
	case p == Prefix || p == Prefix+"/":
		c.page(w, r)
	case p == Prefix+"/stream":
		c.stream(w, r)
	case p == Prefix+"/transfer":
		c.transfer(w, r)
	case strings.HasPrefix(p, Prefix+"/static/"):
		h.Set("Cache-Control", "no-cache")
		c.static.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// rendered is a view and its fragments, shared by every stream until the next poll.
type rendered struct {
	view     *View
	frags    map[string]string
	leases   []byte
	announce string
	seq      uint64
}

// fragmentNames are the parts of the page the stream replaces, by element id.
var fragmentNames = []string{"summary", "map-overlay", "nodes-table", "links-table", "latency-table", "event-list", "actions"}

// current renders the view now, or returns the one rendered less than half a poll ago.
func (c *Console) current() (*rendered, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rendered != nil && time.Since(c.rendered.view.At) < c.cfg.Poll/2 {
		return c.rendered, nil
	}
	v := c.g.view()
	r := &rendered{view: v, frags: map[string]string{}}
	for _, name := range fragmentNames {
		var buf bytes.Buffer
		if err := c.tmpl.ExecuteTemplate(&buf, name, v); err != nil {
			return nil, fmt.Errorf("console: render %s: %w", name, err)
		}
		r.frags[name] = buf.String()
	}
	r.leases = leasesJSON(v)
	if c.rendered != nil {
		r.seq = c.rendered.seq + 1
		r.announce = announce(c.rendered.view, v)
	}
	c.rendered = r
	c.recent = append(c.recent, r)
	if len(c.recent) > 16 {
		c.recent = c.recent[1:]
	}
	return r, nil
}

// fresh is the view once every member has answered at least once (or 3 s passed): the first
// page of a console nobody was watching shows the cluster, not an empty map.
func (c *Console) fresh(r *http.Request) (*rendered, error) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	c.g.refresh(ctx)
	cancel()
	return c.current()
}

// renderedSeq is the rendering numbered seq, if it is recent.
func (c *Console) renderedSeq(seq uint64) *rendered {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.recent {
		if r.seq == seq {
			return r
		}
	}
	return nil
}

// announce says what changed for a screen reader: the leader, a node's health.
func announce(prev, cur *View) string {
	var parts []string
	switch {
	case cur.Leader != nil && (prev.Leader == nil || prev.Leader.ID != cur.Leader.ID):
		parts = append(parts, fmt.Sprintf("Leader is now %s, term %d.", cur.Leader.Name(), cur.Leader.Term))
	case cur.Leader == nil && prev.Leader != nil:
		parts = append(parts, "No leader.")
	}
	was := map[uint64]string{}
	for _, n := range prev.Nodes {
		was[n.ID] = n.Health
	}
	for _, n := range cur.Nodes {
		if h, ok := was[n.ID]; ok && h != n.Health {
			parts = append(parts, fmt.Sprintf("%s: %s.", n.Name(), healthWords(n.Health)))
		}
	}
	return strings.Join(parts, " ")
}

func leasesJSON(v *View) []byte {
	type lease struct {
		State     string  `json:"state"`
		Remaining float64 `json:"remaining_ms"`
		Total     float64 `json:"total_ms"`
		Running   bool    `json:"running"`
	}
	out := map[string]lease{}
	for _, n := range v.Nodes {
		for _, l := range n.Leases {
			out[l.Key] = lease{l.State, l.RemainingMs, l.TotalMs, l.Running}
		}
	}
	data, _ := json.Marshal(out)
	return data
}

type pageData struct {
	*View
	Frags      map[string]template.HTML
	Results    *Results
	Notice     *notice
	Land       string
	Categories []string
	Classes    []linkClassDef
	// Seq numbers the rendering the page shows; its stream starts from there.
	Seq uint64
}

// categories are the event feed's filters, in the order shown.
var categories = []string{"election", "lease", "transfer", "membership", "health", "failure", "snapshot", "replication", "lifecycle", "other"}

func (c *Console) page(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	rd, err := c.fresh(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	data := pageData{View: rd.view, Frags: map[string]template.HTML{}, Results: c.results.get(), Land: world.Land,
		Categories: categories, Classes: linkClasses, Seq: rd.seq}
	for k, v := range rd.frags {
		data.Frags[k] = template.HTML(v)
	}
	if id := r.URL.Query().Get("notice"); id != "" {
		c.mu.Lock()
		if n, ok := c.notices[id]; ok {
			data.Notice = &n
		}
		c.mu.Unlock()
	}
	c.render(w, "page", data)
}

func (c *Console) render(w http.ResponseWriter, name string, data any) {
	var buf bytes.Buffer
	if err := c.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		c.log.Error("render", "template", name, "err", err)
		http.Error(w, "console: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// stream sends, after every poll, the countdowns ("leases"), and every activityEvery polls
// the fragments that changed since this stream last sent them ("view").
func (c *Console) stream(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	ch := c.g.subscribe()
	defer c.g.unsubscribe(ch)
	sent := map[string]string{}
	var lastSeq uint64
	if seq, err := strconv.ParseUint(r.URL.Query().Get("seq"), 10, 64); err == nil {
		if page := c.renderedSeq(seq); page != nil {
			for k, v := range page.frags {
				sent[k] = v
			}
			lastSeq = seq
		}
	}
	n := 0
	fmt.Fprint(w, "retry: 2000\n\n")
	flusher.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.g.done:
			return
		case <-ch:
		}
		rd, err := c.current()
		if err != nil {
			return
		}
		fmt.Fprintf(w, "event: leases\ndata: %s\n\n", rd.leases)
		if n%activityEvery == 0 {
			msg := struct {
				Fragments map[string]string `json:"fragments"`
				Announce  string            `json:"announce,omitempty"`
				At        int64             `json:"at"`
			}{Fragments: map[string]string{}, At: rd.view.At.UnixMilli()}
			for k, v := range rd.frags {
				if sent[k] != v {
					msg.Fragments[k], sent[k] = v, v
				}
			}
			if rd.seq != lastSeq {
				msg.Announce, lastSeq = rd.announce, rd.seq
			}
			data, _ := json.Marshal(msg)
			fmt.Fprintf(w, "event: view\ndata: %s\n\n", data)
		}
		n++
		flusher.Flush()
	}
}

// transferTimeout bounds a transfer asked from the console.
const transferTimeout = 10 * time.Second

// transfer is the one action. A POST with a target renders the confirmation; the POST of
// the confirmation, carrying a token bound to that target, that leader and a deadline,
// asks the leader to hand over and comes back to the console with the outcome.
func (c *Console) transfer(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if !sameOrigin(r) {
		http.Error(w, "cross-site request refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	target, err := strconv.ParseUint(r.PostForm.Get("target"), 10, 64)
	if err != nil || target == 0 {
		http.Error(w, "target: want a node id", http.StatusBadRequest)
		return
	}
	rd, err := c.fresh(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	v := rd.view
	var to *NodeView
	for _, n := range v.Nodes {
		if n.ID == target {
			to = n
		}
	}
	switch {
	case to == nil:
		http.Error(w, fmt.Sprintf("target: node %d is not a member", target), http.StatusBadRequest)
		return
	case v.Leader == nil:
		c.finish(w, r, false, "No leader is known now, so there is nothing to transfer; try again once one is elected.")
		return
	case v.Leader.ID == target:
		c.finish(w, r, true, fmt.Sprintf("%s already leads (term %d).", to.Name(), v.Leader.Term))
		return
	}
	data := confirmData{View: v, From: v.Leader, To: to}
	for _, l := range v.Links {
		if (l.A == v.Leader && l.B == to) || (l.B == v.Leader && l.A == to) {
			data.RTT = l.RTT
		}
	}
	if r.PostForm.Get("confirm") != "yes" {
		c.confirm(w, data)
		return
	}
	expires, _ := strconv.ParseInt(r.PostForm.Get("expires"), 10, 64)
	leader, _ := strconv.ParseUint(r.PostForm.Get("leader"), 10, 64)
	switch {
	case !hmac.Equal([]byte(r.PostForm.Get("token")), []byte(c.token(target, leader, expires))):
		http.Error(w, "the confirmation is not valid; start again from the console", http.StatusForbidden)
		return
	case time.Now().Unix() > expires:
		data.Note = "That confirmation had expired. Confirm again if you still want this."
		c.confirm(w, data)
		return
	case leader != v.Leader.ID:
		data.Note = fmt.Sprintf("Leadership moved to %s since you were asked. Confirm again if you still want this.", v.Leader.Name())
		c.confirm(w, data)
		return
	}
	c.log.Info("leadership transfer asked from the console", "from", v.Leader.ID, "to", target,
		"remote", r.RemoteAddr, "client", clientName(r))
	c.g.mu.Lock()
	m := c.g.members[v.Leader.ID]
	node, err := c.g.nodeFor(m)
	c.g.mu.Unlock()
	if err != nil {
		c.finish(w, r, false, fmt.Sprintf("Could not reach the leader, %s: %v", v.Leader.Name(), err))
		return
	}
	tctx, cancel := context.WithTimeout(r.Context(), transferTimeout)
	defer cancel()
	resp, err := node.TransferLeader(tctx, &georaftv1.TransferLeaderRequest{TargetId: target})
	if err != nil {
		c.finish(w, r, false, fmt.Sprintf("The transfer to %s failed: %s", to.Name(), grpcMessage(err)))
		return
	}
	text := fmt.Sprintf("Leadership moved to node %d, term %d.", resp.GetLeaderId(), resp.GetTerm())
	if resp.GetLeaderId() == target {
		text = fmt.Sprintf("Leadership moved to %s, term %d.", to.Name(), resp.GetTerm())
	}
	c.finish(w, r, resp.GetLeaderId() == target, text)
}

type confirmData struct {
	*View
	From, To *NodeView
	RTT      string
	Note     string
	Token    string
	Expires  int64
}

// confirmFor is how long a confirmation page stays valid.
const confirmFor = 5 * time.Minute

func (c *Console) confirm(w http.ResponseWriter, d confirmData) {
	d.Expires = time.Now().Add(confirmFor).Unix()
	d.Token = c.token(d.To.ID, d.From.ID, d.Expires)
	c.render(w, "confirm", d)
}

// token binds a confirmation to its target, the leader it was shown with and a deadline,
// signed with a key that lives as long as the process: another site cannot make one.
func (c *Console) token(target, leader uint64, expires int64) string {
	mac := hmac.New(sha256.New, c.secret)
	fmt.Fprintf(mac, "transfer|%d|%d|%d", target, leader, expires)
	return hex.EncodeToString(mac.Sum(nil))
}

// finish records the outcome and sends the browser back to the console, which shows it.
func (c *Console) finish(w http.ResponseWriter, r *http.Request, ok bool, text string) {
	id := make([]byte, 8)
	rand.Read(id)
	key := hex.EncodeToString(id)
	c.mu.Lock()
	for k, n := range c.notices {
		if time.Since(n.at) > 10*time.Minute || len(c.notices) > 64 {
			delete(c.notices, k)
		}
	}
	c.notices[key] = notice{OK: ok, Text: text, at: time.Now()}
	c.mu.Unlock()
	http.Redirect(w, r, Prefix+"?notice="+url.QueryEscape(key)+"#actions", http.StatusSeeOther)
}

// sameOrigin refuses requests another site's page makes the browser send. It is a second
// line: the transfer itself needs the confirmation's token, which another site cannot read.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// clientName is who presented a certificate, for the log.
func clientName(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	if kind, id, name, err := tlsutil.CertIdentity(r.TLS.PeerCertificates[0]); err == nil {
		if kind == tlsutil.KindNode {
			return fmt.Sprintf("node %d", id)
		}
		return name
	}
	return r.TLS.PeerCertificates[0].Subject.CommonName
}
