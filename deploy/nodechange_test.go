package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/georaft/georaft/deploy/nodechange"
)

// nodeChangeLab runs make cluster-replace-node, cluster-add-node and cluster-remove-node as
// shipped, against stand-ins that record every call: a terraform whose outputs are files
// (apply moves the "after" outputs in place, state rm forgets the disk), a gcloud that knows
// the disks and the snapshots made, a georaft client that answers `member list -o json` from
// a file and changes it as the cluster would (member remove; the joined node's site.yml), an
// ansible-playbook, and a `georaftd certs`. cluster-inventory and cluster-monitoring, proven
// elsewhere, only record that they ran.
type nodeChangeLab struct {
	t                     *testing.T
	dir, state, calls     string
	mk, makefile          string
	tfDir, ansibleDir     string
	clusterDir, pki       string
	creds                 string
	fakes                 map[string]string
	record, journal, tmng string
}

func newNodeChangeLab(t *testing.T) *nodeChangeLab {
	t.Helper()
	dir := t.TempDir()
	l := &nodeChangeLab{t: t, dir: dir, state: filepath.Join(dir, "state"), calls: filepath.Join(dir, "calls.log"),
		tfDir: filepath.Join(dir, "tf"), ansibleDir: filepath.Join(dir, "ansible"), clusterDir: filepath.Join(dir, "cluster"),
		creds: filepath.Join(dir, "key.json"), fakes: map[string]string{}}
	l.pki = filepath.Join(l.clusterDir, "pki")
	l.record = filepath.Join(l.tfDir, "membership.auto.tfvars.json")
	l.journal = filepath.Join(l.clusterDir, "node-change.json")
	l.tmng = filepath.Join(l.ansibleDir, "group_vars/georaft/timing.yml")
	l.mk, l.makefile = clusterMakefile(t, dir)
	stub := func(target string) string { return target + ":\n\t@echo 'make " + target + "' >> " + l.calls + "\n" }
	if err := os.WriteFile(l.makefile, []byte("include "+abs(t, "cluster.mk")+"\n"+stub("cluster-inventory")+stub("cluster-monitoring")), 0o644); err != nil {
		t.Fatal(err)
	}
	timing, err := os.ReadFile(timingVarsFile)
	if err != nil {
		t.Fatal(err)
	}
	for path, content := range map[string]string{filepath.Join(l.tfDir, "terraform.tfvars"): "project_id = \"georaft-prod-4471\"\n",
		l.creds: "{}", filepath.Join(l.pki, "ca.crt"): "the cluster's CA", l.tmng: string(timing),
		filepath.Join(l.state, "has-disk"): ""} {
		l.write(path, content)
	}
	// The stand-ins. $S is the state directory; every call is logged first.
	l.fake("terraform", `case "$*" in
  *'output -json nodes') echo '{}' ;;
  *'output -json') cat "$S/output.json" ;;
  *'init -input=false') ;;
  *'state list '*) [ -e "$S/has-disk" ] && echo "$4" ;;
  *'state rm '*) rm "$S/has-disk" ;;
  *' apply '*) [ -n "$FAIL_APPLY" ] && { echo 'Error: quota exceeded' >&2; exit 1; }; [ -e "$S/output-after.json" ] && mv "$S/output-after.json" "$S/output.json"; : ;;
  *) echo "unexpected terraform $*" >&2; exit 1 ;;
esac`)
	l.fake("gcloud", `case "$*" in
  'compute disks describe '*) echo "$4" ;;
  'compute snapshots describe '*) [ -e "$S/snapshot-$4" ] || { echo "ERROR: The resource 'snapshots/$4' was not found" >&2; exit 1; } ;;
  'compute snapshots create '*) touch "$S/snapshot-$4" ;;
  *) echo "unexpected gcloud $*" >&2; exit 1 ;;
esac`)
	l.fake("georaft", `while [ $# -gt 0 ]; do case "$1" in --endpoints|--cacert|--cert|--key|-o) shift 2 ;; *) break ;; esac; done
case "$*" in
  'member list') [ -e "$S/down" ] && { echo 'Error: no member answered at any endpoint' >&2; exit 3; }; cat "$S/members.json" ;;
  'member remove '*) sed "s/\"id\":$3,\"role\":\"voter\"/\"id\":$3,\"role\":\"removed\"/" "$S/members.json" > "$S/m" && mv "$S/m" "$S/members.json"; echo "removed $3" ;;
  'transfer-leader --to '*) sed "s/\"leader_id\":[0-9]*/\"leader_id\":$3/" "$S/members.json" > "$S/m" && mv "$S/m" "$S/members.json" ;;
  *) echo "unexpected georaft $*" >&2; exit 1 ;;
esac`)
	// site.yml on the joining host: the node joins, and the cluster applies what it asked.
	l.fake("ansible-playbook", `[ -n "$FAIL_PLAYBOOK" ] && { echo 'fatal: [host]: UNREACHABLE!' >&2; exit 4; }
[ -e "$S/members-after.json" ] && mv "$S/members-after.json" "$S/members.json"; :`)
	l.fake("georaftd-certs", `while [ $# -gt 0 ]; do case "$1" in --out) out=$2; shift 2 ;; --node) node=$2; shift 2 ;; *) shift ;; esac; done
echo issued > "$out/node-${node%%=*}.crt"`)
	return l
}

