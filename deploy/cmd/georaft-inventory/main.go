// Command georaft-inventory turns `terraform output -json` of georaft's terraform/ into an
// Ansible inventory for ansible/site.yml:
//
//	terraform -chdir=terraform output -json | go run ./deploy/cmd/georaft-inventory > inventory.yml
//	go run ./deploy/cmd/georaft-inventory -in tf.json -out inventory.yml -ssh-key ~/.ssh/georaft
//
// With -print it answers the questions deploy/cluster.mk asks instead:
//
//	-print endpoints            client addresses host:port,... (external where there is one)
//	-print internal-endpoints   client addresses inside the VPC
//	-print host=REGION          the address Ansible reaches the node in REGION at
//	-print certs-flags          `georaftd certs` flags: --node ID=HOST,... for every node
//	-print nodes                "NAME ZONE" per node, one a line (what gcloud commands loop over)
//	-print ssh-mode             metadata, oslogin or iap
//	-print project              the project id
//	-print data-disks           "DISK ZONE" per node's data disk
//	-print prometheus-targets   a Prometheus file_sd document of every node's metrics port
//	-print placement            ID=REGION,... of every node (georaft tune --placement)
//
// With -host-keys DIR (gcloud compute instances get-guest-attributes NAME
// --query-path=hostkeys/ --format=json saved as DIR/NAME.json for every node) it also writes
// -known-hosts FILE and pins every host's key in the inventory.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/georaft/georaft/deploy/inventory"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "georaft-inventory:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("georaft-inventory", flag.ContinueOnError)
	in := fs.String("in", "-", "`terraform output -json` file, - for standard input")
	out := fs.String("out", "-", "inventory file to write, - for standard output")
	var opts inventory.Options
	fs.StringVar(&opts.Group, "group", inventory.DefaultGroup, "inventory group of the nodes")
	fs.BoolVar(&opts.UseInternalIPs, "internal", false, "connect to internal IPs (running from inside the VPC)")
	fs.StringVar(&opts.SSHPrivateKeyFile, "ssh-key", "", "private key file for ansible_ssh_private_key_file")
	fs.StringVar(&opts.SSHUser, "ssh-user", "", "login to use instead of Terraform's ssh_user (OS Login: your POSIX name)")
	hostKeys := fs.String("host-keys", "", "directory of NAME.json guest attributes (hostkeys/) of every node")
	fs.StringVar(&opts.KnownHostsFile, "known-hosts", "", "known_hosts file to write from -host-keys and pin in the inventory")
	query := fs.String("print", "", "print endpoints, internal-endpoints, host=REGION, certs-flags, placement, nodes, data-disks, prometheus-targets, ssh-mode or project instead of the inventory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	src := stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			return fmt.Errorf("open terraform output: %w", err)
		}
		defer f.Close()
		src = f
	}
	if (*hostKeys == "") != (opts.KnownHostsFile == "") {
		return errors.New("-host-keys and -known-hosts go together")
	}
	if *query != "" {
		c, err := inventory.Parse(src)
		if err != nil {
			return err
		}
		answer, err := answer(c, *query, opts)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, answer)
		return err
	}
	if *hostKeys != "" {
		data, err := io.ReadAll(src)
		if err != nil {
			return fmt.Errorf("read terraform output: %w", err)
		}
		c, err := inventory.Parse(bytes.NewReader(data))
		if err != nil {
			return err
		}
		known, err := c.KnownHosts(*hostKeys)
		if err != nil {
			return err
		}
		if err := inventory.WriteFileAtomic(opts.KnownHostsFile, known); err != nil {
			return err
		}
		if opts.KnownHostsFile, err = filepath.Abs(opts.KnownHostsFile); err != nil {
			return err
		}
		src = bytes.NewReader(data)
	}
	if *out == "-" {
		return inventory.Generate(src, stdout, opts)
	}
	// Write next to the target and rename, so a failed run never leaves half an inventory
	// for the next ansible-playbook.
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".inventory-*.yml")
	if err != nil {
		return fmt.Errorf("create inventory: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := inventory.Generate(src, tmp, opts); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", *in, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write inventory %s: %w", *out, err)
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return fmt.Errorf("write inventory %s: %w", *out, err)
	}
	return nil
}

func answer(c inventory.Cluster, query string, opts inventory.Options) (string, error) {
	switch {
	case query == "nodes":
		lines := make([]string, len(c.Nodes))
		for i, n := range c.Nodes {
			lines[i] = n.Name + " " + n.Zone
		}
		return strings.Join(lines, "\n"), nil
	case query == "data-disks":
		if len(c.DataDisks) == 0 {
			return "", errors.New("terraform output has no data_disks (apply the current terraform/ first)")
		}
		lines := make([]string, len(c.DataDisks))
		for i, d := range c.DataDisks {
			lines[i] = d.Name + " " + d.Zone
		}
		return strings.Join(lines, "\n"), nil
	case query == "prometheus-targets":
		out, err := c.PrometheusTargets()
		return strings.TrimSuffix(string(out), "\n"), err
	case query == "ssh-mode":
		return c.SSHMode, nil
	case query == "project":
		return c.ProjectID, nil
	case query == "endpoints":
		return strings.Join(c.ClientEndpoints(false), ","), nil
	case query == "internal-endpoints":
		return strings.Join(c.ClientEndpoints(true), ","), nil
	case query == "certs-flags":
		return strings.Join(c.CertsFlags(), " "), nil
	case query == "placement":
		parts := make([]string, len(c.Nodes))
		for i, n := range c.Nodes {
			parts[i] = fmt.Sprintf("%d=%s", n.ID, n.Region)
		}
		return strings.Join(parts, ","), nil
	case strings.HasPrefix(query, "host="):
		n, err := c.NodeIn(strings.TrimPrefix(query, "host="))
		if err != nil {
			return "", err
		}
		if n.ExternalIP == "" || opts.UseInternalIPs {
			return n.InternalIP, nil
		}
		return n.ExternalIP, nil
	}
	return "", fmt.Errorf("-print %q: want endpoints, internal-endpoints, host=REGION, certs-flags, placement, nodes, data-disks, prometheus-targets, ssh-mode or project", query)
}
