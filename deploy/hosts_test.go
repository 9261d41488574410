package deploy

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/georaft/georaft/deploy/hostlab"
	"github.com/georaft/georaft/deploy/inventory"
	"github.com/georaft/georaft/deploy/nodechange"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/tlsutil"
)

// The real-host run boots five Debian hosts with systemd; it needs root, debootstrap and
// systemd-container, and costs a few minutes, so it runs when asked: make test-hosts, or
// go test ./deploy -run TestAnsibleOnRealHosts -hosts (or GEORAFT_TEST_HOSTS=1).
var realHosts = flag.Bool("hosts", os.Getenv("GEORAFT_TEST_HOSTS") == "1",
	"boot five Debian hosts with systemd (systemd-nspawn) and run the Ansible role against them")

const (
	// Everything the run creates is named grk-* (compare/ uses 10.213.0.0/24).
	hostsPrefix = "grk"
	// The cached root filesystem, git-ignored with the rest of build/.
	hostsImageCache = "../build/hosts"
)

var hostsSubnet = netip.MustParsePrefix("10.214.0.0/24")

// realHost is one booted host as the test sees it.
type realHost struct {
	*hostlab.Host
	id     uint64
	region string
	// replaces: the host joined the running cluster as a new member in this member's place.
	replaces uint64
}

func (h realHost) client() string { return net.JoinHostPort(h.Addr.String(), "7200") }
func (h realHost) kv() kvNode     { return kvNode{name: h.Name, id: h.id, addr: h.client()} }

// root runs a command on the host as root (sudo over ssh) and fails the test on error.
func (h realHost) root(t *testing.T, ctx context.Context, command string) string {
	t.Helper()
	out, err := h.Run(ctx, "sudo sh -c "+shellQuote(command))
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", h.Name, command, err, out)
	}
	return strings.TrimSpace(out)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'" }

