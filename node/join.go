package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/node/config"
	"github.com/georaft/georaft/node/mvcc"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
	"github.com/georaft/georaft/tlsutil"
)

// How a data directory becomes a member (docs/membership.md):
//
//   - It is one already (member.json): the node checks its configuration against it and
//     starts; cluster.join and peers[] no longer say who the members are.
//   - It holds a WAL but no member.json (written before georaft had one): it is recorded as
//     one of the voters peers[] lists.
//   - It is empty, with cluster.join set: the node asks the member there to add it as a
//     learner, records what it was told, and starts; once caught up it asks to be promoted
//     (or to take cluster.replaces' place).
//   - It is empty, with cluster.initial_state new: the node is one of the voters the cluster
//     is created with; unless a member of peers[] says the cluster already knows this id with
//     data (it published its addresses, which a member does once it has started): then the
//     disk was lost, and the node refuses.
//   - It is empty, with cluster.initial_state existing: the disk was lost; the node refuses.
//
// A lost disk must never come back under its old id: the member it was may have voted and
// acknowledged entries that a quorum counted on, and an empty node would vote again.

// joinTimeout bounds the whole join: a member must answer, and the leader apply the change.
const joinTimeout = 2 * time.Minute

// lostDiskAdvice is what an operator does about an empty data directory under a known id.
func lostDiskAdvice(id uint64) string {
	return fmt.Sprintf("start this machine as a new member instead: empty its data directory and start georaftd with "+
		"--join <any member's client address> --replaces %d (node.id unset, or an unused one), or add it with "+
		"`georaft member add --learner` and then run `georaft member replace %d <new id>` once it has caught up "+
		"(docs/membership.md, \"Replace a lost node\")", id, id)
}

// establishIdentity decides who this data directory is, joining the cluster if it must,
// and sets cfg.Node.ID, n.ident, n.initialVoters and n.joinHints.
func (n *Node) establishIdentity(clientTLS *tls.Config) error {
	cfg := n.cfg
	dir := cfg.Node.DataDir
	ident, ok, err := readIdentity(dir)
	if err != nil {
		return err
	}
	switch {
	case ok:
		if err := ident.check(dir, cfg.ClusterID, cfg.Node.ID); err != nil {
			return err
		}
		if cfg.Cluster.Join != "" {
			n.startupNotes = append(n.startupNotes, fmt.Sprintf("cluster.join ignored: this data directory is member %d already", ident.MemberID))
		}
	case hasConsensusState(dir):
		if cfg.Cluster.Join != "" {
			return fmt.Errorf("data directory %s holds a log but no member.json, and cluster.join is set: "+
				"join with an empty data directory, or start without cluster.join", dir)
		}
		ident = identity{ClusterID: cfg.ClusterID, MemberID: cfg.Node.ID, InitialVoters: cfg.PeerIDs(), Origin: originBootstrap, Created: time.Now().UTC()}
		if err := writeIdentity(dir, ident); err != nil {
			return err
		}
		n.startupNotes = append(n.startupNotes, fmt.Sprintf("recorded member.json for the existing data directory: member %d, initial voters %v",
			ident.MemberID, ident.InitialVoters))
	case cfg.Cluster.Join != "":
		if ident, err = n.join(clientTLS); err != nil {
			return err
		}
	case cfg.Cluster.InitialState == config.InitialStateExisting:
		return fmt.Errorf("data directory %s is empty, but cluster.initial_state is existing: member %d's data is gone, "+
			"and it must not start empty under its id (it would vote again in terms it already voted in); %s",
			dir, cfg.Node.ID, lostDiskAdvice(cfg.Node.ID))
	default:
		if err := n.checkNotBootstrapped(clientTLS); err != nil {
			return err
		}
		ident = identity{ClusterID: cfg.ClusterID, MemberID: cfg.Node.ID, InitialVoters: cfg.PeerIDs(), Origin: originBootstrap, Created: time.Now().UTC()}
		if err := writeIdentity(dir, ident); err != nil {
			return err
		}
	}
	cfg.Node.ID = ident.MemberID
	n.ident = ident
	n.initialVoters = slices.Clone(ident.InitialVoters)
	n.joinHints = make(map[uint64]config.Peer)
	for _, p := range ident.JoinMembers {
		n.joinHints[p.ID] = p
	}
	return nil
}

