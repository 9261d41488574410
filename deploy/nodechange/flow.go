package nodechange

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/georaft/georaft/deploy/inventory"
)

// Kit is how a change reaches the cluster: the commands deploy/cluster.mk passes (each a
// shell command line the change appends its arguments to) and the files it keeps.
type Kit struct {
	Terraform   string // terraform binary
	TFDir       string
	ApplyFlags  string // extra flags for terraform apply (TF_APPLY_FLAGS)
	Gcloud      string
	Make        string // runs a cluster.mk target (cluster-inventory)
	Playbook    string // ansible-playbook with the cluster's inventory and vars, up to the playbook
	Client      string // the georaft client with the cluster's TLS flags, up to --endpoints
	Certs       string // `georaftd certs`; empty when the cluster runs without TLS
	PKIDir      string
	RecordFile  string // terraform/membership.auto.tfvars.json
	TfvarsFile  string // terraform/terraform.tfvars
	JournalFile string // the change under way
	TimingFile  string // ansible/group_vars/georaft/timing.yml
	Wait        time.Duration
	Poll        time.Duration
	Out, Err    io.Writer
	Now         func() time.Time
}

// Journal is the change under way: what it is, the ids and names it decided at its start,
// and the steps done so far. A rerun takes it from here.
type Journal struct {
	Op         string    `json:"op"` // replace, add or remove
	Region     string    `json:"region"`
	OldID      uint64    `json:"old_id,omitempty"`
	NewID      uint64    `json:"new_id,omitempty"`
	Instance   string    `json:"instance,omitempty"`
	Disk       string    `json:"disk,omitempty"`
	Zone       string    `json:"zone,omitempty"`
	Generation int       `json:"generation,omitempty"`
	Snapshot   string    `json:"snapshot,omitempty"`
	Started    time.Time `json:"started"`
	Done       []string  `json:"done"`
}

// Member is a row of `georaft member list -o json`.
type Member struct {
	ID     uint64 `json:"id"`
	Role   string `json:"role"`
	Region string `json:"region"`
}

// Members is `georaft member list -o json`.
type Members struct {
	ClusterID string   `json:"cluster_id"`
	LeaderID  uint64   `json:"leader_id"`
	Members   []Member `json:"members"`
}

func (m Members) role(id uint64) string {
	for _, r := range m.Members {
		if r.ID == id {
			return r.Role
		}
	}
	return ""
}

func (m Members) voters() []uint64 {
	var out []uint64
	for _, r := range m.Members {
		if r.Role == "voter" {
			out = append(out, r.ID)
		}
	}
	return out
}

var regionName = regexp.MustCompile(`^[a-z]+-[a-z]+[0-9]+$`)

// change is one run of a change: the kit, the op's target name for messages, and its journal.
type change struct {
	k      *Kit
	target string
	j      *Journal
	lock   *os.File
}

// begin takes the kit's change lock (one change at a time on this machine), checks the
// files, and loads an unfinished change. A journal of another change refuses this one.
func (k *Kit) begin(op, region string) (*change, error) {
	target := "cluster-" + op + "-node"
	if region == "" {
		return nil, fmt.Errorf("%s needs REGION=<region>, e.g. make %s REGION=us-west1", target, target)
	}
	if err := os.MkdirAll(filepath.Dir(k.JournalFile), 0o755); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(k.JournalFile+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		running := "another node change"
		if j, _ := k.loadJournal(); j != nil {
			running = fmt.Sprintf("make cluster-%s-node REGION=%s", j.Op, j.Region)
		}
		return nil, fmt.Errorf("%s is running now on this machine (%s is locked): one node change at a time; wait for it to finish", running, k.JournalFile+".lock")
	}
	c := &change{k: k, target: target, lock: lock}
	if err := CheckTfvars(k.TfvarsFile, k.RecordFile); err != nil {
		c.end()
		return nil, err
	}
	j, err := k.loadJournal()
	if err != nil {
		c.end()
		return nil, err
	}
	if j != nil && (j.Op != op || j.Region != region) {
		c.end()
		return nil, fmt.Errorf("make cluster-%s-node REGION=%s is unfinished (started %s; done so far: %s): one node change at a time. "+
			"Finish it first by running make cluster-%s-node REGION=%s again (it goes on from where it stopped); %s records it",
			j.Op, j.Region, j.Started.Format(time.RFC3339), doneList(j), j.Op, j.Region, k.JournalFile)
	}
	c.j = j
	if j != nil {
		c.say("going on with the unfinished %s of %s (started %s; done so far: %s)", op, region, j.Started.Format(time.RFC3339), doneList(j))
	}
	return c, nil
}

