# tflint's bundled Terraform ruleset with every rule on; the Google ruleset is a plugin that
# cannot be downloaded here. `make tflint` runs it (and `make test` does, through deploy's tests).
plugin "terraform" {
  enabled = true
  preset  = "all"
}
