// Command georaft-inventory turns `terraform output -json` of georaft's terraform/ into an
// Ansible inventory for ansible/site.yml:
//
//	terraform -chdir=terraform output -json | go run ./deploy/cmd/georaft-inventory > inventory.yml
//	go run ./deploy/cmd/georaft-inventory -in tf.json -out inventory.yml -ssh-key ~/.ssh/georaft
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

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