// The kit on real hosts: five Debian bookworm hosts booted by systemd-nspawn (systemd as PID
// 1, sshd, an administrator with sudo, a loop device at Google Cloud's data disk path, their
// own addresses on a private bridge), an inventory made by georaft-inventory with their host
// keys pinned, and the real playbooks over ssh with become. It checks, in order:
//   - site.yml formats and mounts the data disks, marks them, waits for chrony, installs a
//     release behind the current symlink and starts the systemd unit as the georaft user; the
//     five nodes elect a leader and serve writes and reads over TLS with a client certificate,
//     and refuse plaintext and certificate-less clients;
//   - a second site.yml changes nothing and restarts nothing;
//   - upgrade.yml onto a new build restarts the followers first and the leader last, after
//     handing its leadership away with georaft transfer-leader;
//   - upgrade.yml onto a binary that cannot start rolls the first node back to the release it
//     ran, stops the rollout there, and the cluster keeps serving;
//   - a host whose data disk is wiped is refused by site.yml with the replace-node command,
//     and its unit refuses to start;
//   - the replace flow's Ansible part then formats that blank disk and starts the node as a
//     new member, which becomes a voter in the old member's place; a second run changes
//     nothing.
func TestAnsibleOnRealHosts(t *testing.T) {
	if !*realHosts {
		t.Skip("boots five systemd hosts: run with -hosts or GEORAFT_TEST_HOSTS=1 (make test-hosts)")
	}
	ansiblePlaybook(t)
	if err := hostlab.Missing(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Minute)
	if d, ok := t.Deadline(); ok && d.Add(-time.Minute).Before(deadline) {
		deadline = d.Add(-time.Minute)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	phase := phaseTimer(t)

	dir := t.TempDir()
	bins := buildLinuxBinaries(t, ctx, dir)
	phase("build the binaries")
	image, err := hostlab.EnsureImage(ctx, hostsImageCache, "", t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	phase("root filesystem (cached under build/hosts)")
	lab, err := hostlab.Start(ctx, hostlab.Options{Prefix: hostsPrefix, Subnet: hostsSubnet, Image: image,
		Dir: filepath.Join(dir, "lab"), Hosts: len(defaultRegions), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("hostlab cleanup: %v", err)
		}
	})
	phase("boot five hosts to multi-user.target")
	hosts := make([]realHost, len(lab.Hosts))
	for i, h := range lab.Hosts {
		hosts[i] = realHost{Host: h, id: uint64(i + 1), region: defaultRegions[i]}
	}
	stopNTP := serveSNTP(t, netip.AddrPortFrom(lab.BridgeAddr, 123))
	t.Cleanup(stopNTP)

	pki := filepath.Join(dir, "pki")
	certsArgs := []string{"certs", "--out", pki, "--client", "admin"}
	for _, h := range hosts {
		certsArgs = append(certsArgs, "--node", fmt.Sprintf("%d=%s,%s", h.id, h.Addr, h.Name))
	}
	if out, err := exec.CommandContext(ctx, bins.georaftd, certsArgs...).CombinedOutput(); err != nil {
		t.Fatalf("georaftd certs: %v\n%s", err, out)
	}
	tlsCfg, err := tlsutil.ClientConfig(filepath.Join(pki, "ca.crt"), filepath.Join(pki, "client-admin.crt"),
		filepath.Join(pki, "client-admin.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	creds := grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg))
	inv := writeRealHostsInventory(t, dir, lab, hosts)
	vars := writeVarsFile(t, dir, map[string]any{
		"georaft_binary_src":        bins.georaftd,
		"georaft_client_binary_src": bins.georaft,
		"georaft_tls_src_dir":       pki,
		// The hosts' clocks are this machine's: chronyd measures against the test's
		// SNTP server on the bridge and cannot (and must not) set the clock.
		"georaft_chrony_servers":        []string{lab.BridgeAddr.String()},
		"georaft_chrony_clock_control":  false,
		"georaft_chrony_waitsync_tries": 60,
		// Debian's mirror is out of the hosts' reach; node_exporter is not in the image.
		"georaft_node_exporter_manage": false,
		// Ansible's default on the hosts (the test's own temp path suits only local runs).
		"ansible_remote_tmp": "~/.ansible/tmp",
	})
	playbook := func(name string, extra ...string) (string, error) {
		args := append([]string{"-i", inv, "-e", "@" + vars, name}, extra...)
		return runAnsible(t, ctx, dir, args...)
	}
	journals := func() string { return realHostJournals(ctx, hosts) }

	// First deployment.
	first, err := playbook("site.yml")
	if err != nil {
		t.Fatalf("first site.yml: %v\n%s\n%s", err, first, journals())
	}
	for host, changed := range parseRecap(t, first) {
		if changed == 0 {
			t.Errorf("the first site.yml changed nothing on %s", host)
		}
	}
	phase("site.yml: first deployment")
	release := make([]string, len(hosts))
	for i, h := range hosts {
		checkRealHostInstall(t, ctx, h)
		release[i] = h.root(t, ctx, "readlink /opt/georaft/current")
	}
	leader := waitForLeaderAmong(t, ctx, kvNodes(hosts), creds, journals)
	kv := kvClient(t, leader.addr, creds)
	setKey(t, ctx, kv, "deployed-by", "ansible on systemd hosts")
	for _, mode := range []georaftv1.ReadMode{georaftv1.ReadMode_READ_MODE_LEASE, georaftv1.ReadMode_READ_MODE_INDEX} {
		checkKey(t, ctx, kv, "deployed-by", "ansible on systemd hosts", mode)
	}
	checkRefused(t, ctx, leader.addr, insecure.NewCredentials(), "a plaintext client")
	caOnly, err := tlsutil.ClientConfig(filepath.Join(pki, "ca.crt"), "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	checkRefused(t, ctx, leader.addr, credentials.NewTLS(caOnly), "a client with the CA and no certificate")
	phase("leader, writes and reads over TLS")

	// A second run changes nothing.
	running := func() string { return fmt.Sprint(mainPIDs(t, ctx, hosts)) }
	checkRerunChangesNothing(t, "the second site.yml", 5, func() (string, error) { return playbook("site.yml") }, running, journals)
	phase("site.yml again: changed=0")

	// Rolling upgrade onto a new build: followers first, the leader last, after it handed
	// leadership away.
	leaderBefore := waitForLeaderAmong(t, ctx, kvNodes(hosts), creds, journals)
	upgrade, err := playbook("upgrade.yml", "-e", "georaft_binary_src="+bins.georaftdV2)
	if err != nil {
		t.Fatalf("upgrade.yml: %v\n%s\n%s", err, upgrade, journals())
	}
	started := map[string]int64{}
	var lastStarted string
	for i, h := range hosts {
		if now := h.root(t, ctx, "readlink /opt/georaft/current"); now == release[i] {
			t.Errorf("%s still runs %s after the upgrade", h.Name, now)
		}
		started[h.Name] = mainStartMonotonic(t, ctx, h)
		if lastStarted == "" || started[h.Name] > started[lastStarted] {
			lastStarted = h.Name
		}
	}
	if lastStarted != leaderBefore.name {
		t.Errorf("the upgrade restarted %s last; the leader before it was %s (restart times %v)", lastStarted, leaderBefore.name, started)
	}
	transfers := regexp.MustCompile(`TASK \[georaft : Transfer leadership \(georaft transfer-leader\)\] \**\s+changed: \[(\S+)\]`).FindAllStringSubmatch(upgrade, -1)
	if n := len(transfers); n != 1 || transfers[0][1] != leaderBefore.name {
		t.Errorf("upgrade.yml ran transfer-leader on %v, want once, on the leader %s:\n%s", transfers, leaderBefore.name, upgrade)
	}
	leader = waitForLeaderAmong(t, ctx, kvNodes(hosts), creds, journals)
	kv = kvClient(t, leader.addr, creds)
	checkKey(t, ctx, kv, "deployed-by", "ansible on systemd hosts", georaftv1.ReadMode_READ_MODE_INDEX)
	phase("upgrade.yml: followers first, leader last")

	// A binary that cannot start: the first node is rolled back and the rollout stops.
	upgraded := make([]string, len(hosts))
	for i, h := range hosts {
		upgraded[i] = h.root(t, ctx, "readlink /opt/georaft/current")
	}
	pids := mainPIDs(t, ctx, hosts)
	bad, err := playbook("upgrade.yml", "-e", "georaft_binary_src="+bins.broken, "-e", "georaft_health_retries=8")
	if err == nil {
		t.Fatalf("upgrade.yml onto a binary that cannot start succeeded:\n%s", bad)
	}
	rolledBack := regexp.MustCompile(`(grk-h\d+) failed its health check on /opt/georaft/releases/\w+ \(.*?\), so it was rolled back to (/opt/georaft/releases/\w+)`)
	m := rolledBack.FindStringSubmatch(strings.Join(strings.Fields(bad), " "))
	if m == nil {
		t.Fatalf("upgrade.yml onto a broken binary did not report a rollback:\n%s", bad)
	}
	afterPIDs := mainPIDs(t, ctx, hosts)
	for i, h := range hosts {
		if now := h.root(t, ctx, "readlink /opt/georaft/current"); now != upgraded[i] {
			t.Errorf("%s runs %s after the failed upgrade, want %s", h.Name, now, upgraded[i])
		}
		if state := h.root(t, ctx, "systemctl is-active georaft || true"); state != "active" {
			t.Errorf("%s: georaft is %s after the rollback", h.Name, state)
		}
		if h.Name != m[1] && afterPIDs[i] != pids[i] {
			t.Errorf("%s was restarted although the rollout stopped at %s", h.Name, m[1])
		}
	}
	if m[2] != upgraded[slicesIndex(hosts, m[1])] {
		t.Errorf("%s was rolled back to %s, want the release it ran, %s", m[1], m[2], upgraded[slicesIndex(hosts, m[1])])
	}
	leader = waitForLeaderAmong(t, ctx, kvNodes(hosts), creds, journals)
	kv = kvClient(t, leader.addr, creds)
	setKey(t, ctx, kv, "after-rollback", "served")
	phase("upgrade.yml onto a broken binary: rolled back")

	// A wiped data disk on a follower: the role refuses it and the unit will not start.
	var victim realHost
	for _, h := range hosts {
		if h.id != leader.id {
			victim = h
			break
		}
	}
	victim.root(t, ctx, "systemctl stop georaft && umount /var/lib/georaft && wipefs --all --quiet "+hostlab.DataDevice)
	refused, err := playbook("site.yml")
	if err == nil {
		t.Fatalf("site.yml started a member of the cluster on a blank disk:\n%s", refused)
	}
	flat := strings.Join(strings.Fields(refused), " ")
	for _, want := range []string{
		victim.Name + " (node " + strconv.FormatUint(victim.id, 10) + ", " + victim.region + "): its data disk " + hostlab.DataDevice + " is blank",
		"make cluster-replace-node REGION=" + victim.region,
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("site.yml on a blank disk did not say %q:\n%s", want, refused)
		}
	}
	if fs := victim.root(t, ctx, "blkid -o value -s TYPE "+hostlab.DataDevice+" || true"); fs != "" {
		t.Errorf("site.yml formatted the blank disk of a member of an initialised cluster (%s)", fs)
	}
	if out, err := victim.Run(ctx, "sudo systemctl start georaft"); err == nil {
		t.Errorf("georaft.service started on %s without its data disk:\n%s", victim.Name, out)
	}
	if state := victim.root(t, ctx, "systemctl is-active georaft || true"); state == "active" {
		t.Errorf("georaft runs on %s with a blank data disk", victim.Name)
	}
	var rest []kvNode
	for _, h := range hosts {
		if h.id != victim.id {
			rest = append(rest, h.kv())
		}
	}
	leader = waitForLeaderAmong(t, ctx, rest, creds, journals)
	checkKey(t, ctx, kvClient(t, leader.addr, creds), "after-rollback", "served", georaftv1.ReadMode_READ_MODE_LEASE)
	phase("blank data disk refused")

	// The replace flow's Ansible part, as make cluster-replace-node runs it once it has
	// removed the old member (the new node takes its address) and Terraform has given the VM
	// its new disk: the inventory names the host as new member 6 joining in
	// the old member's place, with its certificate and the timing's placement renamed by the
	// kit's own code. The role formats the blank disk (the host joins), georaftd joins as a
	// learner, catches up and takes the old member's place in one change.
	const newID = 6
	vi := slicesIndex(hosts, victim.Name)
	oldID := victim.id
	hosts[vi].id, hosts[vi].replaces = newID, oldID
	if out, err := exec.CommandContext(ctx, bins.georaftd, "certs", "--renew", "--out", pki, "--node",
		fmt.Sprintf("%d=%s,%s", newID, victim.Addr, victim.Name)).CombinedOutput(); err != nil {
		t.Fatalf("georaftd certs for member %d: %v\n%s", newID, err, out)
	}
	inv = writeRealHostsInventory(t, dir, lab, hosts)
	timing, err := os.ReadFile(timingVarsFile)
	if err != nil {
		t.Fatal(err)
	}
	renamed, _, err := nodechange.RenamePlacement(timing, oldID, newID, victim.region)
	if err != nil {
		t.Fatal(err)
	}
	timingVars := filepath.Join(dir, "timing-after-replace.yml")
	if err := os.WriteFile(timingVars, renamed, 0o644); err != nil {
		t.Fatal(err)
	}
	var others []realHost
	for _, h := range hosts {
		if h.Name != victim.Name {
			others = append(others, h)
		}
	}
	// make cluster-replace-node removes the old member first: the new node has its address.
	removeMember(t, ctx, others[0].client(), creds, oldID, journals)
	joined, err := playbook("site.yml", "--limit", victim.Name, "-e", "@"+timingVars)
	if err != nil {
		t.Fatalf("site.yml joining %s as member %d: %v\n%s\n%s", victim.Name, newID, err, joined, journals())
	}
	waitMemberReplaced(t, ctx, others[0].client(), creds, oldID, newID, journals)
	if marker := hosts[vi].root(t, ctx, "cat /var/lib/georaft/georaft-member.yml"); !strings.Contains(marker, "node_id: 6") {
		t.Errorf("%s's new disk is marked %q, want node 6", victim.Name, marker)
	}
	waitForKeyOn(t, ctx, kvClient(t, hosts[vi].client(), creds), "after-rollback", "served")
	phase(fmt.Sprintf("replace: the blank disk joined as member %d in member %d's place", newID, oldID))

	checkRerunChangesNothing(t, "the second site.yml on the replaced host", 1, func() (string, error) {
		return playbook("site.yml", "--limit", victim.Name, "-e", "@"+timingVars)
	}, running, journals)
	phase("site.yml again on the replaced host: changed=0")
}

type linuxBinaries struct{ georaftd, georaftdV2, georaft, broken string }

// buildLinuxBinaries builds static georaftd and georaft as make cluster-build does, a second
// georaftd that differs only in its version (the upgrade), and a "georaftd" that cannot start.
func buildLinuxBinaries(t *testing.T, ctx context.Context, dir string) linuxBinaries {
	t.Helper()
	b := linuxBinaries{georaftd: filepath.Join(dir, "v1/georaftd"), georaftdV2: filepath.Join(dir, "v2/georaftd"),
		georaft: filepath.Join(dir, "v1/georaft"), broken: filepath.Join(dir, "broken/georaftd")}
	for _, build := range [][]string{
		{"-o", b.georaftd, "./node/cmd/georaftd"},
		{"-o", b.georaft, "./client/cmd/georaft"},
		{"-ldflags", "-X github.com/georaft/georaft/node.Version=grk-v2", "-o", b.georaftdV2, "./node/cmd/georaftd"},
	} {
		cmd := exec.CommandContext(ctx, goTool(), append([]string{"build", "-trimpath"}, build...)...)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", build, err, out)
		}
	}
	if err := os.MkdirAll(filepath.Dir(b.broken), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.broken, []byte("#!/bin/sh\necho 'georaftd: this build is broken' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return b
}

// writeRealHostsInventory writes the inventory georaft-inventory makes for these hosts: a
// cluster as Terraform would report it, the host keys as the guest attributes would publish
// them, pinned in a known_hosts file.
func writeRealHostsInventory(t *testing.T, dir string, lab *hostlab.Lab, hosts []realHost) string {
	t.Helper()
	c := inventory.Cluster{ClusterID: "grk-hosts", SSHUser: hostlab.AdminUser, DataDevice: hostlab.DataDevice,
		PeerPort: 7100, ClientPort: 7200, MetricsPort: 7300, SSHMode: inventory.SSHMetadata}
	attrs := filepath.Join(dir, "guest-attributes")
	if err := os.MkdirAll(attrs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		c.Nodes = append(c.Nodes, inventory.Node{ID: h.id, Name: h.Name, Region: h.region, Zone: h.region + "-b",
			InternalIP: h.Addr.String(), Joined: h.replaces != 0, Replaces: h.replaces})
		typ, value, _ := strings.Cut(h.HostKey, " ")
		data, err := json.Marshal([]inventory.GuestAttribute{{Namespace: "hostkeys", Key: typ, Value: value}})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(attrs, h.Name+".json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	known, err := c.KnownHosts(attrs)
	if err != nil {
		t.Fatal(err)
	}
	knownPath := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(knownPath, known, 0o644); err != nil {
		t.Fatal(err)
	}
	inv, err := c.Inventory(inventory.Options{UseInternalIPs: true, SSHPrivateKeyFile: lab.KeyFile, KnownHostsFile: knownPath})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "inventory.yml")
	if err := os.WriteFile(path, inv, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeVarsFile(t *testing.T, dir string, vars map[string]any) string {
	t.Helper()
	data, err := yaml.Marshal(vars)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "vars.yml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkRealHostInstall checks what site.yml left on a host: the data disk formatted, mounted
// and marked, the release behind the symlink, the unit running as the service user, chrony
// synchronised, the node key readable only by root and the service group, metrics on the
// internal address only.
func checkRealHostInstall(t *testing.T, ctx context.Context, h realHost) {
	t.Helper()
	if src := h.root(t, ctx, "findmnt --noheadings --output SOURCE,FSTYPE /var/lib/georaft"); !strings.HasSuffix(src, " ext4") {
		t.Errorf("%s: /var/lib/georaft is mounted from %q, want the ext4 data disk", h.Name, src)
	}
	marker := h.root(t, ctx, "cat /var/lib/georaft/georaft-member.yml")
	if !strings.Contains(marker, "node_id: "+strconv.FormatUint(h.id, 10)) || !strings.Contains(marker, `cluster_id: "grk-hosts"`) {
		t.Errorf("%s: membership marker:\n%s", h.Name, marker)
	}
	if cur := h.root(t, ctx, "readlink /opt/georaft/current"); !regexp.MustCompile(`^/opt/georaft/releases/[0-9a-f]{12}$`).MatchString(cur) {
		t.Errorf("%s: /opt/georaft/current -> %q, want a release directory", h.Name, cur)
	}
	if user := h.root(t, ctx, "ps -o user= -p $(systemctl show -p MainPID --value georaft)"); user != "georaft" {
		t.Errorf("%s: georaftd runs as %q, want georaft", h.Name, user)
	}
	if enabled := h.root(t, ctx, "systemctl is-enabled georaft"); enabled != "enabled" {
		t.Errorf("%s: georaft.service is %s", h.Name, enabled)
	}
	if tracking := h.root(t, ctx, "chronyc -n tracking"); !strings.Contains(tracking, "Leap status     : Normal") {
		t.Errorf("%s: chrony is not synchronised:\n%s", h.Name, tracking)
	}
	if mode := h.root(t, ctx, "stat -c '%a %U:%G' /etc/georaft/tls/node.key"); mode != "640 root:georaft" {
		t.Errorf("%s: node key is %s, want 640 root:georaft", h.Name, mode)
	}
	listen := h.root(t, ctx, "ss -Hltn sport = :7300")
	if !strings.Contains(listen, h.Addr.String()+":7300") || strings.Contains(listen, "0.0.0.0:7300") || strings.Contains(listen, "*:7300") {
		t.Errorf("%s: metrics listen on %q, want the internal address only", h.Name, listen)
	}
	resp, err := http.Get("http://" + net.JoinHostPort(h.Addr.String(), "7300") + "/metrics")
	if err != nil {
		t.Errorf("%s: /metrics: %v", h.Name, err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "georaft_tls_certificate_expiry_timestamp_seconds") {
		t.Errorf("%s: /metrics lacks the certificate expiry", h.Name)
	}
}

func kvNodes(hosts []realHost) []kvNode {
	out := make([]kvNode, len(hosts))
	for i, h := range hosts {
		out[i] = h.kv()
	}
	return out
}

func slicesIndex(hosts []realHost, name string) int {
	for i, h := range hosts {
		if h.Name == name {
			return i
		}
	}
	return -1
}

func kvClient(t *testing.T, addr string, creds grpc.DialOption) georaftv1.KVServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, creds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return georaftv1.NewKVServiceClient(conn)
}

func setKey(t *testing.T, ctx context.Context, kv georaftv1.KVServiceClient, key, value string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := kv.Set(c, &georaftv1.SetRequest{Key: []byte(key), Value: []byte(value),
		Session: &georaftv1.WriteSession{ClientId: uint64(time.Now().UnixNano()) | 1, Sequence: 1}}); err != nil {
		t.Fatalf("SET %s: %v", key, err)
	}
}

func checkKey(t *testing.T, ctx context.Context, kv georaftv1.KVServiceClient, key, want string, mode georaftv1.ReadMode) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	got, err := kv.Get(c, &georaftv1.GetRequest{Key: []byte(key), ReadMode: mode})
	if err != nil {
		t.Fatalf("GET %s (%v): %v", key, mode, err)
	}
	if !got.GetFound() || string(got.GetValue()) != want {
		t.Errorf("GET %s (%v) = found %v %q, want %q", key, mode, got.GetFound(), got.GetValue(), want)
	}
}

// checkRefused fails unless a Status call with these credentials is refused.
func checkRefused(t *testing.T, ctx context.Context, addr string, creds credentials.TransportCredentials, who string) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := georaftv1.NewKVServiceClient(conn).Status(c, &georaftv1.StatusRequest{}); err == nil {
		t.Errorf("%s got an answer from %s", who, addr)
	}
}

func mainPIDs(t *testing.T, ctx context.Context, hosts []realHost) []string {
	t.Helper()
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = h.root(t, ctx, "systemctl show -p MainPID --value georaft")
	}
	return out
}

// mainStartMonotonic is when the unit's main process started, on the monotonic clock the
// hosts share with this machine (containers share the kernel), so hosts compare.
func mainStartMonotonic(t *testing.T, ctx context.Context, h realHost) int64 {
	t.Helper()
	v, err := strconv.ParseInt(h.root(t, ctx, "systemctl show -p ExecMainStartTimestampMonotonic --value georaft"), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", h.Name, err)
	}
	return v
}

func realHostJournals(ctx context.Context, hosts []realHost) string {
	var b strings.Builder
	for _, h := range hosts {
		out, err := h.Run(ctx, "sudo journalctl -u georaft -u chrony --no-pager -n 25")
		fmt.Fprintf(&b, "--- %s (journal, last lines; %v)\n%s\n", h.Name, err, out)
	}
	return b.String()
}

// phaseTimer logs how long each phase took, and the total.
func phaseTimer(t *testing.T) func(string) {
	start := time.Now()
	last := start
	return func(name string) {
		now := time.Now()
		t.Logf("timing: %-45s %6.1fs (total %6.1fs)", name, now.Sub(last).Seconds(), now.Sub(start).Seconds())
		last = now
	}
}

// serveSNTP answers NTP client requests on addr with this machine's clock, as a stratum 1
// server, so chrony on the hosts has a source to synchronise with (measure against) without
// leaving the bridge. It returns a function that stops it.
func serveSNTP(t *testing.T, addr netip.AddrPort) func() {
	t.Helper()
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatalf("NTP server on %v: %v", addr, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Logf("NTP server: %v", err)
				}
				return
			}
			if n < 48 || buf[0]&7 != 3 { // client mode only
				continue
			}
			received := ntpTime(time.Now())
			var resp [48]byte
			resp[0] = 0<<6 | (buf[0]>>3&7)<<3 | 4            // no leap warning, the client's version, server mode
			resp[1] = 1                                      // stratum 1
			resp[2] = buf[2]                                 // poll
			resp[3] = 0xec                                   // precision 2^-20 s
			binary.BigEndian.PutUint32(resp[8:], 1<<16/1000) // root dispersion 1ms
			copy(resp[12:16], "GRK\x00")
			binary.BigEndian.PutUint64(resp[16:], received)
			copy(resp[24:32], buf[40:48]) // originate = the client's transmit timestamp
			binary.BigEndian.PutUint64(resp[32:], received)
			binary.BigEndian.PutUint64(resp[40:], ntpTime(time.Now()))
			_, _ = conn.WriteToUDPAddrPort(resp[:], from)
		}
	}()
	return func() {
		conn.Close()
		<-done
	}
}

// ntpTime is t as a 64-bit NTP timestamp: seconds since 1900 and a binary fraction.
func ntpTime(t time.Time) uint64 {
	const unixToNTP = 2208988800
	secs := uint64(t.Unix() + unixToNTP)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}
