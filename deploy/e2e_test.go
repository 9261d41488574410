package deploy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/deploy/nodechange"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/tlsutil"
)

// localHost is one of the five "hosts" the end-to-end test deploys to on this machine.
type localHost struct {
	name                        string
	id                          uint64
	region                      string
	root                        string
	peerPort, clientPort, mPort int
	// join: the host joins the running cluster as a new member, in replaces' place.
	join     bool
	replaces uint64
}

func (h localHost) pidfile() string { return filepath.Join(h.root, "run/georaft/georaftd.pid") }
func (h localHost) config() string  { return filepath.Join(h.root, "etc/georaft/georaft.yml") }
func (h localHost) log() string     { return filepath.Join(h.root, "var/log/georaft/georaftd.log") }
func (h localHost) client() string  { return "127.0.0.1:" + strconv.Itoa(h.clientPort) }

// localHosts are five hosts, one per default region, each with its own install root under
// dir and its own ports.
func localHosts(t *testing.T, dir string) []localHost {
	t.Helper()
	ports := freePorts(t, 3*len(defaultRegions))
	hosts := make([]localHost, len(defaultRegions))
	for i, region := range defaultRegions {
		hosts[i] = localHost{
			name: fmt.Sprintf("node%d", i+1), id: uint64(i + 1), region: region,
			root:     filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
			peerPort: ports[3*i], clientPort: ports[3*i+1], mPort: ports[3*i+2],
		}
	}
	return hosts
}

// freePorts picks n loopback ports below the kernel's ephemeral range (clusterkit.FreeAddrs),
// so no outgoing connection of the nodes can take one before its listener binds it.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	addrs, err := clusterkit.FreeAddrs(n)
	if err != nil {
		t.Fatal(err)
	}
	ports := make([]int, n)
	for i, a := range addrs {
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		if ports[i], err = strconv.Atoi(p); err != nil {
			t.Fatal(err)
		}
	}
	return ports
}

