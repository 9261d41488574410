# tflint's bundled Terraform ruleset with every rule on; the Google ruleset is a plugin that
# cannot be downloaded here. `make tflint` runs it, and `make test` runs that target.
plugin "terraform" {
  enabled = true
  preset  = "all"
}