func (l *nodeChangeLab) write(path, content string) {
	l.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		l.t.Fatal(err)
	}
}

func (l *nodeChangeLab) fake(name, body string) {
	path := filepath.Join(l.dir, "bin", name)
	l.write(path, "#!/bin/sh\nS="+l.state+"\necho \""+name+" $*\" >> "+l.calls+"\n"+body+"\n")
	if err := os.Chmod(path, 0o755); err != nil {
		l.t.Fatal(err)
	}
	l.fakes[name] = path
}

// outputs writes Terraform's outputs now (the fixture, changed by edit) and, if after is
// not nil, the ones the next apply leaves.
func (l *nodeChangeLab) outputs(edit, after func(nodes, disks map[string]map[string]any)) {
	l.t.Helper()
	for name, f := range map[string]func(nodes, disks map[string]map[string]any){"output.json": edit, "output-after.json": after} {
		if f == nil {
			os.Remove(filepath.Join(l.state, name))
			continue
		}
		data, err := os.ReadFile(tfOutputJSON)
		if err != nil {
			l.t.Fatal(err)
		}
		var out map[string]map[string]any
		if err := json.Unmarshal(data, &out); err != nil {
			l.t.Fatal(err)
		}
		nodes, disks := map[string]map[string]any{}, map[string]map[string]any{}
		for k, v := range out["nodes"]["value"].(map[string]any) {
			nodes[k] = v.(map[string]any)
		}
		for k, v := range out["data_disks"]["value"].(map[string]any) {
			disks[k] = v.(map[string]any)
		}
		f(nodes, disks)
		out["nodes"]["value"], out["data_disks"]["value"] = nodes, disks
		data, err = json.Marshal(out)
		if err != nil {
			l.t.Fatal(err)
		}
		l.write(filepath.Join(l.state, name), string(data))
	}
}

// members writes what `georaft member list -o json` answers now and after site.yml.
func (l *nodeChangeLab) members(leader uint64, now, after string) {
	l.t.Helper()
	doc := func(rows string) string {
		var ms []string
		for _, r := range strings.Fields(rows) {
			id, role, _ := strings.Cut(r, ":")
			ms = append(ms, fmt.Sprintf(`{"id":%s,"role":"%s"}`, id, role))
		}
		return fmt.Sprintf(`{"ok":true,"op":"member list","cluster_id":"georaft","leader_id":%d,"members":[%s]}`, leader, strings.Join(ms, ","))
	}
	l.write(filepath.Join(l.state, "members.json"), doc(now))
	if after == "" {
		os.Remove(filepath.Join(l.state, "members-after.json"))
	} else {
		l.write(filepath.Join(l.state, "members-after.json"), doc(after))
	}
}

