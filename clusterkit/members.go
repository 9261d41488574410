package clusterkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// AddNode adds a node to a cluster New made, in region: the next id, its ports, its config
// listing every member and itself with cluster.join set to the first running member's
// client address, its links to and from every member (and the client links) running, its
// certificate with TLS. It is not started: StartNode starts it, and it joins as a learner
// and asks for its promotion once caught up (docs/membership.md). The other members learn of
// it from the log; their config files are not changed (RewriteConfigs writes them with it,
// which makes them dial it through its links after a restart). DialAddr says where each
// member reaches it.
// configure, when given, changes the new node's config before it is written (for example
// cluster.replaces).
func (c *Cluster) AddNode(region string, configure ...func(*config.Config)) (*Node, error) {
	if c.spec == nil {
		return nil, errors.New("add node: only a cluster made by New can grow (its spec places the new node)")
	}
	id := uint64(1)
	for _, n := range c.Nodes {
		id = max(id, n.ID+1)
	}
	members := c.Regions()
	members[id] = region
	cfg, err := c.spec.nodeConfig(id, members)
	if err != nil {
		return nil, err
	}
	for _, m := range c.Nodes {
		if m.Running() {
			cfg.Cluster.Join = m.Config.Listen.Client
			break
		}
	}
	for _, f := range configure {
		f(cfg)
	}
	if c.spec.TLS {
		if err := issueNodeCert(c.CertDir, id); err != nil {
			return nil, err
		}
	}
	path := filepath.Join(c.ConfigDir, NodeFileName(id))
	if cfg, err = c.writeNodeConfig(path, cfg); err != nil {
		return nil, err
	}
	n := c.newNode(cfg, path)
	c.Nodes = append(c.Nodes, n)
	links, err := c.spec.clientLinks(members)
	if err != nil {
		return nil, err
	}
	if links != nil {
		c.Links = links
		if err := WriteConfigs(c.ConfigDir, c.spec.Header, nil, links); err != nil {
			return nil, err
		}
	}
	if !c.spec.Proxied && c.Links == nil {
		return n, nil
	}
	// The new links: every member to the new node and back, and every client region to it.
	cfgs := make([]*config.Config, 0, len(c.Nodes))
	for _, m := range c.Nodes {
		mc := *m.Config
		if m.ID != id {
			p, _ := c.spec.nodeConfig(m.ID, members)
			mc.Peers = p.Peers
		}
		cfgs = append(cfgs, &mc)
	}
	plan, err := PlanLinks(cfgs, c.Links, c.opts.Model)
	if err != nil {
		return nil, err
	}
	var fresh []Link
	for _, l := range plan.Links {
		if l.ToNode == id || l.FromNode == id {
			fresh = append(fresh, l)
		}
	}
	c.Plan.Links = append(c.Plan.Links, fresh...)
	if c.Proxies != nil {
		if err := c.Proxies.Add(fresh...); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// DialAddr is where member from reaches node n: through the link from→n when peer links
// are proxied, else n's own peer listener.
func (n *Node) DialAddr(from uint64) string {
	for _, l := range n.c.Plan.Links {
		if l.Kind == PeerLink && l.FromNode == from && l.ToNode == n.ID {
			return l.Listen
		}
	}
	return n.Config.Listen.Peer
}

// RemoveMember removes member id from the cluster's membership through any other running
// member (which passes it to the leader), retrying while the cluster elects a leader or
// another change is under way. The node itself stops once it applies its removal; RemoveNode
// forgets it.
func (c *Cluster) RemoveMember(ctx context.Context, id uint64, timeout time.Duration) error {
	return c.changeMembership(ctx, timeout, id, func(ctx context.Context, m georaftv1.MembershipServiceClient) error {
		_, err := m.RemoveMember(ctx, &georaftv1.RemoveMemberRequest{Id: id})
		return err
	})
}

// changeMembership runs change against running members other than avoid until one succeeds.
func (c *Cluster) changeMembership(ctx context.Context, timeout time.Duration, avoid uint64,
	change func(context.Context, georaftv1.MembershipServiceClient) error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		for _, n := range c.Nodes {
			if n.ID == avoid || !n.Running() {
				continue
			}
			m, err := c.Membership(n.ID)
			if err != nil {
				last = err
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err = change(cctx, m)
			cancel()
			if err == nil {
				return nil
			}
			last = fmt.Errorf("through node %d: %w", n.ID, err)
			if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
				return last
			}
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("membership change not done within %v: %w", timeout, last)
}

// Members lists the membership as member id sees it (linearizably, through the leader).
func (c *Cluster) Members(ctx context.Context, id uint64) (*georaftv1.ListMembersResponse, error) {
	m, err := c.Membership(id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return m.ListMembers(ctx, &georaftv1.ListMembersRequest{Linearizable: true})
}

// WaitRole waits until some running member's linearizable list shows member id in one of
// roles.
func (c *Cluster) WaitRole(ctx context.Context, id uint64, timeout time.Duration, roles ...georaftv1.MemberRole) error {
	removal := slices.Contains(roles, georaftv1.MemberRole_MEMBER_ROLE_REMOVED)
	return WaitFor(ctx, timeout, fmt.Sprintf("member %d to be %v", id, roles), func() error {
		last := errors.New("no member answered")
		for _, n := range c.Nodes {
			if !n.Running() || n.ID == id && removal {
				continue
			}
			resp, err := c.Members(ctx, n.ID)
			if err != nil {
				last = err
				continue
			}
			last = fmt.Errorf("node %d does not list member %d", n.ID, id)
			for _, ms := range resp.GetMembers() {
				if m := ms.GetMember(); m.GetId() == id {
					if slices.Contains(roles, m.GetRole()) {
						return nil
					}
					last = fmt.Errorf("member %d is %v", id, m.GetRole())
				}
			}
			break
		}
		return last
	})
}

// RemoveNode kills member id if it runs, stops its links and forgets it; its data dir
// stays, and its config file is renamed nodeN.yaml.removed, so that the directory describes
// the members that remain (Open).
func (c *Cluster) RemoveNode(id uint64) error {
	n, err := c.node(id)
	if err != nil {
		return err
	}
	if p := n.process(); p != nil {
		if err := p.Kill(10 * time.Second); err != nil {
			return err
		}
	}
	if c.Proxies != nil {
		c.Proxies.Remove(id)
	}
	c.Nodes = slices.DeleteFunc(c.Nodes, func(m *Node) bool { return m.ID == id })
	if err := os.Rename(n.ConfigPath, n.ConfigPath+".removed"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	c.mu.Lock()
	if conn, ok := c.conns[id]; ok {
		conn.Close()
		delete(c.conns, id)
	}
	c.mu.Unlock()
	return nil
}

// writeNodeConfig writes cfg to path and reads it back as a node would.
func (c *Cluster) writeNodeConfig(path string, cfg *config.Config) (*config.Config, error) {
	if err := writeConfig(path, c.spec.Header, cfg); err != nil {
		return nil, err
	}
	loaded, err := config.LoadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read back %s: %w", path, err)
	}
	return loaded, nil
}

// RewriteConfigs writes every member's config again with today's members as its peers (a
// cluster New made), and the client links' map with today's members, for nodes restarted
// into a changed membership. A node that is a member already goes by its data directory's
// membership, not by these peers lists; they say where it dials each member.
func (c *Cluster) RewriteConfigs() error {
	if c.spec == nil {
		return errors.New("rewrite configs: only for a cluster made by New")
	}
	members := c.Regions()
	for _, n := range c.Nodes {
		cfg, err := c.spec.nodeConfig(n.ID, members)
		if err != nil {
			return err
		}
		if n.Config, err = c.writeNodeConfig(n.ConfigPath, cfg); err != nil {
			return err
		}
	}
	if c.Links == nil {
		return nil
	}
	links, err := c.spec.clientLinks(members)
	if err != nil || links == nil {
		return err
	}
	c.Links = links
	return WriteConfigs(c.ConfigDir, c.spec.Header, nil, links)
}

// launchAttempts bounds Launch's tries on fresh ports.
const launchAttempts = 3

// Launch makes a cluster of spec in dir (New), starts every node and waits until a leader
// is agreed on as want says. With free ports (spec.Ports nil or a *FreePorts), another
// program may take one between choosing it and the node binding it: when a port is found
// taken or a node exits while the cluster starts, it tries again on fresh ports, up to
// three times, replacing the directory's configs and data. On failure nothing it started
// runs any more.
func Launch(ctx context.Context, dir string, spec Spec, opts Options, want Want, timeout time.Duration) (*Cluster, Leader, error) {
	var errs []error
	for attempt := 1; attempt <= launchAttempts; attempt++ {
		s := spec
		_, free := spec.Ports.(*FreePorts)
		free = free || spec.Ports == nil
		if spec.Ports == nil || attempt > 1 {
			s.Ports = &FreePorts{}
		}
		c, err := New(dir, s, opts)
		if err != nil {
			return nil, Leader{}, err
		}
		leader, err := c.Up(ctx, timeout, want)
		if err == nil {
			return c, leader, nil
		}
		c.Close()
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt, err))
		if !free || (len(c.Crashes()) == 0 && !errors.Is(err, ErrPortTaken)) || ctx.Err() != nil {
			break
		}
		c.Logf("%v; trying again on fresh ports", err)
		for _, sub := range []string{"configs", "data", "certs"} {
			if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
				return nil, Leader{}, fmt.Errorf("clean %s before another start: %w", sub, err)
			}
		}
	}
	return nil, Leader{}, errors.Join(errs...)
}
