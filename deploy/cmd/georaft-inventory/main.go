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
package main

import (
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
	query := fs.String("print", "", "print endpoints, internal-endpoints, host=REGION or certs-flags instead of the inventory")
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
	case query == "endpoints":
		return strings.Join(c.ClientEndpoints(false), ","), nil
	case query == "internal-endpoints":
		return strings.Join(c.ClientEndpoints(true), ","), nil
	case query == "certs-flags":
		return strings.Join(c.CertsFlags(), " "), nil
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
	return "", fmt.Errorf("-print %q: want endpoints, internal-endpoints, host=REGION or certs-flags", query)
}