// run runs a target and returns its output and the calls it made, each reduced to the
// stand-in's name and arguments.
func (l *nodeChangeLab) run(target string, env []string, vars ...string) (string, []string, error) {
	l.t.Helper()
	os.Remove(l.calls)
	args := append([]string{"--no-print-directory", "-C", "..", "-f", l.makefile, target, "TERRAFORM=" + l.fakes["terraform"],
		"GCLOUD=" + l.fakes["gcloud"], "ANSIBLE_PLAYBOOK=" + l.fakes["ansible-playbook"], "TF_DIR=" + l.tfDir,
		"ANSIBLE_DIR=" + l.ansibleDir, "CLUSTER_DIR=" + l.clusterDir, "CLUSTER_CERTS_RENEW_CMD=" + l.fakes["georaftd-certs"],
		"PIN_HOST_KEYS=0", "NODE_WAIT=20s"}, vars...)
	cmd := exec.Command(l.mk, append(args, "CLUSTER_CLIENT="+l.fakes["georaft"])...)
	cmd.Env = append(os.Environ(), append([]string{"GOOGLE_APPLICATION_CREDENTIALS=" + l.creds}, env...)...)
	out, err := cmd.CombinedOutput()
	data, _ := os.ReadFile(l.calls)
	var calls []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		f[0] = filepath.Base(f[0])
		calls = append(calls, strings.Join(f, " "))
	}
	return string(out), calls, err
}

// steps reduces calls to what they did, dropping the reads every target starts with.
func steps(calls []string) string {
	var out []string
	for _, c := range calls {
		f := strings.Fields(c)
		switch {
		case strings.HasSuffix(c, "output -json nodes"), strings.HasSuffix(c, "output -json"):
		case f[0] == "georaft":
			i := 1
			for i < len(f) && strings.HasPrefix(f[i], "-") {
				i += 2
			}
			out = append(out, "georaft "+strings.Join(f[i:], " "))
		case f[0] == "terraform":
			out = append(out, "terraform "+strings.Join(f[2:], " "))
		case f[0] == "gcloud":
			out = append(out, strings.Join(f[:min(len(f), 5)], " "))
		case f[0] == "ansible-playbook":
			out = append(out, "ansible-playbook "+strings.Join(f[len(f)-3:], " "))
		case f[0] == "georaftd-certs":
			out = append(out, "certs "+strings.Join(f[1:], " "))
		default:
			out = append(out, c)
		}
	}
	return strings.Join(out, "\n")
}

func (l *nodeChangeLab) readRecord() nodechange.Record {
	l.t.Helper()
	r, err := nodechange.LoadRecord(l.record)
	if err != nil {
		l.t.Fatal(err)
	}
	return r
}

// replacedWest is the fixture after us-west1's node was replaced by member 6 on a new disk.
func replacedWest(nodes, disks map[string]map[string]any) {
	nodes["georaft-3"]["id"], nodes["georaft-3"]["joined"], nodes["georaft-3"]["replaces"] = 6, true, 3
	disks["georaft-3"]["name"] = "georaft-3-data-g3"
}

