// Command georaft-nodechange replaces, adds or removes a node of a running georaft cluster
// deployed by the kit: deploy/cluster.mk's cluster-replace-node, cluster-add-node and
// cluster-remove-node run it with the kit's commands (docs/deploy.md).
//
//	georaft-nodechange -op replace|add|remove -region R [-terraform terraform] [-tf-dir terraform] ...
//	georaft-nodechange -op check [-terraform terraform] [-tf-dir terraform]   (before cluster-apply)
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/georaft/georaft/deploy/nodechange"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "georaft-nodechange: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("georaft-nodechange", flag.ContinueOnError)
	op := fs.String("op", "", "replace, add or remove; check: may cluster-apply run (no change unfinished, the record complete)")
	region := fs.String("region", "", "the region whose node changes")
	k := nodechange.Kit{Out: os.Stdout, Err: os.Stderr, Now: time.Now}
	fs.StringVar(&k.Terraform, "terraform", "terraform", "terraform command")
	fs.StringVar(&k.TFDir, "tf-dir", "terraform", "the kit's Terraform directory")
	fs.StringVar(&k.ApplyFlags, "apply-flags", "", "extra flags for terraform apply")
	fs.StringVar(&k.Gcloud, "gcloud", "gcloud", "gcloud command")
	fs.StringVar(&k.Make, "make", "make", "command that runs a cluster.mk target")
	fs.StringVar(&k.Playbook, "playbook", "", "ansible-playbook command line with the cluster's inventory and vars, up to the playbook")
	fs.StringVar(&k.Client, "client", "bin/georaft", "georaft client command line with the cluster's TLS flags")
	fs.StringVar(&k.Certs, "certs", "", "`georaftd certs` command line; empty: the cluster runs without TLS")
	fs.StringVar(&k.PKIDir, "pki", "build/cluster/pki", "the cluster's PKI directory")
	fs.StringVar(&k.RecordFile, "record", "", "the kit's record of node changes (default TF_DIR/membership.auto.tfvars.json)")
	fs.StringVar(&k.JournalFile, "journal", "build/cluster/node-change.json", "where the change under way is recorded")
	fs.StringVar(&k.TimingFile, "timing", "ansible/group_vars/georaft/timing.yml", "the tuned timing group_vars")
	fs.DurationVar(&k.Wait, "wait", 30*time.Minute, "how long to wait for the cluster to apply the change")
	fs.DurationVar(&k.Poll, "poll", 5*time.Second, "how often to ask the cluster meanwhile")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if k.RecordFile == "" {
		k.RecordFile = filepath.Join(k.TFDir, "membership.auto.tfvars.json")
	}
	k.TfvarsFile = filepath.Join(k.TFDir, "terraform.tfvars")
	if *op == "check" {
		return k.Check()
	}
	if k.Playbook == "" {
		return fmt.Errorf("-playbook is required")
	}
	switch *op {
	case "replace":
		return k.Replace(*region)
	case "add":
		return k.Add(*region)
	case "remove":
		return k.Remove(*region)
	}
	return fmt.Errorf("-op %q: want replace, add or remove", *op)
}
