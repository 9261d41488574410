// Package deploy holds the checks of georaft's deployment kit: the Terraform in terraform/
// (parsed with HCL, formatted as terraform fmt would, variable validation run by a real
// terraform when one is installed), the Ansible in ansible/ (syntax, rendered templates, a
// real five-node run on this machine), and the timing group_vars that `georaft tune`
// generates. deploy/inventory and deploy/cmd/georaft-inventory turn Terraform's outputs
// into the Ansible inventory; deploy/cluster.mk drives a real cluster.
package deploy