// Deploy five nodes on this machine with the real playbook (ansible_connection=local, one
// install root per host, the local service manager) and TLS from a PKI that `georaftd certs`
// wrote, as make cluster-deploy does. Check they elect a leader and serve SET and GET to a
// client with the CA, refuse a plaintext client, then run the playbook again and check it
// changes nothing. Then renew the certificates and roll them out with upgrade.yml, one node
// at a time; replace node 3 as make cluster-replace-node does (replaceNodeLocally); and check
// upgrade.yml refuses a new CA and turning TLS off.
func TestAnsibleDeploysFiveLocalNodes(t *testing.T) {
	ansiblePlaybook(t)
	// Stop short of go test's own deadline: a test that times out panics without running its
	// cleanups, and the nodes would outlive it.
	deadline := time.Now().Add(12 * time.Minute)
	if d, ok := t.Deadline(); ok && d.Add(-time.Minute).Before(deadline) {
		deadline = d.Add(-time.Minute)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	dir := t.TempDir()
	bin := filepath.Join(dir, "georaftd")
	build := exec.CommandContext(ctx, goTool(), "build", "-o", dir+"/", "./node/cmd/georaftd", "./client/cmd/georaft")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./node/cmd/georaftd ./client/cmd/georaft: %v\n%s", err, out)
	}

	hosts := localHosts(t, dir)
	t.Cleanup(func() {
		for _, h := range hosts {
			stopByPidfile(t, h)
		}
	})
	pki := filepath.Join(dir, "pki")
	certsArgs := []string{"certs", "--out", pki, "--client", "e2e"}
	for _, h := range hosts {
		certsArgs = append(certsArgs, "--node", fmt.Sprintf("%d=127.0.0.1,%s", h.id, h.name))
	}
	if out, err := exec.CommandContext(ctx, bin, certsArgs...).CombinedOutput(); err != nil {
		t.Fatalf("georaftd certs: %v\n%s", err, out)
	}
	tlsCfg, err := tlsutil.ClientConfig(filepath.Join(pki, "ca.crt"), filepath.Join(pki, "client-e2e.crt"),
		filepath.Join(pki, "client-e2e.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	creds := grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg))
	inv := writeLocalInventory(t, dir, hosts, bin, pki)

	first, err := runAnsible(t, ctx, dir, "-i", inv, "site.yml")
	if err != nil {
		t.Fatalf("first ansible-playbook site.yml: %v\n%s\n%s", err, first, nodeLogs(hosts))
	}
	recap := parseRecap(t, first)
	for _, h := range hosts {
		if recap[h.name] == 0 {
			t.Errorf("first run changed nothing on %s", h.name)
		}
	}

	// The rendered configs carry the tuned timing from group_vars.
	for _, h := range hosts {
		var cfg renderedNodeConfig
		data, err := os.ReadFile(h.config())
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Node.ID != h.id || len(cfg.Peers) != 5 || cfg.Timing["lease_duration"] != "350ms" {
			t.Errorf("%s: config node %d, %d peers, lease %v; want node %d, 5 peers, the tuned 350ms",
				h.name, cfg.Node.ID, len(cfg.Peers), cfg.Timing["lease_duration"], h.id)
		}
		tlsDir := filepath.Join(h.root, "etc/georaft/tls")
		if want := (renderedTLS{Enabled: true, CAFile: tlsDir + "/ca.crt", CertFile: tlsDir + "/node.crt", KeyFile: tlsDir + "/node.key"}); cfg.TLS != want {
			t.Errorf("%s: tls = %+v, want %+v", h.name, cfg.TLS, want)
		}
		if fi, err := os.Stat(cfg.TLS.KeyFile); err != nil {
			t.Errorf("%s: node key: %v", h.name, err)
		} else if fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: node key %s has mode %v, want 0640", h.name, cfg.TLS.KeyFile, fi.Mode().Perm())
		}
	}

	leader := waitForLeader(t, ctx, hosts, creds)
	plain, err := grpc.NewClient(leader.client(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	plainCtx, plainCancel := context.WithTimeout(ctx, 5*time.Second)
	_, plainErr := georaftv1.NewKVServiceClient(plain).Status(plainCtx, &georaftv1.StatusRequest{})
	plainCancel()
	plain.Close()
	if plainErr == nil {
		t.Errorf("a plaintext client got an answer from %s, whose client port should speak only TLS", leader.name)
	}
	conn, err := grpc.NewClient(leader.client(), creds)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	kv := georaftv1.NewKVServiceClient(conn)
	rpcCtx, rpcCancel := context.WithTimeout(ctx, 30*time.Second)
	defer rpcCancel()
	if _, err := kv.Set(rpcCtx, &georaftv1.SetRequest{Key: []byte("deployed-by"), Value: []byte("ansible"),
		Session: &georaftv1.WriteSession{ClientId: uint64(time.Now().UnixNano()) | 1, Sequence: 1}}); err != nil {
		t.Fatalf("SET on leader %s: %v", leader.name, err)
	}
	for _, mode := range []georaftv1.ReadMode{georaftv1.ReadMode_READ_MODE_LEASE, georaftv1.ReadMode_READ_MODE_INDEX} {
		got, err := kv.Get(rpcCtx, &georaftv1.GetRequest{Key: []byte("deployed-by"), ReadMode: mode})
		if err != nil {
			t.Fatalf("GET (%v) on leader %s: %v", mode, leader.name, err)
		}
		if !got.GetFound() || string(got.GetValue()) != "ansible" {
			t.Errorf("GET (%v) = found %v value %q, want ansible", mode, got.GetFound(), got.GetValue())
		}
	}

	pidsBefore := readPids(t, hosts)
	checkRerunChangesNothing(t, "the second site.yml", 5, func() (string, error) { return runAnsible(t, ctx, dir, "-i", inv, "site.yml") },
		func() string { return fmt.Sprint(readPids(t, hosts)) }, func() string { return nodeLogs(hosts) })

	// Renewed certificates under the same CA roll out one node at a time: upgrade.yml
	// installs each node's new pair and restarts it, and the cluster serves throughout.
	if out, err := exec.CommandContext(ctx, bin, append(certsArgs, "--renew")...).CombinedOutput(); err != nil {
		t.Fatalf("georaftd certs --renew: %v\n%s", err, out)
	}
	upgrade, err := runAnsible(t, ctx, dir, "-i", inv, "upgrade.yml")
	if err != nil {
		t.Fatalf("ansible-playbook upgrade.yml after a renewal: %v\n%s\n%s", err, upgrade, nodeLogs(hosts))
	}
	for host, changed := range parseRecap(t, upgrade) {
		if changed == 0 {
			t.Errorf("upgrade.yml after a renewal changed nothing on %s", host)
		}
	}
	pidsRenewed := readPids(t, hosts)
	for i, h := range hosts {
		if pidsRenewed[i] == pidsBefore[i] {
			t.Errorf("%s was not restarted onto its renewed certificate (pid %d)", h.name, pidsRenewed[i])
		}
		installed, err := os.ReadFile(filepath.Join(h.root, "etc/georaft/tls/node.crt"))
		if err != nil {
			t.Fatal(err)
		}
		if issued, err := os.ReadFile(filepath.Join(pki, fmt.Sprintf("node-%d.crt", h.id))); err != nil || !bytes.Equal(installed, issued) {
			t.Errorf("%s does not hold its renewed certificate (%v)", h.name, err)
		}
	}
	leader = waitForLeader(t, ctx, hosts, creds)
	renewedConn, err := grpc.NewClient(leader.client(), creds)
	if err != nil {
		t.Fatal(err)
	}
	defer renewedConn.Close()
	getCtx, getCancel := context.WithTimeout(ctx, 30*time.Second)
	got, err := georaftv1.NewKVServiceClient(renewedConn).Get(getCtx, &georaftv1.GetRequest{Key: []byte("deployed-by"),
		ReadMode: georaftv1.ReadMode_READ_MODE_INDEX})
	getCancel()
	if err != nil || string(got.GetValue()) != "ansible" {
		t.Errorf("GET after the renewal = %q, %v; want ansible", got.GetValue(), err)
	}

	timingVars := replaceNodeLocally(t, ctx, dir, hosts, bin, pki, creds)
	pidsRenewed = readPids(t, hosts)
	certsArgs = []string{"certs", "--out", pki, "--client", "e2e"}
	for _, h := range hosts {
		certsArgs = append(certsArgs, "--node", fmt.Sprintf("%d=127.0.0.1,%s", h.id, h.name))
	}

	// A new CA cannot roll out one node at a time: upgrade.yml refuses before the first
	// node changes, and every node keeps running.
	inv = filepath.Join(dir, "inventory.yml")
	if err := os.Rename(pki, pki+".old"); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, bin, certsArgs...).CombinedOutput(); err != nil {
		t.Fatalf("georaftd certs (new CA): %v\n%s", err, out)
	}
	refused, err := runAnsible(t, ctx, dir, "-i", inv, "upgrade.yml", "-e", "@"+timingVars)
	if err == nil {
		t.Fatalf("upgrade.yml rolled out a new CA one node at a time:\n%s", refused)
	}
	// upgrade.yml starts with a follower, whichever node that is.
	if want := regexp.MustCompile(`is not the CA node\d runs with`); !want.MatchString(strings.Join(strings.Fields(refused), " ")) {
		t.Errorf("upgrade.yml with a new CA failed without saying %q:\n%s", want, refused)
	}
	// Nor can TLS be turned off one node at a time.
	plainUpgrade, err := runAnsible(t, ctx, dir, "-i", inv, "upgrade.yml", "-e", "georaft_tls_enabled=false", "-e", "@"+timingVars)
	if err == nil {
		t.Fatalf("upgrade.yml turned TLS off one node at a time:\n%s", plainUpgrade)
	}
	if want := regexp.MustCompile(`node\d runs with TLS on, and this play would turn it off`); !want.MatchString(strings.Join(strings.Fields(plainUpgrade), " ")) {
		t.Errorf("upgrade.yml turning TLS off failed without saying %q:\n%s", want, plainUpgrade)
	}
	if after := readPids(t, hosts); fmt.Sprint(after) != fmt.Sprint(pidsRenewed) {
		t.Errorf("refused upgrades restarted nodes: pids %v, then %v", pidsRenewed, after)
	}
}

// replaceNodeLocally is the replace flow's Ansible part on the local hosts: node3's data is
// lost while it is down; the role refuses to start it blank under its old id, naming the
// replace; then, as make cluster-replace-node runs it once it has removed member 3 (the new
// node takes its address) and Terraform has given the host a blank disk, site.yml on that
// host alone starts it as new member 6 with cluster.join and cluster.replaces (certificate for id 6, the tuned timing's placement renamed by the kit's
// own code). The new member receives the data, becomes a voter in member 3's place, and a
// second run changes nothing. It returns the timing vars file later plays need.
func replaceNodeLocally(t *testing.T, ctx context.Context, dir string, hosts []localHost, bin, pki string, creds grpc.DialOption) string {
	t.Helper()
	h := &hosts[2]
	oldID := h.id
	stopByPidfile(t, *h)
	if err := os.RemoveAll(filepath.Join(h.root, "var/lib/georaft")); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "inventory.yml")
	blank, err := runAnsible(t, ctx, dir, "-i", inv, "site.yml", "--limit", h.name)
	if err == nil {
		t.Fatalf("site.yml started %s on a blank data directory under its old id %d:\n%s", h.name, oldID, blank)
	}
	if flat := strings.Join(strings.Fields(blank), " "); !strings.Contains(flat, "bring the node back as a new member: make cluster-replace-node REGION="+h.region) {
		t.Errorf("site.yml on a blank data directory failed without naming the replace:\n%s", blank)
	}
	if _, err := os.Stat(filepath.Join(h.root, "var/lib/georaft/node/member.json")); !os.IsNotExist(err) {
		t.Fatalf("the refused node wrote member.json (%v)", err)
	}

	const newID = 6
	h.id, h.join, h.replaces = newID, true, oldID
	if out, err := exec.CommandContext(ctx, bin, "certs", "--renew", "--out", pki, "--node", fmt.Sprintf("%d=127.0.0.1,%s", newID, h.name)).CombinedOutput(); err != nil {
		t.Fatalf("georaftd certs for member %d: %v\n%s", newID, err, out)
	}
	writeLocalInventory(t, dir, hosts, bin, pki)
	timing, err := os.ReadFile(timingVarsFile)
	if err != nil {
		t.Fatal(err)
	}
	renamed, changed, err := nodechange.RenamePlacement(timing, oldID, newID, h.region)
	if err != nil || !changed {
		t.Fatalf("rename member %d to %d in the timing placement: changed %v, %v", oldID, newID, changed, err)
	}
	timingVars := filepath.Join(dir, "timing-after-replace.yml")
	if err := os.WriteFile(timingVars, renamed, 0o644); err != nil {
		t.Fatal(err)
	}

	// make cluster-replace-node removes the old member first: the new node has its address.
	removeMember(t, ctx, hosts[0].client(), creds, oldID, func() string { return nodeLogs(hosts) })
	start := time.Now()
	join, err := runAnsible(t, ctx, dir, "-i", inv, "site.yml", "--limit", h.name, "-e", "@"+timingVars)
	if err != nil {
		t.Fatalf("site.yml joining %s as member %d: %v\n%s\n%s", h.name, newID, err, join, nodeLogs(hosts))
	}
	var cfg struct {
		Node    struct{ ID uint64 } `yaml:"node"`
		Cluster struct {
			Join     string `yaml:"join"`
			JoinAs   string `yaml:"join_as"`
			Replaces uint64 `yaml:"replaces"`
		} `yaml:"cluster"`
	}
	data, err := os.ReadFile(h.config())
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("127.0.0.1:%d", hosts[0].clientPort); cfg.Node.ID != newID || cfg.Cluster.Join != want ||
		cfg.Cluster.Replaces != oldID || cfg.Cluster.JoinAs != "voter" {
		t.Errorf("%s's config: node %d, cluster %+v; want node %d joining through %s in %d's place", h.name, cfg.Node.ID, cfg.Cluster,
			newID, want, oldID)
	}

	waitMemberReplaced(t, ctx, hosts[0].client(), creds, oldID, newID, func() string { return nodeLogs(hosts) })
	t.Logf("replace: site.yml on the joining host and the change applied in %v", time.Since(start).Round(time.Second))

	// The new member holds what the cluster held before it joined.
	own, err := grpc.NewClient(h.client(), creds)
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	waitForKeyOn(t, ctx, georaftv1.NewKVServiceClient(own), "deployed-by", "ansible")

	checkRerunChangesNothing(t, "the second site.yml on the replaced host", 1, func() (string, error) {
		return runAnsible(t, ctx, dir, "-i", inv, "site.yml", "--limit", h.name, "-e", "@"+timingVars)
	}, func() string { return fmt.Sprint(readPids(t, hosts)) }, func() string { return nodeLogs(hosts) })
	return timingVars
}

// checkRerunChangesNothing runs a playbook again: it must report changed=0 on every host and
// restart no node (running says which processes run, before and after).
func checkRerunChangesNothing(t *testing.T, what string, hosts int, run func() (string, error), running, logs func() string) {
	t.Helper()
	before := running()
	out, err := run()
	if err != nil {
		t.Fatalf("%s: %v\n%s\n%s", what, err, out, logs())
	}
	for host, changed := range parseRecapOf(t, out, hosts) {
		if changed != 0 {
			t.Errorf("%s reported changed=%d on %s; the playbook must be idempotent:\n%s", what, changed, host, out)
		}
	}
	if after := running(); after != before {
		t.Errorf("%s restarted nodes: %s, then %s", what, before, after)
	}
}

// removeMember removes member id through the member at addr, as make cluster-replace-node
// does with georaft member remove, and waits until the member list says so.
func removeMember(t *testing.T, ctx context.Context, addr string, creds grpc.DialOption, id uint64, logs func() string) {
	t.Helper()
	conn, err := grpc.NewClient(addr, creds)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	members := georaftv1.NewMembershipServiceClient(conn)
	var last error
	for {
		listCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := members.ListMembers(listCtx, &georaftv1.ListMembersRequest{Linearizable: true})
		cancel()
		if err == nil {
			for _, ms := range resp.GetMembers() {
				if ms.GetMember().GetId() == id && ms.GetMember().GetRole() == georaftv1.MemberRole_MEMBER_ROLE_REMOVED {
					return
				}
			}
			// Asked again after an answer that did not come back, or while there is no
			// leader or another change is under way.
			rmCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
			_, last = members.RemoveMember(rmCtx, &georaftv1.RemoveMemberRequest{Id: id})
			cancel()
		} else {
			last = err
		}
		if ctx.Err() != nil {
			t.Fatalf("member %d is not removed: %v\n%s", id, last, logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitForKeyOn waits until a node's own state holds key = want (a stale read answers from
// the node itself, whatever it is).
func waitForKeyOn(t *testing.T, ctx context.Context, kv georaftv1.KVServiceClient, key, want string) {
	t.Helper()
	var last string
	for {
		getCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		got, err := kv.Get(getCtx, &georaftv1.GetRequest{Key: []byte(key), ReadMode: georaftv1.ReadMode_READ_MODE_STALE})
		cancel()
		if err == nil && got.GetFound() && string(got.GetValue()) == want {
			return
		}
		last = fmt.Sprintf("found %v %q, %v", got.GetFound(), got.GetValue(), err)
		if ctx.Err() != nil {
			t.Fatalf("the node never held %s = %q (last: %s)", key, want, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitMemberReplaced waits until the member list at addr shows newID a voter and oldID
// removed.
func waitMemberReplaced(t *testing.T, ctx context.Context, addr string, creds grpc.DialOption, oldID, newID uint64, logs func() string) {
	t.Helper()
	conn, err := grpc.NewClient(addr, creds)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	members := georaftv1.NewMembershipServiceClient(conn)
	var last string
	for {
		listCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := members.ListMembers(listCtx, &georaftv1.ListMembersRequest{Linearizable: true})
		cancel()
		roles := map[uint64]georaftv1.MemberRole{}
		if err == nil {
			for _, ms := range resp.GetMembers() {
				roles[ms.GetMember().GetId()] = ms.GetMember().GetRole()
			}
			last = fmt.Sprint(roles)
		} else {
			last = err.Error()
		}
		if roles[newID] == georaftv1.MemberRole_MEMBER_ROLE_VOTER && roles[oldID] == georaftv1.MemberRole_MEMBER_ROLE_REMOVED {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("member %d never became a voter in member %d's place: %s\n%s", newID, oldID, last, logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

func writeLocalInventory(t *testing.T, dir string, hosts []localHost, bin, pki string) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	hostVars := map[string]any{}
	for _, h := range hosts {
		hostVars[h.name] = map[string]any{
			"ansible_connection":         "local",
			"ansible_python_interpreter": "{{ ansible_playbook_python }}",
			"georaft_root":               h.root,
			"georaft_node_id":            h.id,
			"georaft_region":             h.region,
			"georaft_zone":               h.region + "-b",
			"georaft_internal_ip":        "127.0.0.1",
			"georaft_external_ip":        "",
			"georaft_peer_port":          h.peerPort,
			"georaft_client_port":        h.clientPort,
			"georaft_metrics_port":       h.mPort,
		}
		if h.join {
			hostVars[h.name].(map[string]any)["georaft_join"] = true
			hostVars[h.name].(map[string]any)["georaft_replaces"] = h.replaces
		}
	}
	doc := map[string]any{"all": map[string]any{"children": map[string]any{"georaft": map[string]any{
		"hosts": hostVars,
		"vars": map[string]any{
			"georaft_service_manager": "local",
			"georaft_become":          false,
			"georaft_manage_user":     false,
			"georaft_user":            u.Username,
			"georaft_group":           g.Name,
			"georaft_admin_user":      u.Username,
			"georaft_admin_group":     g.Name,
			"georaft_listen_host":     "127.0.0.1",
			"georaft_binary_src":      bin,
			// upgrade.yml hands leadership away with the client installed next to georaftd.
			"georaft_client_binary_src": filepath.Join(filepath.Dir(bin), "georaft"),
			// The clock is this machine's; the real-host run (hosts_test.go) covers chrony.
			"georaft_chrony_manage":        false,
			"georaft_node_exporter_manage": false,
			"georaft_cluster_id":           "georaft-e2e",
			"georaft_log_format":           "text",
			"georaft_tls_src_dir":          pki,
		},
	}}}}
	data, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "inventory.yml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var recapLine = regexp.MustCompile(`(?m)^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

// parseRecap returns changed= per host from the PLAY RECAP.
func parseRecap(t *testing.T, out string) map[string]int {
	t.Helper()
	return parseRecapOf(t, out, 5)
}

// parseRecapOf returns changed= per host from the PLAY RECAP of a play on hosts hosts.
func parseRecapOf(t *testing.T, out string, hosts int) map[string]int {
	t.Helper()
	i := strings.LastIndex(out, "PLAY RECAP")
	if i < 0 {
		t.Fatalf("no PLAY RECAP in ansible output:\n%s", out)
	}
	changed := map[string]int{}
	for _, m := range recapLine.FindAllStringSubmatch(out[i:], -1) {
		n, _ := strconv.Atoi(m[2])
		changed[m[1]] = n
		if m[3] != "0" || m[4] != "0" {
			t.Errorf("%s: unreachable=%s failed=%s", m[1], m[3], m[4])
		}
	}
	if len(changed) != hosts {
		t.Fatalf("PLAY RECAP lists %d hosts, want %d:\n%s", len(changed), hosts, out[i:])
	}
	return changed
}

// waitForLeader polls Status on every node until all agree on one leader that says it is
// leader.
func waitForLeader(t *testing.T, ctx context.Context, hosts []localHost, creds grpc.DialOption) localHost {
	t.Helper()
	nodes := make([]kvNode, len(hosts))
	for i, h := range hosts {
		nodes[i] = kvNode{name: h.name, id: h.id, addr: h.client()}
	}
	leader := waitForLeaderAmong(t, ctx, nodes, creds, func() string { return nodeLogs(hosts) })
	return hosts[leader.id-1]
}

// kvNode is a node's client endpoint.
type kvNode struct {
	name string
	id   uint64
	addr string
}

// waitForLeaderAmong polls Status on every node until all agree on one leader that says it
// is leader; logs tells what the nodes said when none is agreed within 90 seconds.
func waitForLeaderAmong(t *testing.T, ctx context.Context, nodes []kvNode, creds grpc.DialOption, logs func() string) kvNode {
	t.Helper()
	clients := map[uint64]georaftv1.KVServiceClient{}
	byID := map[uint64]kvNode{}
	for _, n := range nodes {
		conn, err := grpc.NewClient(n.addr, creds)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		clients[n.id] = georaftv1.NewKVServiceClient(conn)
		byID[n.id] = n
	}
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		leaders := map[uint64]int{}
		var leaderRole bool
		var statusErr error
		for _, n := range nodes {
			c, cancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := clients[n.id].Status(c, &georaftv1.StatusRequest{})
			cancel()
			if err != nil {
				statusErr = fmt.Errorf("%s: %w", n.name, err)
				break
			}
			leaders[st.GetLeaderId()]++
			if st.GetRole() == georaftv1.Role_ROLE_LEADER && st.GetId() == st.GetLeaderId() {
				leaderRole = true
			}
		}
		_, someoneLacksLeader := leaders[0]
		switch {
		case statusErr != nil:
			last = statusErr.Error()
		case len(leaders) == 1 && !someoneLacksLeader && leaderRole:
			for id := range leaders {
				if n, ok := byID[id]; ok {
					return n
				}
			}
		default:
			last = fmt.Sprintf("leader ids reported: %v", leaders)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Fatalf("no agreed leader within 90s (last: %s)\n%s", last, logs())
	return kvNode{}
}

func readPids(t *testing.T, hosts []localHost) []int {
	t.Helper()
	var pids []int
	for _, h := range hosts {
		data, err := os.ReadFile(h.pidfile())
		if err != nil {
			t.Fatalf("%s: %v", h.name, err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			t.Fatalf("%s: pidfile: %v", h.name, err)
		}
		pids = append(pids, pid)
	}
	return pids
}

// stopByPidfile ends the georaftd a host's pidfile names, if it is still ours.
func stopByPidfile(t *testing.T, h localHost) {
	data, err := os.ReadFile(h.pidfile())
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return
	}
	// Only a process started with this host's config: the pid may have been reused.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), h.config()) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(15 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Logf("%s: georaftd pid %d ignored SIGTERM for 15s; killing it", h.name, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(time.Hour)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processAlive treats a zombie as gone: the node is reparented away from us, and whoever
// reaps it may not do so at once.
func processAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func nodeLogs(hosts []localHost) string {
	var b strings.Builder
	for _, h := range hosts {
		data, err := os.ReadFile(h.log())
		if err != nil {
			fmt.Fprintf(&b, "--- %s: no log (%v)\n", h.name, err)
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		fmt.Fprintf(&b, "--- %s (last %d lines of %s)\n%s\n", h.name, len(lines), h.log(), strings.Join(lines, "\n"))
	}
	return b.String()
}

// With TLS on and no certificates, the playbook stops before it changes anything on a host,
// and says where the certificates were looked for and how to get them.
func TestAnsibleRefusesTLSWithoutCertificates(t *testing.T) {
	ansiblePlaybook(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "georaftd")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	emptyPKI := filepath.Join(dir, "pki")
	if err := os.Mkdir(emptyPKI, 0o700); err != nil {
		t.Fatal(err)
	}
	hosts := localHosts(t, dir)
	for _, tc := range []struct {
		name, pki string
		want      *regexp.Regexp
	}{
		{"empty certificate directory", emptyPKI,
			regexp.MustCompile(`TLS is on, but ` + regexp.QuoteMeta(emptyPKI) + ` has no ca.crt, node-2.crt, node-2.key\. make cluster-certs`)},
		{"no certificate directory, none on the host", "",
			regexp.MustCompile(`TLS is on, but node2 has no ` + regexp.QuoteMeta(hosts[1].root) + `/etc/georaft/tls/ca.crt`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := writeLocalInventory(t, dir, hosts, bin, tc.pki)
			out, err := runAnsible(t, ctx, dir, "-i", inv, "site.yml", "--limit", "node2")
			if err == nil {
				t.Fatalf("the playbook succeeded without certificates:\n%s", out)
			}
			if !tc.want.MatchString(strings.Join(strings.Fields(out), " ")) {
				t.Errorf("the failure does not match %q:\n%s", tc.want, out)
			}
			if _, err := os.Stat(hosts[1].config()); !os.IsNotExist(err) {
				t.Errorf("the playbook wrote %s before failing (stat: %v)", hosts[1].config(), err)
			}
		})
	}
}