func doneList(j *Journal) string {
	if len(j.Done) == 0 {
		return "nothing"
	}
	return strings.Join(j.Done, ", ")
}

func (c *change) end() {
	c.lock.Close()
}

func (k *Kit) loadJournal() (*Journal, error) {
	data, err := os.ReadFile(k.JournalFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var j Journal
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("%s: %w (it records an unfinished node change; look at it before removing it)", k.JournalFile, err)
	}
	return &j, nil
}

func (c *change) saveJournal() error {
	data, err := json.MarshalIndent(c.j, "", "  ")
	if err != nil {
		return err
	}
	return inventory.WriteFileAtomic(c.k.JournalFile, append(data, '\n'))
}

func (c *change) finish() error {
	if err := os.Remove(c.k.JournalFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// step runs f unless the journal says it is done, then records it done.
func (c *change) step(name, what string, f func() error) error {
	if slices.Contains(c.j.Done, name) {
		return nil
	}
	c.say("%s", what)
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w; fix that and run make %s REGION=%s again: it goes on from this step", what, err, c.target, c.j.Region)
	}
	c.j.Done = append(c.j.Done, name)
	return c.saveJournal()
}

func (c *change) say(format string, args ...any) {
	fmt.Fprintf(c.k.Out, "%s: %s\n", c.target, fmt.Sprintf(format, args...))
}

// sh runs a command line, its output passed through.
func (c *change) sh(cmdline string) error {
	fmt.Fprintf(c.k.Out, "+ %s\n", cmdline)
	cmd := exec.Command("sh", "-c", cmdline)
	cmd.Stdout, cmd.Stderr = c.k.Out, c.k.Err
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("`%s` failed (%v)", cmdline, err)
	}
	return nil
}

