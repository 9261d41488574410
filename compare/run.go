package compare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/georaft/georaft/client/bench"
	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/geo"
)

// Options shape `make bench-compare`. Relative paths resolve against WorkDir.
type Options struct {
	// WorkDir is the repository root (default: the current directory).
	WorkDir string
	// Georaftd is the node binary; Etcd the etcd binary ("" = etcd on PATH); Self is
	// georaft-compare, which runs the proxies ("" = this executable).
	Georaftd string
	Etcd     string
	Self     string
	// DataRoot holds every data dir (the fsync probe runs there too); RunDir configs,
	// PID files, logs and proxy plans; ResultsDir receives compare-<time>/ and the
	// compare-latest.* copies.
	DataRoot   string
	RunDir     string
	ResultsDir string
	// MatrixFile is the RTT matrix; Regions places node/member N in Regions[N-1].
	MatrixFile string
	Regions    []string
	// ClientRegion is where the clients run and both leaders are pinned.
	ClientRegion   string
	IntraRegionRTT time.Duration
	// Compensation is the lab's overshoot compensation, taken off one direction of every
	// link over 2× it. 0 by default here: see docs/compare.md (it would favour georaft by
	// 2 ms per round trip, because georaft's messages travel the links' upstream direction
	// and etcd's the downstream one).
	Compensation time.Duration
	// Envs are run in order: EnvLoopback, EnvGeo.
	Envs      []string
	Workloads []Workload
	// Rounds is how many interleaved rounds each environment runs (at least 1; the issue's
	// figures want 3 or more).
	Rounds int
	Engine Engine
	// Profile captures perf profiles of the georaft leader (and the harness's own CPU
	// profile) during extra, unmeasured loopback runs of the write and lease workloads.
	Profile       bool
	LeaderTimeout time.Duration
	Out           io.Writer
	Progress      io.Writer
}

// DefaultOptions are what `make bench-compare` runs: about 6 minutes in all.
func DefaultOptions() Options {
	return Options{
		Georaftd:       "bin/georaftd",
		DataRoot:       "data/compare",
		RunDir:         "lab-run/compare",
		ResultsDir:     "results",
		MatrixFile:     "configs/geo/rtt-5-regions.csv",
		Regions:        append([]string(nil), clusterkit.DefaultRegions...),
		ClientRegion:   "us-central1",
		IntraRegionRTT: clusterkit.DefaultIntraRegionRTT,
		Compensation:   0,
		Envs:           []string{EnvLoopback, EnvGeo},
		Workloads:      DefaultWorkloads(),
		Rounds:         3,
		Engine:         Engine{Duration: 5 * time.Second, Warmup: time.Second, Keys: 1000, ValueSize: 128},
		Profile:        true,
		LeaderTimeout:  60 * time.Second,
	}
}

// Port plans, all below the ephemeral range so nothing takes them by chance, and apart
// from the lab's (7xxx local, 2xxx geo) so `make bench` can run on the same machine.
const (
	georaftLoopbackBase = 8000 // 8101-8105 peer, 8201-8205 client, 8301-8305 metrics
	etcdLoopbackClient  = 8400 // 8401-8405
	etcdLoopbackPeer    = 8500 // 8501-8505
	georaftGeoBase      = 3000 // 3ij0 links, 3rj1 client links, 380n/381n/382n nodes
	etcdGeoClientLink   = 4100 // 127.0.0.1:4101-4105, client links to member N
)

// EnvResult is one environment: both systems, every workload, in interleaved rounds.
type EnvResult struct {
	Name string
	// Emulation says how each system's links were made.
	Emulation []string
	LoadAvg   string
	Rounds    []Round
	// LinkChecks are the measured round trips of etcd's emulated peer links (geo).
	LinkChecks []LinkCheck
	// Notes are anything that makes the figures less comparable (a leader change).
	Notes []string
	// IdleServerCPU is each system's server CPU per second of wall time with no load: the
	// median over the rounds.
	IdleServerCPU map[string]time.Duration
}

// Round is one interleaved round of an environment.
type Round struct {
	Index     int
	Workloads []WorkloadResult
	// IdleServerCPU is each system's idle server CPU per second, measured at the round's
	// start; GRPCFloorP50 the loopback empty-call p50 measured right after.
	IdleServerCPU map[string]time.Duration
	GRPCFloorP50  time.Duration
}