// make cluster-replace-node REGION=us-west1 on a cluster whose us-west1 node leads: it
// snapshots the old disk, takes it out of Terraform's state, records the new member id and
// disk generation, removes the old member (the new node takes its reserved address, and the
// cluster takes no second member at a member's peer address; a leader hands over first),
// recreates only that instance, issues the new id's certificate, renames the id in the tuned
// timing, runs site.yml on that host alone and waits until the new member votes; the old id
// is never used again.
func TestClusterReplaceNode(t *testing.T) {
	l := newNodeChangeLab(t)
	l.write(l.record, `{"data_disk_generation": {"us-west1": 2}}`)
	l.outputs(func(n, d map[string]map[string]any) {}, replacedWest)
	l.members(3, "1:voter 2:voter 3:voter 4:voter 5:voter", "1:voter 2:voter 3:removed 4:voter 5:voter 6:voter")
	out, calls, err := l.run("cluster-replace-node", nil, "REGION=us-west1")
	if err != nil {
		t.Fatalf("make cluster-replace-node: %v\n%s", err, out)
	}
	want := []string{
		"georaft member list",
		"gcloud compute disks describe georaft-3-data-g2",
		`gcloud compute snapshots describe georaft-3-data-g2-replaced-\d{8}-\d{6}`,
		`gcloud compute snapshots create georaft-3-data-g2-replaced-\d{8}-\d{6}`,
		`terraform state list google_compute_disk.data\["us-west1"\]`,
		`terraform state rm google_compute_disk.data\["us-west1"\]`,
		"georaft member remove 3",
		"georaft member list",
		`terraform apply -input=false -replace=google_compute_instance.node\["us-west1"\]`,
		"make cluster-inventory",
		"certs --renew --out " + regexp.QuoteMeta(l.pki) + " --node 6=10.42.2.2,34.105.117.52,georaft-3",
		"ansible-playbook site.yml --limit georaft-3",
		"georaft member list",
	}
	if got := steps(calls); !regexp.MustCompile("^" + strings.Join(want, "\n") + "$").MatchString(got) {
		t.Errorf("cluster-replace-node ran\n%s\nwant\n%s\noutput:\n%s", got, strings.Join(want, "\n"), out)
	}
	for _, c := range calls {
		if strings.HasPrefix(c, "gcloud compute snapshots create") && !strings.Contains(c, "--source-disk=georaft-3-data-g2 --source-disk-zone=us-west1-b") {
			t.Errorf("the snapshot is not of the old disk in its zone: %s", c)
		}
	}
	r := l.readRecord()
	if r.DataDiskGeneration["us-west1"] != 3 || r.MemberIDs["us-west1"] != 6 || r.ReplacedMemberIDs["us-west1"] != 3 ||
		fmt.Sprint(r.RetiredMemberIDs) != "[3]" || len(r.DataDiskGeneration) != 1 || len(r.MemberIDs) != 1 {
		t.Errorf("record after the replace: %+v; want us-west1 alone at generation 3, member 6 replacing 3, 3 retired", r)
	}
	timing, err := os.ReadFile(l.tmng)
	if err != nil {
		t.Fatal(err)
	}
	placement, err := nodechange.TimingPlacement(timing)
	if err != nil || nodechange.FormatPlacement(placement) != "1=us-central1,2=us-east1,4=europe-west1,5=asia-east1,6=us-west1" {
		t.Errorf("timing placement after the replace: %v (%v)", placement, err)
	}
	if _, err := os.Stat(filepath.Join(l.pki, "node-6.crt")); err != nil {
		t.Errorf("no certificate for member 6: %v", err)
	}
	if _, err := os.Stat(l.journal); !os.IsNotExist(err) {
		t.Errorf("the journal outlived the finished replace (%v)", err)
	}
	if !strings.Contains(out, "done: member 6 serves us-west1 in place of member 3") {
		t.Errorf("cluster-replace-node did not say what it did:\n%s", out)
	}

	// The next replace of the region: a new id above every one used, the next generation.
	l.outputs(replacedWest, func(n, d map[string]map[string]any) {
		replacedWest(n, d)
		n["georaft-3"]["id"], n["georaft-3"]["replaces"] = 7, 6
		d["georaft-3"]["name"] = "georaft-3-data-g4"
	})
	l.write(filepath.Join(l.state, "has-disk"), "")
	l.members(1, "1:voter 2:voter 3:removed 4:voter 5:voter 6:voter", "1:voter 2:voter 3:removed 4:voter 5:voter 6:removed 7:voter")
	if out, calls, err := l.run("cluster-replace-node", nil, "REGION=us-west1"); err != nil || !strings.Contains(steps(calls), "georaft member remove 6\n") {
		t.Fatalf("second replace: %v (want member 6 removed)\n%s\n%s", err, steps(calls), out)
	}
	if r := l.readRecord(); r.MemberIDs["us-west1"] != 7 || r.DataDiskGeneration["us-west1"] != 4 || fmt.Sprint(r.RetiredMemberIDs) != "[3 6]" {
		t.Errorf("record after the second replace: %+v", r)
	}
}

