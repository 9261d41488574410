package clusterkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/georaft/georaft/node/config"
)

// AddNode adds a member to a cluster New made, in region: the next id, its ports, its
// config listing every member and itself, its links to and from every member (and the
// client links) running, its certificate with TLS. It is not started, and the other
// members' config files are not changed: a membership change tells them, or
// RewriteConfigs for clusters restarted into the new membership. DialAddr says where each
// member reaches it.
func (c *Cluster) AddNode(region string) (*Node, error) {
	if c.spec == nil {
		return nil, errors.New("add node: only a cluster made by New can grow (its spec places the new node)")
	}
	id := uint64(1)
	members := map[uint64]string{}
	for _, n := range c.Nodes {
		id = max(id, n.ID+1)
		members[n.ID] = n.Region
	}
	members[id] = region
	cfg, err := c.spec.nodeConfig(id, members)
	if err != nil {
		return nil, err
	}
	if c.spec.TLS {
		if err := issueNodeCert(c.CertDir, id); err != nil {
			return nil, err
		}
	}
	path := filepath.Join(c.ConfigDir, NodeFileName(id))
	if err := writeConfig(path, strings.Join(c.spec.Header, "\n"), cfg); err != nil {
		return nil, err
	}
	if cfg, err = config.LoadFile(path); err != nil {
		return nil, fmt.Errorf("read back %s: %w", path, err)
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

// RemoveNode kills member id if it runs, stops its links and forgets it; its data dir
// and config file stay.
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
	c.mu.Lock()
	if conn, ok := c.conns[id]; ok {
		conn.Close()
		delete(c.conns, id)
	}
	c.mu.Unlock()
	return nil
}

// RewriteConfigs writes every member's config again with today's members as its peers (a
// cluster New made), for nodes restarted into a changed membership.
func (c *Cluster) RewriteConfigs() error {
	if c.spec == nil {
		return errors.New("rewrite configs: only for a cluster made by New")
	}
	members := map[uint64]string{}
	for _, n := range c.Nodes {
		members[n.ID] = n.Region
	}
	for _, n := range c.Nodes {
		cfg, err := c.spec.nodeConfig(n.ID, members)
		if err != nil {
			return err
		}
		if err := writeConfig(n.ConfigPath, strings.Join(c.spec.Header, "\n"), cfg); err != nil {
			return err
		}
		if n.Config, err = config.LoadFile(n.ConfigPath); err != nil {
			return fmt.Errorf("read back %s: %w", n.ConfigPath, err)
		}
	}
	return nil
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