// Ratios is every ratio row of every round, one slice per round.
func (er EnvResult) roundRatios() [][]RatioRow {
	var out [][]RatioRow
	for _, rr := range er.Rounds {
		var rows []RatioRow
		for _, wr := range rr.Workloads {
			rows = append(rows, Ratios(er.Name, wr)...)
		}
		out = append(out, rows)
	}
	return out
}

// medianIdle is each system's median idle CPU over the rounds.
func (er EnvResult) medianIdle() map[string]time.Duration {
	per := map[string][]time.Duration{}
	for _, rr := range er.Rounds {
		for sys, d := range rr.IdleServerCPU {
			per[sys] = append(per[sys], d)
		}
	}
	out := map[string]time.Duration{}
	for sys, ds := range per {
		out[sys] = medianDuration(ds)
	}
	return out
}

// Result is a whole compare run.
type Result struct {
	Started    time.Time
	Elapsed    time.Duration
	LoadBefore string
	LoadAfter  string
	CPUs       int
	Floors     Floors
	Options    Options
	Envs       []EnvResult
	Ratios     []RatioRow
	Targets    []Target
	Geo        *GeoModel
	// Profiles are the profile files written, under the run dir (relative to the work dir).
	Profiles []string
	// Dir is the results directory of this run.
	Dir string
}

type runner struct {
	opts  Options
	out   io.Writer
	model clusterkit.LinkModel
	res   *Result
	// georaftPlan is georaft's emulated links, which etcd's must match.
	georaftPlan clusterkit.ProxyPlan
}

func (o Options) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(o.WorkDir, p)
}

func (o *Options) resolve() error {
	if o.WorkDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
		o.WorkDir = wd
	}
	if o.Self == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find %s for the proxies: %w", BinaryName, err)
		}
		o.Self = exe
	}
	for _, p := range []*string{&o.Georaftd, &o.DataRoot, &o.RunDir, &o.ResultsDir, &o.MatrixFile, &o.Self} {
		*p = o.abs(*p)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if len(o.Workloads) == 0 {
		return errors.New("compare: no workloads")
	}
	for _, w := range o.Workloads {
		if err := w.Validate(); err != nil {
			return err
		}
	}
	for _, env := range o.Envs {
		if env != EnvLoopback && env != EnvGeo {
			return fmt.Errorf("compare: environment %q: want %s or %s", env, EnvLoopback, EnvGeo)
		}
	}
	if len(o.Envs) == 0 {
		return errors.New("compare: no environments")
	}
	if o.Rounds < 1 {
		return fmt.Errorf("compare: %d rounds: want at least 1", o.Rounds)
	}
	if len(o.Regions) != 5 {
		return fmt.Errorf("compare: %d regions: want 5 (one per node)", len(o.Regions))
	}
	return nil
}

// Preflight checks the tools before anything starts, so a missing one is the first and
// only error.
func Preflight(o Options) error {
	var errs []error
	if _, err := LookupEtcd(o.Etcd); err != nil {
		errs = append(errs, err)
	}
	if info, err := os.Stat(o.abs(o.Georaftd)); err != nil || info.IsDir() {
		errs = append(errs, fmt.Errorf("georaftd binary %s not found: run `go build -o bin/ ./node/cmd/georaftd`", o.Georaftd))
	}
	for _, env := range o.Envs {
		if env != EnvGeo {
			continue
		}
		if os.Geteuid() != 0 {
			errs = append(errs, errors.New("the emulated environment needs root (network namespaces, iptables): run as root or with --envs loopback"))
		}
		for _, tool := range []string{"ip", "iptables"} {
			if _, err := exec.LookPath(tool); err != nil {
				errs = append(errs, fmt.Errorf("%s not installed: run `apt-get install -y iproute2 iptables`", tool))
			}
		}
	}
	return errors.Join(errs...)
}

