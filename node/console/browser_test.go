package console_test

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/clusterkit/kittest"
	"github.com/georaft/georaft/geo"
	"github.com/georaft/georaft/internal/testenv"
	"github.com/georaft/georaft/node/config"
)

func TestMain(m *testing.M) { kittest.Main(m) }

var screenshots = flag.Bool("screenshots", false, "write the browser tests' screenshots to results/console-*.png (otherwise to the test's temp dir)")

// chromiumPath finds Debian's chromium. Without it the browser tests skip on a developer's
// machine, and fail in CI, which installs it (.ci/run).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium is not installed (apt-get install chromium): the console's browser tests need it"
	testenv.Missing(t, msg)
	return ""
}

// newBrowser starts a headless chromium with a fresh profile, closed when the test ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 860),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// waitJS polls expr in the page until it is true, or fails the test after timeout with
// what describe (another expression) says of the page then.
func waitJS(t *testing.T, ctx context.Context, timeout time.Duration, what, expr, describe string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](describe))
			t.Fatalf("%s: not within %v (last error %v)\npage: %s", what, timeout, err, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pageState is what a failed wait prints: the summary, the map's nodes and the newest events.
const pageState = `(() => {
  const t = s => (document.querySelector(s) || {}).textContent || '';
  const nodes = [...document.querySelectorAll('#map-overlay .node')].map(n => n.id + ':' + n.dataset.role + '/' + n.dataset.health);
  return 'summary: ' + t('#summary').replace(/\s+/g, ' ') + '\nnodes: ' + nodes.join(' ') +
    '\nlive: ' + t('#live') + '\nevents: ' + [...document.querySelectorAll('#event-list li')].slice(0, 8).map(l => l.textContent.replace(/\s+/g, ' ')).join('\n  ');
})()`

// doOnLivePage runs actions on elements the page may swap for fresh copies at any moment
// (console.js replaces a section's HTML when its view changes): an element found and then
// swapped out before the action reaches it is looked up again, a bounded number of times.
func doOnLivePage(ctx context.Context, actions ...chromedp.Action[chromedp.Void]) error {
	var err error
	for range 10 {
		if err = chromedp.Do(ctx, actions...); err == nil || !swappedOut(err) {
			return err
		}
	}
	return err
}

// swappedOut reports whether err is the browser's answer for an element that left the DOM.
func swappedOut(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Could not find node with given id") || strings.Contains(msg, "No node with given id found")
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := t.TempDir()
	if *screenshots {
		dir = filepath.Join(kittest.RepoRoot(), "results")
	}
	path := filepath.Join(dir, "console-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d KiB)", path, len(png)/1024)
}

// The console of a five-region emulated cluster, in a real browser: the leader is shown in
// us-central1 with its lease counting down, a transfer through the console (and its
// confirmation) moves the leader on the map, and a killed node turns unhealthy with its
// event in the feed.
func TestConsoleInBrowser(t *testing.T) {
	browser := newBrowser(t)
	m, err := geo.LoadCSV(filepath.Join(kittest.RepoRoot(), "configs/geo/rtt-5-regions.csv"))
	if err != nil {
		t.Fatal(err)
	}
	regions := clusterkit.DefaultRegions
	timing, err := clusterkit.GeoTiming(m, regions)
	if err != nil {
		t.Fatal(err)
	}
	results := filepath.Join(kittest.RepoRoot(), "results")
	c := kittest.Launch(t, clusterkit.Spec{Regions: regions, Proxied: true, Timing: timing,
		Configure: func(cfg *config.Config) { cfg.Console.ResultsDir = results }},
		clusterkit.Options{Model: clusterkit.LinkModel{Matrix: m, Scale: 1, IntraRegionRTT: time.Millisecond}})
	if _, err := c.PinLeader(context.Background(), 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	url := "http://" + c.Node(1).MetricsAddr() + "/ui"
	ctx, cancel := context.WithTimeout(browser, 3*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}

	// The leader in us-central1, on the map and in the summary, and the stream live.
	waitJS(t, ctx, 30*time.Second, "node 1 shown leading in us-central1", `(() => {
		const n = document.querySelector('#map-node-1');
		return !!n && n.classList.contains('is-leader') && n.dataset.health === 'ok' &&
			document.querySelector('#summary').textContent.includes('node 1 · us-central1') &&
			document.querySelectorAll('#map-overlay .node').length === 5 &&
			document.querySelector('#live').dataset.state === 'live';
	})()`, pageState)
	// Every node in the text alternative, and the links between five regions.
	waitJS(t, ctx, 10*time.Second, "five rows and ten measured links", `
		document.querySelectorAll('#nodes-table tbody tr').length === 5 &&
		document.querySelectorAll('#map-overlay .link').length === 10 &&
		document.querySelectorAll('#map-overlay .link-quorum').length === 2`, pageState)

	// The lease counts down: several different readings within a few seconds. (A reading
	// that is not a time, a lease lapsing for a moment on a loaded machine, is not counted.)
	seen := map[string]bool{}
	var readings []string
	deadline := time.Now().Add(10 * time.Second)
	for len(seen) < 4 && time.Now().Before(deadline) {
		text, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS("#summary .countdown")))
		if err != nil {
			t.Fatal(err)
		}
		readings = append(readings, text)
		if strings.HasSuffix(text, " ms") {
			seen[text] = true
		}
		time.Sleep(150 * time.Millisecond)
	}
	if len(seen) < 4 {
		t.Fatalf("the lease countdown did not move: %q in 10s", readings)
	}
	screenshot(t, ctx, "map")

	// The keyboard: a node on the map is focusable and Enter leads to its row.
	if err := doOnLivePage(ctx, chromedp.Focus(chromedp.CSS("#map-node-3")), chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, 10*time.Second, "Enter on node 3 of the map focusing its row", `document.activeElement.id === 'node-row-3'`, pageState)

	// Transfer leadership to us-east1 through the form and its confirmation.
	if err := doOnLivePage(ctx,
		chromedp.SetValue(chromedp.CSS("#transfer-target"), "2"),
		chromedp.Click(chromedp.CSS("#transfer-review")),
		chromedp.WaitVisible(chromedp.CSS("#transfer-confirm")),
	); err != nil {
		t.Fatalf("ask for the transfer: %v", err)
	}
	confirmText, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(confirmText, "From node 1 (us-central1)") || !strings.Contains(confirmText, "to node 2 (us-east1)") {
		t.Fatalf("the confirmation does not say what will happen:\n%s", confirmText)
	}
	screenshot(t, ctx, "transfer-confirm")
	if err := doOnLivePage(ctx, chromedp.Click(chromedp.CSS("#transfer-confirm"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, 30*time.Second, "the map following leadership to us-east1", `(() => {
		const n2 = document.querySelector('#map-node-2'), n1 = document.querySelector('#map-node-1');
		const notice = document.querySelector('#notice');
		return !!n2 && n2.classList.contains('is-leader') && !n1.classList.contains('is-leader') &&
			!!notice && notice.textContent.includes('Leadership moved to node 2 (us-east1)') &&
			document.querySelector('#summary').textContent.includes('node 2 · us-east1');
	})()`, pageState)
	waitJS(t, ctx, 30*time.Second, "the transfer in the event feed", `
		[...document.querySelectorAll('#event-list li.cat-transfer')].some(l => l.textContent.includes('transfer to node 2'))`, pageState)

	// Kill asia-east1: it turns unhealthy, on the map, in the table and in the feed.
	if err := c.Kill(5); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, 30*time.Second, "node 5 shown down, with its event", `(() => {
		const n = document.querySelector('#map-node-5');
		const row = document.querySelector('#node-row-5');
		return !!n && n.dataset.health === 'unreachable' && row.textContent.includes('not answering') &&
			[...document.querySelectorAll('#event-list li.cat-health')].some(l => l.textContent.includes('node 5 (asia-east1) does not answer'));
	})()`, pageState)
	if err := chromedp.Do(ctx, chromedp.ScrollIntoView(chromedp.CSS("body > header"))); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "node-down")
	if crashes := c.Crashes(); len(crashes) > 0 {
		t.Errorf("nodes crashed: %v", crashes)
	}
}