// dialMember opens a client connection to a member's client port.
func dialMember(addr string, clientTLS *tls.Config) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if clientTLS != nil {
		c := clientTLS.Clone()
		// Any member's certificate will do: the address is the operator's choice.
		c.ServerName = ""
		c.InsecureSkipVerify = true
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the member presented no certificate")
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: clientTLS.RootCAs, Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return err
			}
			// The chain was verified just above (not by crypto/tls, so cs.VerifiedChains is
			// empty and tlsutil.PeerIdentity would refuse every member).
			if kind, _, _, err := tlsutil.CertIdentity(cs.PeerCertificates[0]); err != nil || kind != tlsutil.KindNode {
				return fmt.Errorf("the certificate at the member's address is not a node's (%v, %v)", kind, err)
			}
			return nil
		}
		creds = credentials.NewTLS(c)
	}
	return grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
}

// checkNotBootstrapped asks the other members of peers[] whether the cluster already knows
// this id with data. An unreachable member says nothing: the cluster may be starting.
func (n *Node) checkNotBootstrapped(clientTLS *tls.Config) error {
	self := n.cfg.Node.ID
	var (
		mu       sync.Mutex
		verdicts []string
		wg       sync.WaitGroup
	)
	for _, p := range n.cfg.Peers {
		if p.ID == self || p.ClientAddress == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := dialMember(p.ClientAddress, clientTLS)
			if err != nil {
				return
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			resp, err := georaftv1.NewMembershipServiceClient(conn).ListMembers(ctx, &georaftv1.ListMembersRequest{})
			if err != nil {
				return
			}
			for _, ms := range resp.GetMembers() {
				m := ms.GetMember()
				if m.GetId() != self || resp.GetClusterId() != n.cfg.ClusterID {
					continue
				}
				if m.GetRole() == georaftv1.MemberRole_MEMBER_ROLE_REMOVED {
					mu.Lock()
					verdicts = append(verdicts, fmt.Sprintf("member %d (at %s) says member %d was removed", p.ID, p.ClientAddress, self))
					mu.Unlock()
				} else if published(resp, self) {
					mu.Lock()
					verdicts = append(verdicts, fmt.Sprintf("member %d (at %s) knows member %d as a running member", p.ID, p.ClientAddress, self))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(verdicts) == 0 {
		return nil
	}
	slices.Sort(verdicts)
	return fmt.Errorf("data directory %s is empty, but %s: this member's data is gone, and it must not start empty "+
		"under id %d (it would vote again in terms it already voted in); %s",
		n.cfg.Node.DataDir, strings.Join(verdicts, "; "), self, lostDiskAdvice(self))
}

// published reports whether member id has recorded its addresses in the table, which a
// member does only once it has started with its data.
func published(resp *georaftv1.ListMembersResponse, id uint64) bool {
	return slices.Contains(resp.GetPublished(), id)
}

// join asks the member at cluster.join to add this node as a learner, retrying with backoff
// while the cluster has no leader or another change is under way.
func (n *Node) join(clientTLS *tls.Config) (identity, error) {
	cfg := n.cfg
	self := n.selfPeer()
	req := &georaftv1.AddMemberRequest{Id: cfg.Node.ID, Region: cfg.Node.Region, PeerAddress: self.PeerAddress,
		ClientAddress: self.ClientAddress, ClusterId: cfg.ClusterID}
	conn, err := dialMember(cfg.Cluster.Join, clientTLS)
	if err != nil {
		return identity{}, fmt.Errorf("cluster.join %s: %w", cfg.Cluster.Join, err)
	}
	defer conn.Close()
	client := georaftv1.NewMembershipServiceClient(conn)
	n.dump.Printf("membership: joining cluster %s through %s as a learner (peer %s, client %s, region %s)",
		cfg.ClusterID, cfg.Cluster.Join, req.GetPeerAddress(), req.GetClientAddress(), req.GetRegion())
	deadline := time.Now().Add(joinTimeout)
	backoff := 200 * time.Millisecond
	var resp *georaftv1.AddMemberResponse
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		resp, err = client.AddMember(ctx, req)
		cancel()
		if err == nil {
			break
		}
		if !retryableJoinError(err) || time.Now().After(deadline) {
			n.dump.Printf("membership: join refused: %v", err)
			return identity{}, fmt.Errorf("join cluster %s through %s: %w", cfg.ClusterID, cfg.Cluster.Join, err)
		}
		n.dump.Printf("membership: join not done yet (%v); retrying in %v", status.Convert(err).Message(), backoff)
		time.Sleep(backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
	m := resp.GetMember()
	ident := identity{ClusterID: cfg.ClusterID, MemberID: m.GetId(), InitialVoters: resp.GetInitialVoters(), Origin: originJoin,
		Created: time.Now().UTC(), JoinedThrough: cfg.Cluster.Join}
	for _, o := range resp.GetMembers() {
		if o.GetId() != m.GetId() {
			ident.JoinMembers = append(ident.JoinMembers, config.Peer{ID: o.GetId(), Region: o.GetRegion(),
				PeerAddress: o.GetPeerAddress(), ClientAddress: o.GetClientAddress()})
		}
	}
	if len(ident.InitialVoters) == 0 {
		return identity{}, fmt.Errorf("join cluster %s through %s: the answer names no initial voters", cfg.ClusterID, cfg.Cluster.Join)
	}
	if err := writeIdentity(cfg.Node.DataDir, ident); err != nil {
		return identity{}, err
	}
	n.dump.Printf("membership: added as learner %d at index %d; the cluster's initial voters are %v", m.GetId(), resp.GetIndex(), ident.InitialVoters)
	return ident, nil
}

func retryableJoinError(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}

// After start: every member records its own addresses in the table once they are missing or
// changed, and a joined learner asks to be promoted once it has caught up.

// maintainMembership runs the member's own membership chores until the node stops.
func (n *Node) maintainMembership() {
	go n.watchRemoval()
	n.publishSelf()
	if n.ident.Origin == originJoin && n.cfg.Cluster.JoinAs == config.JoinAsVoter {
		n.promoteSelf()
	}
}

// retryMembership calls f with backoff until it returns true or the node stops.
func (n *Node) retryMembership(f func(ctx context.Context) bool) {
	backoff := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		done := f(ctx)
		cancel()
		if done {
			return
		}
		select {
		case <-time.After(backoff):
		case <-n.donec:
			return
		case <-n.drainc:
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// publishSelf records this member's addresses, once it is a member and they are not the
// table's already.
func (n *Node) publishSelf() {
	svc := &membershipService{n: n}
	n.retryMembership(func(ctx context.Context) bool {
		v := n.members()
		if n.removed.Load() || n.admit() != nil {
			return true
		}
		if !v.isMember(n.id) {
			return false
		}
		self := n.selfPeer()
		if r, ok := v.rows[n.id]; ok && r.GetPeerAddress() == self.PeerAddress && r.GetClientAddress() == self.ClientAddress &&
			r.GetRegion() == self.Region {
			return true
		}
		if n.statusSnapshot().Leader == raft.None {
			return false
		}
		_, err := svc.PublishMember(ctx, &georaftv1.PublishMemberRequest{Member: &mvcc.Member{Id: n.id, Region: self.Region,
			PeerAddress: self.PeerAddress, ClientAddress: self.ClientAddress}})
		if err != nil {
			n.log.Debug("publish this member's addresses", "err", err)
			return false
		}
		return false // checked again against the table once applied here
	})
}

// promoteSelf asks, until it is a voter, for this learner's promotion (or for it to take
// cluster.replaces' place). The leader refuses while it is behind; each refusal says how far.
func (n *Node) promoteSelf() {
	svc := &membershipService{n: n}
	var lastNote string
	note := func(s string) {
		if s != lastNote {
			n.dump.Printf("membership: %s", s)
			n.log.Info("membership: " + s)
			lastNote = s
		}
	}
	n.retryMembership(func(ctx context.Context) bool {
		v := n.members()
		if n.removed.Load() || n.admit() != nil || v.isVoter(n.id) {
			if v.isVoter(n.id) {
				note(fmt.Sprintf("member %d is a voter", n.id))
			}
			return true
		}
		if !v.isLearner(n.id) {
			note("waiting for the log to add this node as a learner")
			return false
		}
		var err error
		if old := n.cfg.Cluster.Replaces; old != raft.None && v.isMember(old) {
			_, err = svc.ReplaceMember(ctx, &georaftv1.ReplaceMemberRequest{OldId: old, NewId: n.id})
		} else {
			_, err = svc.PromoteMember(ctx, &georaftv1.PromoteMemberRequest{Id: n.id})
		}
		if err != nil {
			note("not promoted yet: " + status.Convert(err).Message())
			return false
		}
		return false // done once the promotion is applied here
	})
}

// watchRemoval asks the other members, while this node hears no leader, whether it has been
// removed. A removed member often never applies its own removal: the leader stops sending to
// it once the change is applied, before it has told the removed member the change committed.
// The membership table says removed only once the removal is applied on the member asked, so
// taking its word stops nothing that is still a member.
//
// Why ask, rather than learn it from the log. The log can tell a removed member only while it
// is reachable and the leader still sends to it, and the usual reason to remove a member is
// that it is not (down, cut off, its disk lost): when it comes back nobody sends it anything,
// and its own messages are dropped, so asking is the one way that always works. Keeping the
// leader sending the commit to a member it has dropped would make the core track a
// non-member's progress for a notice that this covers anyway (TestRemovedFollowerStops, both
// ways).
func (n *Node) watchRemoval() {
	interval := 2 * n.cfg.Timing.ElectionTimeoutMax
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-n.donec:
			return
		case <-n.drainc:
			return
		}
		if n.removed.Load() || n.statusSnapshot().Leader != raft.None || n.admit() != nil {
			continue
		}
		if by := n.removedAccordingToPeers(interval); by != raft.None {
			ctx, cancel := context.WithTimeout(context.Background(), interval)
			n.do(ctx, func() {
				n.dump.Printf("membership: member %d says this member was removed", by)
				n.noteRemoved()
				n.failStop(errMemberRemoved)
			})
			cancel()
			return
		}
	}
}

// removedAccordingToPeers returns a member whose membership table says this one is removed,
// or raft.None.
func (n *Node) removedAccordingToPeers(timeout time.Duration) uint64 {
	v := n.members()
	ids := v.ids()
	for id := range v.rows {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		if id == n.id {
			continue
		}
		conn, err := n.fwd.conn(id)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		resp, err := georaftv1.NewMembershipServiceClient(conn).ListMembers(ctx, &georaftv1.ListMembersRequest{})
		cancel()
		if err != nil || resp.GetClusterId() != n.cfg.ClusterID {
			continue
		}
		for _, ms := range resp.GetMembers() {
			if m := ms.GetMember(); m.GetId() == n.id && m.GetRole() == georaftv1.MemberRole_MEMBER_ROLE_REMOVED {
				return id
			}
		}
	}
	return raft.None
}
