package client_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/clusterkit/kittest"
	"github.com/georaft/georaft/internal/testenv"
)

// etcd's own tools against a real 5-node georaft: Debian's etcdctl (etcd-client 3.4) and
// go.etcd.io/etcd/client/v3 with its concurrency package, in separate processes.

func etcdctl(t *testing.T, endpoints []string, stdin string, args ...string) string {
	t.Helper()
	path := testenv.Tool(t, "etcdctl", "apt-get install etcd-client")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append([]string{"--endpoints", strings.Join(endpoints, ","), "--command-timeout", "10s"}, args...)...)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("etcdctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestEtcdctlAgainstGeoraft(t *testing.T) {
	testenv.Tool(t, "etcdctl", "apt-get install etcd-client")
	cl := kittest.Start(t, clusterkit.Spec{Size: 5})
	leader := kittest.WaitLeader(t, cl)
	// A follower's endpoint only: everything must work through it.
	follower := []string{cl.Node(leader%5 + 1).ClientAddr()}

	if out := etcdctl(t, follower, "", "put", "/cfg/a", "1"); strings.TrimSpace(out) != "OK" {
		t.Fatalf("put: %q", out)
	}
	etcdctl(t, follower, "", "put", "/cfg/b", "2")
	etcdctl(t, follower, "", "put", "/other", "3")
	if out := etcdctl(t, follower, "", "get", "--prefix", "/cfg/"); out != "/cfg/a\n1\n/cfg/b\n2\n" {
		t.Fatalf("get --prefix: %q", out)
	}
	if out := etcdctl(t, follower, "", "get", "--prefix", "--keys-only", "/cfg/"); strings.Fields(out)[1] != "/cfg/b" {
		t.Fatalf("get --keys-only: %q", out)
	}
	if out := etcdctl(t, follower, "", "get", "--consistency=s", "/cfg/a", "--print-value-only"); out != "1\n" {
		t.Fatalf("serializable get: %q", out)
	}

	// Compare-and-swap from etcdctl's transaction syntax, both ways.
	txn := "value(\"/cfg/a\") = \"1\"\n\nput /cfg/a 10\n\nget /cfg/a\n\n"
	if out := etcdctl(t, follower, txn, "txn"); !strings.HasPrefix(out, "SUCCESS") {
		t.Fatalf("txn: %q", out)
	}
	if out := etcdctl(t, follower, txn, "txn"); !strings.HasPrefix(out, "FAILURE") || !strings.Contains(out, "/cfg/a\n10") {
		t.Fatalf("failed txn: %q", out)
	}

	// Watch from revision 1 replays the history of the prefix.
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	watch := exec.CommandContext(wctx, "etcdctl", "--endpoints", follower[0], "watch", "--prefix", "/cfg/", "--rev", "1")
	watch.Env = append(os.Environ(), "ETCDCTL_API=3")
	stdout, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	var events []string
	sc := bufio.NewScanner(stdout)
	for len(events) < 9 && sc.Scan() {
		events = append(events, sc.Text())
	}
	watch.Process.Kill()
	watch.Wait()
	if got := strings.Join(events, " "); got != "PUT /cfg/a 1 PUT /cfg/b 2 PUT /cfg/a 10" {
		t.Fatalf("watch replay: %q", got)
	}

	// Leases.
	out := etcdctl(t, follower, "", "lease", "grant", "60")
	m := regexp.MustCompile(`lease ([0-9a-f]+) granted with TTL\(60s\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("lease grant: %q", out)
	}
	id := m[1]
	etcdctl(t, follower, "", "put", "--lease", id, "/cfg/ephemeral", "x")
	if out := etcdctl(t, follower, "", "lease", "keep-alive", "--once", id); !strings.Contains(out, "keepalived with TTL(60)") {
		t.Fatalf("keep-alive: %q", out)
	}
	if out := etcdctl(t, follower, "", "lease", "timetolive", "--keys", id); !strings.Contains(out, "granted with TTL(60s)") || !strings.Contains(out, "/cfg/ephemeral") {
		t.Fatalf("timetolive: %q", out)
	}
	if out := etcdctl(t, follower, "", "lease", "revoke", id); !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %q", out)
	}
	if out := etcdctl(t, follower, "", "get", "/cfg/ephemeral"); out != "" {
		t.Fatalf("key outlived its lease: %q", out)
	}

	// Compaction: history below it is gone.
	var st struct {
		Header struct {
			Revision int64 `json:"revision"`
		} `json:"header"`
	}
	if err := json.Unmarshal([]byte(etcdctl(t, follower, "", "get", "/cfg/a", "-w", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if out := etcdctl(t, follower, "", "compaction", strconv.FormatInt(st.Header.Revision, 10)); !strings.Contains(out, fmt.Sprintf("compacted revision %d", st.Header.Revision)) {
		t.Fatalf("compaction: %q", out)
	}
	cmd := exec.Command("etcdctl", "--endpoints", follower[0], "get", "/cfg/a", "--rev", "2")
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "required revision has been compacted") {
		t.Fatalf("read below the compaction: %v %q", err, out)
	}

	// Cluster views.
	var status []struct {
		Status struct {
			Leader uint64 `json:"leader"`
		} `json:"Status"`
	}
	if err := json.Unmarshal([]byte(etcdctl(t, cl.ClientAddrs(), "", "endpoint", "status", "-w", "json")), &status); err != nil || len(status) != 5 {
		t.Fatalf("endpoint status: %v %v", status, err)
	}
	for _, s := range status {
		if s.Status.Leader != leader {
			t.Fatalf("endpoint status names leader %d, want %d", s.Status.Leader, leader)
		}
	}
	if out := etcdctl(t, follower, "", "member", "list"); strings.Count(out, "\n") != 5 {
		t.Fatalf("member list: %q", out)
	}
}

// lockHolderEnv makes the test binary a lock-holding client process (see TestLockHolderProcess).
const lockHolderEnv = "GEORAFT_TEST_LOCK_HOLDER"

// TestLockHolderProcess is not a test of its own: run by TestEtcdMutexAndElectionUnderLeaderKill
// in child processes, it takes the lock (or wins the election) rounds times, and in each
// round increments a counter by an unguarded read and write (lost if two held the lock at
// once) and logs when it held it.
func TestLockHolderProcess(t *testing.T) {
	spec := os.Getenv(lockHolderEnv)
	if spec == "" {
		t.Skip("run as a child process only")
	}
	var kind, endpoints, logPath, name string
	var rounds int
	fmt.Sscanf(spec, "%s %s %s %s %d", &kind, &endpoints, &logPath, &name, &rounds)
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(endpoints, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	logf, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	// Like any etcd application, the holder retries what a failover interrupts.
	retry := func(what string, f func() error) {
		for {
			err := f()
			if err == nil {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: %v", what, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	readCounter := func() (n int) {
		retry("read counter", func() error {
			r, err := cli.Get(ctx, "/counter")
			if err == nil && len(r.Kvs) == 1 {
				n, _ = strconv.Atoi(string(r.Kvs[0].Value))
			}
			return err
		})
		return n
	}
	for i := 0; i < rounds; i++ {
		var release func() error
		switch kind {
		case "mutex":
			mu := concurrency.NewMutex(sess, "/lock/")
			retry("lock", func() error { return mu.Lock(ctx) })
			release = func() error { return mu.Unlock(ctx) }
		case "election":
			e := concurrency.NewElection(sess, "/election/")
			retry("campaign", func() error { return e.Campaign(ctx, name) })
			release = func() error { return e.Resign(ctx) }
		}
		fmt.Fprintf(logf, "%d enter %s\n", time.Now().UnixNano(), name)
		n := readCounter()
		time.Sleep(5 * time.Millisecond) // widen the window a second holder would hit
		for {
			if _, err := cli.Put(ctx, "/counter", strconv.Itoa(n+1)); err == nil {
				break
			}
			// The write may or may not have been applied: only the holder writes, so the
			// counter says which.
			if readCounter() == n+1 {
				break
			}
		}
		fmt.Fprintf(logf, "%d leave %s\n", time.Now().UnixNano(), name)
		retry("release", release)
	}
}

// Several processes take a concurrency.Mutex, then campaign in a concurrency.Election, while
// the georaft leader is killed with SIGKILL: never two holders at once, and no increment lost.
func TestEtcdMutexAndElectionUnderLeaderKill(t *testing.T) {
	cl := kittest.Start(t, clusterkit.Spec{Size: 5})
	const procs, rounds = 3, 6
	for _, kind := range []string{"mutex", "election"} {
		t.Run(kind, func(t *testing.T) {
			cli, err := clientv3.New(clientv3.Config{Endpoints: cl.ClientAddrs(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if _, err := cli.Put(ctx, "/counter", "0"); err != nil {
				t.Fatal(err)
			}
			logPath := filepath.Join(t.TempDir(), "holders.log")
			var wg sync.WaitGroup
			errs := make(chan error, procs)
			for p := 0; p < procs; p++ {
				cmd := exec.Command(os.Args[0], "-test.run", "^TestLockHolderProcess$", "-test.v")
				cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %s p%d %d", lockHolderEnv, kind, strings.Join(cl.ClientAddrs(), ","), logPath, p, rounds))
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := cmd.Wait(); err != nil {
						errs <- fmt.Errorf("holder process: %v\n%s", err, out.String())
					}
				}()
			}
			// Kill the leader once the holders are under way, and bring it back.
			kittest.WaitFor(t, 30*time.Second, "the first holders", func() error {
				data, _ := os.ReadFile(logPath)
				if n := bytes.Count(data, []byte("leave")); n < 2 {
					return fmt.Errorf("%d rounds done", n)
				}
				return nil
			})
			old := kittest.WaitLeader(t, cl)
			if err := cl.Kill(old); err != nil {
				t.Fatal(err)
			}
			kittest.WaitLeader(t, cl)
			if err := cl.StartNode(old); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			r, err := cli.Get(ctx, "/counter")
			if err != nil {
				t.Fatal(err)
			}
			if got := string(r.Kvs[0].Value); got != strconv.Itoa(procs*rounds) {
				t.Fatalf("counter is %s after %d guarded increments: two holders overlapped", got, procs*rounds)
			}
			data, err := os.ReadFile(logPath)
			if err != nil {
				t.Fatal(err)
			}
			holder := ""
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				f := strings.Fields(line)
				switch {
				case f[1] == "enter" && holder != "":
					t.Fatalf("%s entered while %s held it", f[2], holder)
				case f[1] == "enter":
					holder = f[2]
				case f[1] == "leave" && holder != f[2]:
					t.Fatalf("%s left while %q held it", f[2], holder)
				default:
					holder = ""
				}
			}
		})
	}
}