// A replace that fails midway is finished by running it again: the steps done are not
// repeated (no second snapshot, state rm or apply, which would recreate the VM again), and
// no other change starts meanwhile.
func TestClusterReplaceNodeRerunsAfterAFailure(t *testing.T) {
	l := newNodeChangeLab(t)
	l.outputs(func(n, d map[string]map[string]any) {}, replacedWest)
	l.members(1, "1:voter 2:voter 3:voter 4:voter 5:voter", "1:voter 2:voter 3:removed 4:voter 5:voter 6:voter")
	out, _, err := l.run("cluster-replace-node", []string{"FAIL_PLAYBOOK=1"}, "REGION=us-west1")
	if err == nil || !strings.Contains(out, "fix that and run make cluster-replace-node REGION=us-west1 again: it goes on from this step") {
		t.Fatalf("a failing playbook: %v, want the rerun advice:\n%s", err, out)
	}
	out, calls, err := l.run("cluster-remove-node", nil, "REGION=europe-west1")
	if err == nil || !strings.Contains(out, "make cluster-replace-node REGION=us-west1 is unfinished") || len(steps(calls)) > 0 {
		t.Errorf("a remove during an unfinished replace: %v, ran %q:\n%s", err, steps(calls), out)
	}
	out, calls, err = l.run("cluster-replace-node", nil, "REGION=us-west1")
	if err != nil {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	if got, want := steps(calls), "georaft member list\nansible-playbook site.yml --limit georaft-3\ngeoraft member list"; got != want {
		t.Errorf("the rerun ran\n%s\nwant only what was left:\n%s", got, want)
	}
	if r := l.readRecord(); r.MemberIDs["us-west1"] != 6 || r.DataDiskGeneration["us-west1"] != 2 {
		t.Errorf("record after the rerun: %+v", r)
	}
}

// Every target refuses bad input before it changes anything, naming the problem.
func TestClusterNodeChangesRefuseBadInput(t *testing.T) {
	l := newNodeChangeLab(t)
	l.outputs(func(n, d map[string]map[string]any) {}, nil)
	for _, tc := range []struct {
		name, target, region string
		setup                func()
		env                  []string
		want                 string
	}{
		{"no region", "cluster-replace-node", "", nil, nil, "this target needs REGION=<region>"},
		{"unknown region", "cluster-replace-node", "mars-north1", nil, nil,
			`region "mars-north1" has no node of this cluster (its nodes are in us-central1, us-east1, us-west1, europe-west1, asia-east1); make cluster-add-node REGION=mars-north1`},
		{"cluster down", "cluster-replace-node", "us-west1", func() { l.write(filepath.Join(l.state, "down"), "") }, nil,
			"the cluster is not up: its members could not be listed"},
		{"no leader", "cluster-remove-node", "us-west1", func() { l.members(0, "1:voter 2:voter 3:voter 4:voter 5:voter", "") }, nil,
			"the cluster is not up: it has no leader"},
		{"tfvars sets a recorded variable", "cluster-replace-node", "us-west1",
			func() {
				l.write(filepath.Join(l.tfDir, "terraform.tfvars"), "project_id = \"x\"\ndata_disk_generation = { us-west1 = 2 }\n")
			}, nil,
			"sets data_disk_generation, which the kit keeps in"},
		{"old member removed already", "cluster-replace-node", "us-west1", func() { l.members(1, "1:voter 2:voter 3:removed 4:voter 5:voter", "") }, nil,
			"member 3 (georaft-3, us-west1) was removed from the cluster already"},
		{"add where a node is", "cluster-add-node", "us-east1", nil, nil,
			"region us-east1 has a node already (georaft-2, member 2): the kit runs one node per region"},
		{"add a bad region name", "cluster-add-node", "Europe", nil, nil, "REGION=Europe is not a Google Cloud region name"},
		{"add without timing for it", "cluster-add-node", "europe-west4", nil, nil,
			"make cluster-tune RTT=<matrix with europe-west4> PLACEMENT=1=us-central1,2=us-east1,3=us-west1,4=europe-west1,5=asia-east1,6=europe-west4"},
		{"remove below three voters", "cluster-remove-node", "us-west1", func() { l.members(1, "1:voter 2:voter 3:voter 4:removed 5:removed", "") }, nil,
			"removing member 3 (us-west1) would leave 2 voters: the kit keeps at least 3"},
		{"a change running now", "cluster-remove-node", "us-west1", func() {
			f, err := os.OpenFile(l.journal+".lock", os.O_CREATE|os.O_RDWR, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
		}, nil, "is running now on this machine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(filepath.Join(l.state, "down"))
			l.write(filepath.Join(l.tfDir, "terraform.tfvars"), "project_id = \"georaft-prod-4471\"\n")
			l.members(1, "1:voter 2:voter 3:voter 4:voter 5:voter", "")
			if tc.setup != nil {
				tc.setup()
			}
			out, calls, err := l.run(tc.target, tc.env, "REGION="+tc.region)
			if err == nil {
				t.Fatalf("make %s REGION=%s succeeded:\n%s", tc.target, tc.region, out)
			}
			if flat := strings.Join(strings.Fields(out), " "); !strings.Contains(flat, tc.want) {
				t.Errorf("make %s REGION=%s: want %q in\n%s", tc.target, tc.region, tc.want, out)
			}
			for _, c := range calls {
				if !strings.Contains(c, "output -json") && !strings.Contains(c, "member list") {
					t.Errorf("make %s REGION=%s ran %q before refusing", tc.target, tc.region, c)
				}
			}
			if _, err := os.Stat(l.journal); !os.IsNotExist(err) {
				t.Errorf("a refused change left a journal (%v)", err)
			}
			if _, err := os.Stat(l.record); !os.IsNotExist(err) {
				t.Errorf("a refused change wrote the record (%v)", err)
			}
		})
	}
}

// make cluster-remove-node: the member goes first (the leader hands over if it is the one:
// georaft member remove does that), then the disk is snapshotted and leaves Terraform's
// state, kept, and the apply deletes the VM; the region's slot stays, so no other node is
// renamed.
func TestClusterRemoveNode(t *testing.T) {
	l := newNodeChangeLab(t)
	l.outputs(func(n, d map[string]map[string]any) {}, func(n, d map[string]map[string]any) {
		delete(n, "georaft-4")
		delete(d, "georaft-4")
	})
	l.members(4, "1:voter 2:voter 3:voter 4:voter 5:voter", "")
	l.write(filepath.Join(l.clusterDir, "prometheus", "georaft-targets.json"), "[]")
	out, calls, err := l.run("cluster-remove-node", nil, "REGION=europe-west1")
	if err != nil {
		t.Fatalf("make cluster-remove-node: %v\n%s", err, out)
	}
	want := []string{
		"georaft member list",
		"georaft member remove 4",
		"georaft member list",
		"gcloud compute disks describe georaft-4-data",
		`gcloud compute snapshots describe georaft-4-data-removed-\S+`,
		`gcloud compute snapshots create georaft-4-data-removed-\S+`,
		`terraform state list google_compute_disk.data\["europe-west1"\]`,
		`terraform state rm google_compute_disk.data\["europe-west1"\]`,
		"terraform apply -input=false",
		"make cluster-inventory", // cluster-monitoring's prerequisite
		"make cluster-monitoring",
	}
	if got := steps(calls); !regexp.MustCompile("^" + strings.Join(want, "\n") + "$").MatchString(got) {
		t.Errorf("cluster-remove-node ran\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
	if r := l.readRecord(); fmt.Sprint(r.RemovedRegions, r.RetiredMemberIDs) != "[europe-west1] [4]" {
		t.Errorf("record after the remove: %+v", r)
	}
	if !strings.Contains(out, "derive it for the remaining regions") {
		t.Errorf("cluster-remove-node did not say the timing must be derived again:\n%s", out)
	}
}

// make cluster-add-node REGION=<a region without a node>: with timing derived for the cluster
// it will be, it records the region and the next member id, applies (creating only the new
// slot), issues the certificate, runs site.yml on the new host and waits until it votes.
func TestClusterAddNode(t *testing.T) {
	l := newNodeChangeLab(t)
	l.outputs(func(n, d map[string]map[string]any) {}, func(n, d map[string]map[string]any) {
		n["georaft-6"] = map[string]any{"id": 6, "name": "georaft-6", "region": "europe-west4", "zone": "europe-west4-b",
			"internal_ip": "10.42.5.2", "external_ip": "34.90.1.2", "joined": true, "replaces": nil}
		d["georaft-6"] = map[string]any{"name": "georaft-6-data", "zone": "europe-west4-b"}
	})
	l.members(1, "1:voter 2:voter 3:voter 4:voter 5:voter", "1:voter 2:voter 3:voter 4:voter 5:voter 6:voter")
	timing, err := os.ReadFile(l.tmng)
	if err != nil {
		t.Fatal(err)
	}
	l.write(l.tmng, strings.Replace(string(timing), "  5: asia-east1\n", "  5: asia-east1\n  6: europe-west4\n", 1))
	out, calls, err := l.run("cluster-add-node", nil, "REGION=europe-west4")
	if err != nil {
		t.Fatalf("make cluster-add-node: %v\n%s", err, out)
	}
	want := "georaft member list\nterraform apply -input=false\nmake cluster-inventory\n" +
		"certs --renew --out " + l.pki + " --node 6=10.42.5.2,34.90.1.2,georaft-6\nansible-playbook site.yml --limit georaft-6\ngeoraft member list"
	if got := steps(calls); got != want {
		t.Errorf("cluster-add-node ran\n%s\nwant\n%s", got, want)
	}
	if r := l.readRecord(); fmt.Sprint(r.AddedRegions) != "[europe-west4]" || r.MemberIDs["europe-west4"] != 6 {
		t.Errorf("record after the add: %+v", r)
	}
	if !strings.Contains(out, "the cluster has 6 voters (an even count") {
		t.Errorf("cluster-add-node did not warn of the even count:\n%s", out)
	}
}

// make cluster-apply (and so cluster-up) refuses to apply in the middle of a node change,
// and on a state whose joined nodes the kit's record does not know (a second operator
// without terraform/membership.auto.tfvars.json).
func TestClusterApplyChecksNodeChanges(t *testing.T) {
	l := newNodeChangeLab(t)
	l.outputs(replacedWest, nil)
	applied := func(calls []string) bool {
		for _, c := range calls {
			if strings.Contains(c, " apply ") {
				return true
			}
		}
		return false
	}
	out, calls, err := l.run("cluster-apply", nil)
	if err == nil || applied(calls) || !strings.Contains(strings.Join(strings.Fields(out), " "),
		"Terraform's state has member 6 in us-west1, which joined the running cluster, but the kit's record") {
		t.Errorf("cluster-apply without the record: %v, applied %v:\n%s", err, applied(calls), out)
	}
	l.write(l.record, `{"member_ids": {"us-west1": 6}}`)
	l.write(l.journal, `{"op": "remove", "region": "asia-east1", "started": "2026-12-08T01:00:00Z", "done": ["member-remove"]}`)
	out, calls, err = l.run("cluster-apply", nil)
	if err == nil || applied(calls) || !strings.Contains(out, "make cluster-remove-node REGION=asia-east1 is unfinished") {
		t.Errorf("cluster-apply during a node change: %v, applied %v:\n%s", err, applied(calls), out)
	}
	os.Remove(l.journal)
	if out, calls, err = l.run("cluster-apply", nil); err != nil || !applied(calls) {
		t.Errorf("cluster-apply with the record and no change under way: %v, applied %v:\n%s", err, applied(calls), out)
	}
}