// output runs a command line and returns its stdout; stderr goes into the error.
func (c *change) output(cmdline string) ([]byte, error) {
	cmd := exec.Command("sh", "-c", cmdline)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("`%s` failed (%v): %s", cmdline, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func (c *change) terraform(args string) string {
	return fmt.Sprintf("%s -chdir=%s %s", c.k.Terraform, inventory.ShellQuote(c.k.TFDir), args)
}

// cluster is what Terraform's outputs say the cluster is now.
func (c *change) cluster() (inventory.Cluster, error) {
	out, err := c.output(c.terraform("output -json"))
	if err != nil {
		return inventory.Cluster{}, fmt.Errorf("no cluster in the Terraform state of %s (run make cluster-up first): %w", c.k.TFDir, err)
	}
	cl, err := inventory.Parse(bytes.NewReader(out))
	if err != nil {
		return inventory.Cluster{}, fmt.Errorf("terraform output of %s: %w", c.k.TFDir, err)
	}
	return cl, nil
}

// members asks the cluster who its members are; a cluster without a leader is not up.
func (c *change) members(cl inventory.Cluster) (Members, error) {
	var m Members
	out, err := c.output(fmt.Sprintf("%s --endpoints %s -o json member list", c.k.Client, strings.Join(cl.ClientEndpoints(false), ",")))
	if err != nil {
		return m, fmt.Errorf("the cluster is not up: its members could not be listed: %w", err)
	}
	if err := json.Unmarshal(out, &m); err != nil {
		return m, fmt.Errorf("the cluster is not up: `georaft member list` answered %q: %w", bytes.TrimSpace(out), err)
	}
	if m.LeaderID == 0 {
		return m, errors.New("the cluster is not up: it has no leader (make cluster-status shows what each node says)")
	}
	if m.ClusterID != "" && m.ClusterID != cl.ClusterID {
		return m, fmt.Errorf("the nodes answer for cluster %q, but Terraform's state is of cluster %q", m.ClusterID, cl.ClusterID)
	}
	return m, nil
}

// nextMemberID is one above every id the cluster, Terraform and the record ever gave: a new
// node never takes an id a member had (the leader refuses one too).
func nextMemberID(m Members, cl inventory.Cluster, r Record) uint64 {
	var top uint64
	for _, x := range m.Members {
		top = max(top, x.ID)
	}
	for _, n := range cl.Nodes {
		top = max(top, n.ID, n.Replaces)
	}
	for _, id := range r.MemberIDs {
		top = max(top, id)
	}
	for _, id := range r.ReplacedMemberIDs {
		top = max(top, id)
	}
	for _, id := range r.RetiredMemberIDs {
		top = max(top, id)
	}
	return top + 1
}

func unknownRegion(cl inventory.Cluster, r Record, region, target string) error {
	var have []string
	for _, n := range cl.Nodes {
		have = append(have, n.Region)
	}
	if slices.Contains(r.RemovedRegions, region) {
		return fmt.Errorf("region %s has no node: make cluster-remove-node removed it (make cluster-add-node REGION=%s gives it one again)", region, region)
	}
	hint := ""
	if target != "cluster-add-node" {
		hint = fmt.Sprintf("; make cluster-add-node REGION=%s adds a node in a new region", region)
	}
	return fmt.Errorf("region %q has no node of this cluster (its nodes are in %s)%s", region, strings.Join(have, ", "), hint)
}

// nodeIn is the kit's record and the node of region, or an error naming the regions that
// have one.
func (c *change) nodeIn(cl inventory.Cluster, region string) (Record, inventory.Node, error) {
	r, err := LoadRecord(c.k.RecordFile)
	if err != nil {
		return r, inventory.Node{}, err
	}
	node, err := cl.NodeIn(region)
	if err != nil {
		return r, node, unknownRegion(cl, r, region, c.target)
	}
	return r, node, nil
}

func diskOf(cl inventory.Cluster, node inventory.Node) (inventory.Disk, error) {
	for i, n := range cl.Nodes {
		if n.Name == node.Name && i < len(cl.DataDisks) {
			return cl.DataDisks[i], nil
		}
	}
	return inventory.Disk{}, fmt.Errorf("terraform output data_disks has no disk for %s (apply the current terraform/ first)", node.Name)
}

// snapshot keeps the disk's data before it leaves Terraform's state; a disk that is gone
// (a lost zone, a deleted disk) has nothing to keep.
func (c *change) snapshot(cl inventory.Cluster, why string) error {
	j := c.j
	if _, err := c.output(fmt.Sprintf("%s compute disks describe %s --zone=%s --project=%s --format='value(name)'",
		c.k.Gcloud, j.Disk, j.Zone, cl.ProjectID)); err != nil {
		if strings.Contains(err.Error(), "was not found") || strings.Contains(err.Error(), "notFound") {
			c.say("disk %s no longer exists: there is nothing to snapshot", j.Disk)
			return nil
		}
		return err
	}
	if j.Snapshot == "" {
		j.Snapshot = fmt.Sprintf("%s-%s-%s", j.Disk, why, c.k.Now().UTC().Format("20060102-150405"))
		if err := c.saveJournal(); err != nil {
			return err
		}
	}
	// A rerun after a snapshot that was made but not recorded finds it there.
	if _, err := c.output(fmt.Sprintf("%s compute snapshots describe %s --project=%s --format='value(name)'", c.k.Gcloud, j.Snapshot, cl.ProjectID)); err == nil {
		return nil
	}
	member := j.OldID
	return c.sh(fmt.Sprintf("%s compute snapshots create %s --project=%s --source-disk=%s --source-disk-zone=%s --storage-location=%s "+
		"--labels=georaft-cluster=%s,georaft-member=%d --description=%s --format=json >/dev/null",
		c.k.Gcloud, j.Snapshot, cl.ProjectID, j.Disk, j.Zone, j.Region, cl.ClusterID, member,
		inventory.ShellQuote(fmt.Sprintf("georaft cluster %s: member %d's data disk, kept before %s", cl.ClusterID, member, c.target))))
}

// forgetDisk takes the region's data disk out of Terraform's state (never destroying it:
// prevent_destroy), if it is still there.
func (c *change) forgetDisk() error {
	addr := fmt.Sprintf(`google_compute_disk.data["%s"]`, c.j.Region)
	out, err := c.output(c.terraform("state list " + inventory.ShellQuote(addr)))
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(out)) == "" {
		c.say("%s is no longer in Terraform's state", addr)
		return nil
	}
	return c.sh(c.terraform("state rm " + inventory.ShellQuote(addr)))
}

func (c *change) updateRecord(f func(*Record)) error {
	r, err := LoadRecord(c.k.RecordFile)
	if err != nil {
		return err
	}
	f(&r)
	if err := r.Save(c.k.RecordFile); err != nil {
		return err
	}
	fmt.Fprintf(c.k.Out, "  recorded in %s\n", c.k.RecordFile)
	return nil
}

func (c *change) apply(extra string) error {
	args := "apply -input=false"
	if extra != "" {
		args += " " + extra
	}
	if c.k.ApplyFlags != "" {
		args += " " + c.k.ApplyFlags
	}
	return c.sh(c.terraform(args))
}

// issueCert gives the new member its node certificate under the cluster's CA (its id is in
// it), unless it has one.
func (c *change) issueCert(node inventory.Node) error {
	if c.k.Certs == "" {
		c.say("the cluster runs without TLS: no certificate to issue")
		return nil
	}
	crt := filepath.Join(c.k.PKIDir, fmt.Sprintf("node-%d.crt", node.ID))
	if _, err := os.Stat(crt); err == nil {
		c.say("%s exists", crt)
		return nil
	}
	if _, err := os.Stat(filepath.Join(c.k.PKIDir, "ca.crt")); err != nil {
		return fmt.Errorf("no CA in %s to issue node %d's certificate under: put the cluster's PKI there (make cluster-certs explains where it comes from)", c.k.PKIDir, node.ID)
	}
	hosts := []string{node.InternalIP}
	if node.ExternalIP != "" {
		hosts = append(hosts, node.ExternalIP)
	}
	hosts = append(hosts, node.Name)
	return c.sh(fmt.Sprintf("%s --renew --out %s --node %d=%s", c.k.Certs, inventory.ShellQuote(c.k.PKIDir), node.ID, strings.Join(hosts, ",")))
}

// waitFor polls the member list until ok says the change is applied.
func (c *change) waitFor(cl inventory.Cluster, what string, ok func(Members) bool) error {
	deadline := c.k.Now().Add(c.k.Wait)
	var last string
	for {
		m, err := c.members(cl)
		if err == nil && ok(m) {
			fmt.Fprintf(c.k.Out, "  %s\n", describe(m))
			return nil
		}
		var now string
		if err != nil {
			now = err.Error()
		} else {
			now = describe(m)
		}
		if now != last {
			fmt.Fprintf(c.k.Out, "  waiting: %s\n", now)
			last = now
		}
		if c.k.Now().After(deadline) {
			return fmt.Errorf("not yet after %v (%s): the member list says %s", c.k.Wait, what, now)
		}
		time.Sleep(c.k.Poll)
	}
}

func describe(m Members) string {
	parts := make([]string, len(m.Members))
	for i, x := range m.Members {
		parts[i] = fmt.Sprintf("%d %s", x.ID, x.Role)
	}
	return fmt.Sprintf("leader %d; %s", m.LeaderID, strings.Join(parts, ", "))
}

// step is one step of a change: done once, recorded in the journal.
type step struct {
	name, what string
	f          func() error
}

// run is the skeleton of every change: take the lock, read the cluster, and either go on
// with the journal's change or plan a new one (plan refuses bad input and writes the
// journal), then run the steps not done yet and drop the journal.
func (k *Kit) run(op, region string, plan func(c *change, cl inventory.Cluster, m Members) error,
	steps func(c *change, cl inventory.Cluster, m Members) []step) (*change, error) {
	c, err := k.begin(op, region)
	if err != nil {
		return nil, err
	}
	defer c.end()
	cl, err := c.cluster()
	if err != nil {
		return nil, err
	}
	m, err := c.members(cl)
	if err != nil {
		return nil, err
	}
	if c.j == nil {
		if err := plan(c, cl, m); err != nil {
			return nil, err
		}
	}
	for _, s := range steps(c, cl, m) {
		if err := c.step(s.name, s.what, s.f); err != nil {
			return nil, err
		}
	}
	return c, c.finish()
}

// Check is what cluster-apply asks before every apply: no node change is unfinished (an
// apply in its middle would run steps out of order), terraform.tfvars leaves the record's
// variables alone, and the record knows every node that joined, which an apply without it
// would give its first disk and id back (Terraform's prevent_destroy stops that, with a
// message that does not say why).
func (k *Kit) Check() error {
	j, err := k.loadJournal()
	if err != nil {
		return err
	}
	if j != nil {
		return fmt.Errorf("make cluster-%s-node REGION=%s is unfinished (started %s; done so far: %s): finish it first by running it again; %s records it",
			j.Op, j.Region, j.Started.Format(time.RFC3339), doneList(j), k.JournalFile)
	}
	if err := CheckTfvars(k.TfvarsFile, k.RecordFile); err != nil {
		return err
	}
	c := &change{k: k, target: "cluster-apply"}
	out, err := c.output(c.terraform("output -json"))
	if err != nil || len(bytes.TrimSpace(out)) == 0 || string(bytes.TrimSpace(out)) == "{}" {
		return nil // no cluster yet
	}
	cl, err := inventory.Parse(bytes.NewReader(out))
	if err != nil {
		return nil // an older or partial state: nothing recorded to compare
	}
	r, err := LoadRecord(k.RecordFile)
	if err != nil {
		return err
	}
	for _, n := range cl.Nodes {
		if n.Joined && r.MemberIDs[n.Region] != n.ID {
			return fmt.Errorf("Terraform's state has member %d in %s, which joined the running cluster, but the kit's record %s does not (it says %d): "+
				"restore that file from where you keep terraform.tfvars and the state; an apply without it would take %s's node back to its first disk and id",
				n.ID, n.Region, k.RecordFile, r.MemberIDs[n.Region], n.Region)
		}
	}
	return nil
}

// Replace gives the node of region a new VM and a new, blank data disk that joins the
// running cluster as a new member and takes the old member's place in one change. The old
// disk is snapshotted and kept (out of Terraform's state); the old id is never used again.
func (k *Kit) Replace(region string) error {
	plan := func(c *change, cl inventory.Cluster, m Members) error {
		r, node, err := c.nodeIn(cl, region)
		if err != nil {
			return err
		}
		switch m.role(node.ID) {
		case "voter", "learner":
		case "removed":
			return fmt.Errorf("member %d (%s, %s) was removed from the cluster already, but Terraform still has its node: "+
				"make cluster-remove-node REGION=%s finishes taking it away, make cluster-add-node REGION=%s then gives the region a new one",
				node.ID, node.Name, region, region, region)
		default:
			return fmt.Errorf("member %d (%s, %s) is not in the cluster's member list (%s): Terraform's state and the cluster disagree; "+
				"look at georaft member list before changing anything", node.ID, node.Name, region, describe(m))
		}
		disk, err := diskOf(cl, node)
		if err != nil {
			return err
		}
		c.j = &Journal{Op: "replace", Region: region, OldID: node.ID, NewID: nextMemberID(m, cl, r), Instance: node.Name,
			Disk: disk.Name, Zone: disk.Zone, Generation: r.generation(region) + 1, Started: k.Now().UTC(), Done: []string{}}
		if err := c.saveJournal(); err != nil {
			return err
		}
		c.say("replacing member %d (%s in %s, disk %s) with member %d on a new VM and a new disk (generation %d)",
			c.j.OldID, c.j.Instance, region, c.j.Disk, c.j.NewID, c.j.Generation)
		return nil
	}
	instance := fmt.Sprintf(`google_compute_instance.node["%s"]`, region)
	steps := func(c *change, cl inventory.Cluster, m Members) []step {
		j := c.j
		return []step{
			{"snapshot", fmt.Sprintf("snapshot member %d's disk %s", j.OldID, j.Disk), func() error { return c.snapshot(cl, "replaced") }},
			{"state-rm", fmt.Sprintf("take disk %s out of Terraform's state (it is kept)", j.Disk), c.forgetDisk},
			{"record", fmt.Sprintf("record member %d in %s, generation %d of its disk", j.NewID, region, j.Generation), func() error {
				return c.updateRecord(func(r *Record) {
					r.DataDiskGeneration[region] = j.Generation
					r.MemberIDs[region] = j.NewID
					r.ReplacedMemberIDs[region] = j.OldID
					r.retire(j.OldID)
				})
			}},
			// The new node has the old one's reserved address, and the cluster takes no second
			// member at a member's peer address: the old member leaves first (a leader hands
			// over, a live one stops). Its VM goes next, so this costs no fault tolerance.
			c.removeMember(cl, m, j.OldID, "member-remove"),
			c.waitRemoved(cl, j.OldID, "removed"),
			{"apply", fmt.Sprintf("recreate %s with a new disk (terraform apply -replace)", j.Instance), func() error {
				return c.apply("-replace=" + inventory.ShellQuote(instance))
			}},
			{"inventory", "the inventory learns member " + strconv.FormatUint(j.NewID, 10), func() error { return c.sh(k.Make + " cluster-inventory") }},
			{"certs", fmt.Sprintf("node certificate for member %d", j.NewID), func() error {
				cl, err := c.cluster()
				if err != nil {
					return err
				}
				node, err := cl.NodeIn(region)
				if err != nil {
					return err
				}
				if node.ID != j.NewID {
					return fmt.Errorf("terraform output still gives %s member id %d, not %d", node.Name, node.ID, j.NewID)
				}
				return c.issueCert(node)
			}},
			{"timing", fmt.Sprintf("the tuned timing's placement names member %d in %s", j.NewID, region), func() error {
				return c.renamePlacement(j.OldID, j.NewID, region)
			}},
			{"ansible", fmt.Sprintf("install %s: it joins as member %d and takes member %d's place once caught up", j.Instance, j.NewID, j.OldID), func() error {
				return c.playbookOn(j.Instance)
			}},
			{"wait", fmt.Sprintf("member %d is a voter and member %d removed", j.NewID, j.OldID), func() error {
				return c.waitFor(cl, fmt.Sprintf("member %d is a voter, member %d is removed", j.NewID, j.OldID), func(m Members) bool {
					old := m.role(j.OldID)
					return m.role(j.NewID) == "voter" && (old == "removed" || old == "")
				})
			}},
		}
	}
	c, err := k.run("replace", region, plan, steps)
	if err != nil {
		return err
	}
	j := c.j
	c.say("done: member %d serves %s in place of member %d, whose disk %s is kept (snapshot %s). "+
		"The other nodes' configs name member %d in peers[] until make cluster-upgrade rolls them (harmless meanwhile).",
		j.NewID, region, j.OldID, j.Disk, orNone(j.Snapshot), j.OldID)
	return nil
}

// removeMember is the step that takes member id out of the cluster (georaft member remove:
// a leader hands leadership over first), unless it is out already.
func (c *change) removeMember(cl inventory.Cluster, m Members, id uint64, name string) step {
	return step{name, fmt.Sprintf("remove member %d from the cluster (a leader hands over first)", id), func() error {
		if role := m.role(id); role == "removed" || role == "" {
			c.say("member %d is removed already", id)
			return nil
		}
		return c.sh(fmt.Sprintf("%s --endpoints %s member remove %d", c.k.Client, strings.Join(cl.ClientEndpoints(false), ","), id))
	}}
}

// waitRemoved is the step that waits until the cluster lists member id as removed.
func (c *change) waitRemoved(cl inventory.Cluster, id uint64, name string) step {
	return step{name, fmt.Sprintf("member %d is removed", id), func() error {
		return c.waitFor(cl, fmt.Sprintf("member %d is removed", id), func(m Members) bool {
			role := m.role(id)
			return role == "removed" || role == ""
		})
	}}
}

// playbookOn runs site.yml on the joining host alone, waiting for it to be ready (to follow
// the leader with the log caught up) as long as the change waits for the cluster.
func (c *change) playbookOn(host string) error {
	return c.sh(fmt.Sprintf("%s -e georaft_ready_retries=%d site.yml --limit %s", c.k.Playbook, max(int(c.k.Wait.Seconds()), 120),
		inventory.ShellQuote(host)))
}

// refreshInventory writes the inventory again, and Prometheus's file_sd targets when make
// cluster-monitoring wrote them before (which writes the inventory first): a node added or
// removed is a target more or less.
func (c *change) refreshInventory() error {
	if _, err := os.Stat(filepath.Join(filepath.Dir(c.k.JournalFile), "prometheus", "georaft-targets.json")); err == nil {
		return c.sh(c.k.Make + " cluster-monitoring")
	}
	return c.sh(c.k.Make + " cluster-inventory")
}

func orNone(s string) string {
	if s == "" {
		return "none: the disk was gone"
	}
	return s
}

func (c *change) renamePlacement(oldID, newID uint64, region string) error {
	data, err := os.ReadFile(c.k.TimingFile)
	if err != nil {
		return err
	}
	out, changed, err := RenamePlacement(data, oldID, newID, region)
	if err != nil {
		return fmt.Errorf("%s: %w; derive timing for the cluster as it will be: make cluster-tune RTT=<matrix>", c.k.TimingFile, err)
	}
	if !changed {
		return nil
	}
	if err := inventory.WriteFileAtomic(c.k.TimingFile, out); err != nil {
		return err
	}
	fmt.Fprintf(c.k.Out, "  %s: placement now names member %d in %s\n", c.k.TimingFile, newID, region)
	return nil
}

// Add gives region a node that joins the running cluster as a new member and is promoted
// once caught up. A region that had a node before (make cluster-remove-node) gets a new disk.
func (k *Kit) Add(region string) error {
	var voters int
	plan := func(c *change, cl inventory.Cluster, m Members) error {
		if !regionName.MatchString(region) {
			return fmt.Errorf("REGION=%s is not a Google Cloud region name such as europe-west4", region)
		}
		if n, err := cl.NodeIn(region); err == nil {
			return fmt.Errorf("region %s has a node already (%s, member %d): the kit runs one node per region, since two nodes in one "+
				"region fail together and so add no region's worth of fault tolerance; make cluster-replace-node REGION=%s gives it a new one",
				region, n.Name, n.ID, region)
		}
		r, err := LoadRecord(k.RecordFile)
		if err != nil {
			return err
		}
		newID := nextMemberID(m, cl, r)
		// The timing must already be derived for the cluster as it will be: the role refuses
		// to deploy any other placement, and would stop this change halfway.
		want := map[uint64]string{newID: region}
		for _, n := range cl.Nodes {
			want[n.ID] = n.Region
		}
		data, err := os.ReadFile(k.TimingFile)
		if err != nil {
			return err
		}
		have, err := TimingPlacement(data)
		if err != nil {
			return fmt.Errorf("%s: %w", k.TimingFile, err)
		}
		if !maps.Equal(have, want) {
			return fmt.Errorf("the tuned timing (%s) was derived for %s, and with the new node the cluster will be %s: "+
				"derive timing for it first, from RTTs that include %s: make cluster-tune RTT=<matrix with %s> PLACEMENT=%s, "+
				"then run make cluster-add-node REGION=%s again (it will give the new node member id %d)",
				k.TimingFile, FormatPlacement(have), FormatPlacement(want), region, region, FormatPlacement(want), region, newID)
		}
		gen := 0
		if slices.Contains(r.RemovedRegions, region) {
			gen = r.generation(region) + 1
		}
		c.j = &Journal{Op: "add", Region: region, NewID: newID, Generation: gen, Started: k.Now().UTC(), Done: []string{}}
		if err := c.saveJournal(); err != nil {
			return err
		}
		c.say("adding member %d in %s", newID, region)
		return nil
	}
	steps := func(c *change, cl inventory.Cluster, m Members) []step {
		j := c.j
		return []step{
			{"record", fmt.Sprintf("record member %d in %s", j.NewID, region), func() error {
				return c.updateRecord(func(r *Record) {
					if j.Generation > 0 {
						r.RemovedRegions = slices.DeleteFunc(r.RemovedRegions, func(s string) bool { return s == region })
						r.DataDiskGeneration[region] = j.Generation
					} else if !slices.Contains(r.AddedRegions, region) {
						r.AddedRegions = append(r.AddedRegions, region)
					}
					r.MemberIDs[region] = j.NewID
					delete(r.ReplacedMemberIDs, region)
				})
			}},
			{"apply", "create the node's VM, disk and network (terraform apply)", func() error { return c.apply("") }},
			{"inventory", "the inventory (and Prometheus's targets) learn member " + strconv.FormatUint(j.NewID, 10), c.refreshInventory},
			{"certs", fmt.Sprintf("node certificate for member %d", j.NewID), func() error {
				cl, err := c.cluster()
				if err != nil {
					return err
				}
				node, err := cl.NodeIn(region)
				if err != nil {
					return err
				}
				j.Instance = node.Name
				return c.issueCert(node)
			}},
			{"ansible", fmt.Sprintf("install the node: it joins as member %d and is promoted once caught up", j.NewID), func() error {
				return c.playbookOn(j.Instance)
			}},
			{"wait", fmt.Sprintf("member %d is a voter", j.NewID), func() error {
				cl, err := c.cluster()
				if err != nil {
					return err
				}
				return c.waitFor(cl, fmt.Sprintf("member %d is a voter", j.NewID), func(m Members) bool {
					voters = len(m.voters())
					return m.role(j.NewID) == "voter"
				})
			}},
		}
	}
	c, err := k.run("add", region, plan, steps)
	if err != nil {
		return err
	}
	j := c.j
	c.say("done: member %d serves %s; the cluster has %d voters%s", j.NewID, region, voters,
		map[bool]string{true: " (an even count survives no more failures than one fewer: to finish moving a region, make cluster-remove-node REGION=<the old one>)", false: ""}[voters%2 == 0])
	return nil
}

// Remove takes a region's node out of the cluster (the leader hands over first if it is the
// one), then its VM goes; its disk is snapshotted and kept.
func (k *Kit) Remove(region string) error {
	plan := func(c *change, cl inventory.Cluster, m Members) error {
		_, node, err := c.nodeIn(cl, region)
		if err != nil {
			return err
		}
		voters := m.voters()
		left := len(slices.DeleteFunc(slices.Clone(voters), func(id uint64) bool { return id == node.ID }))
		if m.role(node.ID) == "voter" && left < 3 {
			return fmt.Errorf("removing member %d (%s) would leave %d voters: the kit keeps at least 3, so that the cluster survives losing a region; "+
				"add a node first (make cluster-add-node REGION=<region>)", node.ID, region, left)
		}
		disk, err := diskOf(cl, node)
		if err != nil {
			return err
		}
		c.j = &Journal{Op: "remove", Region: region, OldID: node.ID, Instance: node.Name, Disk: disk.Name, Zone: disk.Zone,
			Started: k.Now().UTC(), Done: []string{}}
		if err := c.saveJournal(); err != nil {
			return err
		}
		c.say("removing member %d (%s in %s); its disk %s is kept", node.ID, node.Name, region, disk.Name)
		return nil
	}
	steps := func(c *change, cl inventory.Cluster, m Members) []step {
		j := c.j
		return []step{
			c.removeMember(cl, m, j.OldID, "member-remove"),
			c.waitRemoved(cl, j.OldID, "wait"),
			{"snapshot", fmt.Sprintf("snapshot member %d's disk %s", j.OldID, j.Disk), func() error { return c.snapshot(cl, "removed") }},
			{"state-rm", fmt.Sprintf("take disk %s out of Terraform's state (it is kept)", j.Disk), c.forgetDisk},
			{"record", fmt.Sprintf("record that %s has no node", region), func() error {
				return c.updateRecord(func(r *Record) {
					if !slices.Contains(r.RemovedRegions, region) {
						r.RemovedRegions = append(r.RemovedRegions, region)
					}
					r.retire(j.OldID)
					delete(r.MemberIDs, region)
					delete(r.ReplacedMemberIDs, region)
				})
			}},
			{"apply", fmt.Sprintf("delete %s and its network (terraform apply)", j.Instance), func() error { return c.apply("") }},
			{"inventory", fmt.Sprintf("the inventory (and Prometheus's targets) forget %s", j.Instance), c.refreshInventory},
		}
	}
	c, err := k.run("remove", region, plan, steps)
	if err != nil {
		return err
	}
	j := c.j
	c.say("done: member %d is removed and %s deleted; its disk %s is kept (snapshot %s). The tuned timing still names %s: "+
		"derive it for the remaining regions (make cluster-tune RTT=<matrix>) and roll it out (make cluster-upgrade); the role refuses to deploy until then.",
		j.OldID, j.Instance, j.Disk, orNone(j.Snapshot), region)
	return nil
}