// Run measures both systems in every environment, prints the tables, writes the result
// files and stops everything it started, on success, error or interruption alike.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.resolve(); err != nil {
		return nil, err
	}
	if err := Preflight(opts); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.RunDir, 0o755); err != nil {
		return nil, fmt.Errorf("create run dir: %w", err)
	}
	unlock, err := lockRun(filepath.Join(opts.RunDir, "compare.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	matrix, err := geo.LoadCSV(opts.MatrixFile)
	if err != nil {
		return nil, err
	}
	r := &runner{
		opts:  opts,
		out:   opts.Out,
		model: clusterkit.LinkModel{Matrix: matrix, Scale: 1, IntraRegionRTT: opts.IntraRegionRTT, Compensation: opts.Compensation},
		res:   &Result{Started: time.Now().UTC(), CPUs: runtime.NumCPU(), Options: opts},
	}
	r.res.Dir = filepath.Join(opts.ResultsDir, "compare-"+r.res.Started.Format("20060102-150405"))
	r.res.LoadBefore, _ = LoadAvg()
	fmt.Fprintf(r.out, "load average before the run: %s (%d CPUs)\n", r.res.LoadBefore, r.res.CPUs)

	if err := os.MkdirAll(opts.DataRoot, 0o755); err != nil {
		return nil, fmt.Errorf("create data root: %w", err)
	}
	r.res.Floors, err = MeasureFloors(ctx, opts.DataRoot)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(r.out, "floors: fsync p50 %s (in %s), loopback gRPC empty unary call p50 %s, p99 %s\n",
		fmtLat(r.res.Floors.FsyncP50), opts.DataRoot, fmtLat(r.res.Floors.GRPCRTTP50), fmtLat(r.res.Floors.GRPCRTTP99))

	for _, env := range opts.Envs {
		er, err := r.runEnv(ctx, env)
		r.res.Envs = append(r.res.Envs, er)
		if err != nil {
			return r.res, fmt.Errorf("%s environment: %w", env, err)
		}
	}
	r.res.LoadAfter, _ = LoadAvg()
	r.res.Elapsed = time.Since(r.res.Started)
	for _, er := range r.res.Envs {
		r.res.Ratios = append(r.res.Ratios, AggregateRatios(er.roundRatios())...)
	}
	if g, err := r.geoModel(); err == nil {
		r.res.Geo = &g
	} else {
		return r.res, err
	}
	r.res.Targets = EvaluateTargets(r.res.Ratios, r.res.Geo, r.res.Envs)
	if err := r.res.WriteReport(r.out); err != nil {
		return r.res, err
	}
	if err := r.res.WriteFiles(opts.ResultsDir); err != nil {
		return r.res, err
	}
	fmt.Fprintf(r.out, "\nresults: %s (latest copies: %s)\n", r.res.Dir, filepath.Join(opts.ResultsDir, "compare-latest.{json,csv,svg,md}"))
	return r.res, nil
}

// geoModel is the physics of the emulated targets: RTT from the client to the leader (both
// in ClientRegion), the leader's quorum RTT, and the probed fsync.
func (r *runner) geoModel() (GeoModel, error) {
	toLeader, err := r.model.RTT(r.opts.ClientRegion, r.opts.ClientRegion)
	if err != nil {
		return GeoModel{}, fmt.Errorf("geo model: %w", err)
	}
	quorum, err := r.model.Matrix.QuorumRTTAmong(r.opts.ClientRegion, slices.DeleteFunc(slices.Clone(r.opts.Regions), func(s string) bool { return s == r.opts.ClientRegion }))
	if err != nil {
		return GeoModel{}, fmt.Errorf("geo model: %w", err)
	}
	return GeoModel{ClientLeaderRTT: toLeader, QuorumRTT: quorum, Fsync: r.res.Floors.FsyncP50}, nil
}

// lockRun holds an exclusive lock for the whole run: two runs would fight over ports,
// namespaces and data dirs.
func lockRun(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another bench-compare holds %s (%w): wait for it, or stop it", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// cleanups run in reverse order of registration, whatever happened.
type cleanups []func(context.Context) error

func (c *cleanups) add(f func(context.Context) error) { *c = append(*c, f) }

func (c cleanups) run() error {
	var errs []error
	for i := len(c) - 1; i >= 0; i-- {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		errs = append(errs, c[i](ctx))
		cancel()
	}
	return errors.Join(errs...)
}

// system is one store under load in one environment.
type system interface {
	Name() string
	Driver() bench.Driver
	ServerPIDs() []int
	ProxyPIDs() []int
	LeaderPID() (int, bool)
	// CheckLeader returns "" while the pinned leader still leads in the same term, or a
	// note saying what changed.
	CheckLeader(ctx context.Context) string
	// Repin moves leadership back to the pinned node.
	Repin(ctx context.Context, timeout time.Duration) error
	// LeaderFsyncs is the pinned leader's WAL fsync count so far.
	LeaderFsyncs(ctx context.Context) (float64, error)
}

func (r *runner) runEnv(ctx context.Context, env string) (er EnvResult, err error) {
	er = EnvResult{Name: env}
	er.LoadAvg, _ = LoadAvg()
	fmt.Fprintf(r.out, "\n=== %s: starting georaft and etcd (load average %s) ===\n", env, er.LoadAvg)
	var cl cleanups
	defer func() {
		fmt.Fprintf(r.out, "=== %s: stopping everything ===\n", env)
		if cerr := cl.run(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", cerr))
		}
	}()
	var g, e system
	switch env {
	case EnvLoopback:
		er.Emulation = []string{
			"georaft: 5 georaftd processes on 127.0.0.1, dialing each other directly",
			"etcd: 5 etcd members on 127.0.0.1, dialing each other directly",
			"client: in-process load generator on 127.0.0.1, talking to the leader (node 1 / m1) directly",
		}
		if g, err = r.startGeoraftLoopback(ctx, &cl); err != nil {
			return er, err
		}
		if e, err = r.startEtcdLoopback(ctx, &cl); err != nil {
			return er, err
		}
	case EnvGeo:
		var checks []LinkCheck
		if g, err = r.startGeoraftGeo(ctx, &cl); err != nil {
			return er, err
		}
		if e, checks, err = r.startEtcdGeo(ctx, &cl); err != nil {
			return er, err
		}
		er.LinkChecks = checks
		er.Emulation = r.geoEmulationText()
	}
	for _, s := range []system{g, e} {
		if err := r.prefill(ctx, s); err != nil {
			return er, err
		}
	}
	// Interleaved rounds: every round measures every workload on both systems (who goes
	// first alternates by workload and by round), so a drift in other people's load over the
	// run lands on both systems alike, and the spread of the per-round ratios shows how far
	// one round can be trusted.
	for round := range r.opts.Rounds {
		rr, err := r.runRound(ctx, env, round, g, e, &er)
		er.Rounds = append(er.Rounds, rr)
		if err != nil {
			return er, err
		}
	}
	er.IdleServerCPU = er.medianIdle()
	if r.opts.Profile && env == EnvLoopback {
		paths, err := r.profileGeoraft(ctx, g)
		r.res.Profiles = append(r.res.Profiles, paths...)
		if err != nil {
			er.Notes = append(er.Notes, "profiling: "+err.Error())
			fmt.Fprintf(r.out, "WARNING: profiling: %v\n", err)
		}
	}
	return er, nil
}

// runRound measures idle CPU, the gRPC floor and every workload once on both systems.
func (r *runner) runRound(ctx context.Context, env string, round int, g, e system, er *EnvResult) (Round, error) {
	rr := Round{Index: round + 1, IdleServerCPU: map[string]time.Duration{}}
	fmt.Fprintf(r.out, "\n--- %s: round %d of %d ---\n", env, round+1, r.opts.Rounds)
	pair := []system{g, e}
	if round%2 == 1 {
		pair = []system{e, g}
	}
	for _, s := range pair {
		idle, err := idleCPU(ctx, s, 3*time.Second)
		if err != nil {
			return rr, err
		}
		rr.IdleServerCPU[s.Name()] = idle
		fmt.Fprintf(r.out, "%s idle: servers use %.1f%% of a core\n", s.Name(), 100*idle.Seconds())
	}
	// The empty-call floor, taken in every round: a lease read's latency is judged against
	// the floor of the same moment.
	samples, err := GRPCRoundTrips(ctx, 200, 2000)
	if err != nil {
		return rr, err
	}
	rr.GRPCFloorP50 = percentile(samples, 50)
	fmt.Fprintf(r.out, "loopback gRPC empty call p50 %s\n", fmtLat(rr.GRPCFloorP50))
	for i, w := range r.opts.Workloads {
		order := []system{g, e}
		if (i+round)%2 == 1 {
			order = []system{e, g}
		}
		wr := WorkloadResult{Workload: w}
		for _, s := range order {
			modes := w.GeoraftModes
			if s == e {
				modes = w.EtcdModes
			}
			fmt.Fprintf(r.out, "%s round %d: %s on %s\n", env, round+1, w.Name, s.Name())
			run, err := r.measure(ctx, env, s, w, modes)
			run.IdleServerCPU = rr.IdleServerCPU[s.Name()]
			if s == g {
				wr.Georaft = run
			} else {
				wr.Etcd = run
			}
			if run.LeaderNote != "" {
				note := fmt.Sprintf("round %d, %s, %s: %s", round+1, w.Name, s.Name(), run.LeaderNote)
				er.Notes = append(er.Notes, note)
				fmt.Fprintf(r.out, "WARNING: %s\n", note)
			}
			if err != nil {
				rr.Workloads = append(rr.Workloads, wr)
				return rr, fmt.Errorf("round %d: %s on %s: %w", round+1, w.Name, s.Name(), err)
			}
		}
		rr.Workloads = append(rr.Workloads, wr)
	}
	return rr, nil
}

// idleCPU is the servers' CPU time per second of wall time while nothing is asked of them.
func idleCPU(ctx context.Context, s system, window time.Duration) (time.Duration, error) {
	pids := s.ServerPIDs()
	start, cpu0 := time.Now(), cpuOf(pids)
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(window):
	}
	used := cpuOf(pids) - cpu0
	return time.Duration(float64(used) / time.Since(start).Seconds()), nil
}

// prefill writes every key once, unmeasured, so reads find values.
func (r *runner) prefill(ctx context.Context, s system) error {
	cfg := bench.Config{Driver: s.Driver(), WritePhase: true, Concurrency: 64, Ops: 1, Keys: r.opts.Engine.Keys,
		ValueSize: r.opts.Engine.ValueSize, KeyPrefix: "bench/", Prefill: true}
	if _, err := bench.Run(ctx, cfg); err != nil {
		return fmt.Errorf("prefill %s: %w", s.Name(), err)
	}
	return nil
}

func (r *runner) measure(ctx context.Context, env string, s system, w Workload, modes []string) (SystemRun, error) {
	before := ""
	if note := s.CheckLeader(ctx); note != "" {
		// An election under load moved leadership: every run starts from the pinned leader.
		fmt.Fprintf(r.out, "  %s: %s; pinning it back\n", s.Name(), note)
		if err := s.Repin(ctx, r.opts.LeaderTimeout); err != nil {
			return SystemRun{}, fmt.Errorf("re-pin %s's leader: %w", s.Name(), err)
		}
		before = "leadership had moved before the run (" + note + ") and was pinned back"
	}
	load, _ := LoadAvg()
	fsync0, fsyncErr := s.LeaderFsyncs(ctx)
	servers, proxies := s.ServerPIDs(), s.ProxyPIDs()
	server0, proxy0 := cpuOf(servers), cpuOf(proxies)
	client0, _ := ProcessCPU(os.Getpid())
	cfg := w.Config(r.opts.Engine, s.Driver(), modes, map[string]string{"env": env, "workload": w.Name, "system": s.Name()})
	cfg.Progress = r.opts.Progress
	rep, err := bench.Run(ctx, cfg)
	client1, _ := ProcessCPU(os.Getpid())
	run := SystemRun{Report: rep, ServerCPU: cpuOf(servers) - server0, ProxyCPU: cpuOf(proxies) - proxy0, ClientCPU: client1 - client0, LoadAvg: load}
	if fsync1, err1 := s.LeaderFsyncs(ctx); fsyncErr == nil && err1 == nil {
		run.LeaderFsyncs = fsync1 - fsync0
	} else {
		run.LeaderFsyncs = -1
	}
	var notes []string
	if before != "" {
		notes = append(notes, before)
	}
	if err == nil {
		if after := s.CheckLeader(ctx); after != "" {
			notes = append(notes, "after the run: "+after)
		}
	}
	run.LeaderNote = strings.Join(notes, "; ")
	for _, row := range rep.Rows {
		fmt.Fprintf(r.out, "  %-13s %9s  p50 %-8s p99 %-8s errors %d  (load average %s)\n", row.Name, fmtOps(row.OpsPerSec), fmtLat(row.P50), fmtLat(row.P99), row.Errors, load)
	}
	return run, err
}

func (r *runner) geoEmulationText() []string {
	note := r.model.OvershootNote()
	return []string{
		fmt.Sprintf("matrix %s; each link's RTT split over its two directions (upstream ceil(RTT/2), downstream the rest); %s", filepath.Base(r.opts.MatrixFile), note),
		"georaft: 5 georaftd processes on 127.0.0.1; node i dials node j at its own toxiproxy proxy (link i->j), so every directed pair has its own delay (the lab's port plan, base 3000)",
		"etcd: 5 members, each in its own network namespace on a private bridge (" + DefaultSubnet.String() + "); in member A's namespace an iptables DNAT rule sends A's traffic for B's advertised peer URL to the toxiproxy proxy of link A->B (inside A's namespace), which forwards to B's back-door address; members listen for peers only on the back door",
		fmt.Sprintf("client: in %s, through a proxy of the intra-region RTT (%s) to each system's us-central1 node, which leads", r.opts.ClientRegion, r.opts.IntraRegionRTT),
		"link delays are the same clusterkit.LinkModel for both systems (checked link by link before measuring)",
	}
}
