# deploy/cluster.mk: a real georaft cluster on Google Cloud (5 VMs in 5 regions by default).
# Included from the Makefile (`include deploy/cluster.mk`); docs/deploy.md is the guide.
#
#   make cluster-up                      build, terraform apply, certificates, ansible, wait, status
#   make cluster-certs                   issue the CA and certificates (once; cluster-deploy runs it)
#   make cluster-renew-certs             reissue node and client certificates under the same CA;
#                                        make cluster-upgrade then rolls them out node by node
#   make cluster-status                  nodes and `georaft status`
#   make cluster-bench [REGION=europe-west1] [BENCH_ARGS='-d 30s']
#   make cluster-upgrade                 rolling restart onto a new build, one node at a time
#   make cluster-tune RTT=measured.csv   regenerate the timing group_vars from an RTT matrix
#   make cluster-down                    terraform destroy
#
# Needs terraform (>= 1.5), ansible-playbook (ansible-core) and Google credentials
# (GOOGLE_APPLICATION_CREDENTIALS, or `gcloud auth application-default login`). Every target
# checks what it needs first and says what is missing.

GO ?= go
TERRAFORM ?= terraform
ANSIBLE_PLAYBOOK ?= ansible-playbook
TF_DIR ?= terraform
ANSIBLE_DIR ?= ansible
CLUSTER_DIR ?= build/cluster
# Binaries for the VMs (linux/amd64, static), whatever the operator's machine is.
CLUSTER_BIN_DIR ?= bin/linux-amd64
# Private key matching ssh_public_key in terraform.tfvars; empty: ssh's defaults.
SSH_KEY ?=
# Extra flags for terraform apply/destroy, e.g. TF_APPLY_FLAGS=-auto-approve.
TF_APPLY_FLAGS ?=
# cluster-bench: run from this region's VM instead of this machine; arguments for the bench.
REGION ?=
BENCH_ARGS ?=
# cluster-tune: the RTT matrix to derive timing from.
RTT ?= configs/geo/rtt-5-regions.csv
# TLS on the client and peer ports (mutual between peers), from the CA and certificates that
# cluster-certs issues once into CLUSTER_PKI_DIR. CLUSTER_TLS=0 deploys without TLS.
CLUSTER_TLS ?= 1
CLUSTER_PKI_DIR ?= $(CLUSTER_DIR)/pki
CLUSTER_TLS_ON := $(filter 1 true yes,$(CLUSTER_TLS))
ifeq ($(filter 0 1 true false yes no,$(CLUSTER_TLS)),)
$(error CLUSTER_TLS=$(CLUSTER_TLS): want 1 (TLS, the default) or 0 (no TLS))
endif

CLUSTER_TF_OUTPUT := $(CLUSTER_DIR)/terraform-output.json
CLUSTER_INVENTORY := $(CLUSTER_DIR)/inventory.yml
CLUSTER_INVENTORY_CMD := $(GO) run ./deploy/cmd/georaft-inventory
CLUSTER_ANSIBLE := cd $(ANSIBLE_DIR) && ANSIBLE_CONFIG=ansible.cfg $(ANSIBLE_PLAYBOOK) -i $(abspath $(CLUSTER_INVENTORY)) \
	-e georaft_binary_src=$(abspath $(CLUSTER_BIN_DIR))/georaftd \
	$(if $(CLUSTER_TLS_ON),-e georaft_tls_src_dir=$(abspath $(CLUSTER_PKI_DIR)),-e georaft_tls_enabled=false)
# What the georaft client needs to talk to the cluster: the CA, and the admin certificate.
CLUSTER_CLIENT_TLS := $(if $(CLUSTER_TLS_ON),--cacert $(CLUSTER_PKI_DIR)/ca.crt \
	--cert $(CLUSTER_PKI_DIR)/client-admin.crt --key $(CLUSTER_PKI_DIR)/client-admin.key)
CLUSTER_SSH_OPTS := -o StrictHostKeyChecking=accept-new $(if $(SSH_KEY),-i $(SSH_KEY))

.PHONY: cluster-up cluster-down cluster-status cluster-bench cluster-upgrade cluster-tune \
	cluster-build cluster-apply cluster-inventory cluster-certs cluster-renew-certs cluster-deploy cluster-wait \
	cluster-check-terraform cluster-check-ansible cluster-check-credentials cluster-check-state tflint

cluster-check-terraform:
	@command -v $(TERRAFORM) >/dev/null 2>&1 || { \
	  echo "cluster: terraform not found. Install Terraform >= 1.5 from HashiCorp (it is not packaged for Debian), or set TERRAFORM=/path/to/terraform." >&2; exit 1; }

cluster-check-ansible:
	@command -v $(ANSIBLE_PLAYBOOK) >/dev/null 2>&1 || { \
	  echo "cluster: ansible-playbook not found. Install ansible-core (apt-get install ansible-core, or pip install ansible-core)." >&2; exit 1; }

cluster-check-credentials:
	@if [ -n "$$GOOGLE_APPLICATION_CREDENTIALS" ]; then \
	  [ -r "$$GOOGLE_APPLICATION_CREDENTIALS" ] || { echo "cluster: GOOGLE_APPLICATION_CREDENTIALS=$$GOOGLE_APPLICATION_CREDENTIALS is not a readable file." >&2; exit 1; }; \
	elif command -v gcloud >/dev/null 2>&1 && gcloud auth application-default print-access-token >/dev/null 2>&1; then :; \
	else \
	  echo "cluster: no Google Cloud credentials. Set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, or run 'gcloud auth application-default login'." >&2; exit 1; \
	fi
	@[ -f $(TF_DIR)/terraform.tfvars ] || { \
	  echo "cluster: $(TF_DIR)/terraform.tfvars is missing. Copy $(TF_DIR)/terraform.tfvars.example and set project_id, ssh_public_key, admin_cidrs and client_cidrs." >&2; exit 1; }

# Targets that only read the cluster need its Terraform state, not credentials for apply.
cluster-check-state: cluster-check-terraform
	@$(TERRAFORM) -chdir=$(TF_DIR) output -json nodes >/dev/null 2>&1 || { \
	  echo "cluster: no cluster in the Terraform state of $(TF_DIR)/ (run make cluster-up first)." >&2; exit 1; }

cluster-build:
	@mkdir -p $(CLUSTER_BIN_DIR) bin
	GOOS=linux GOARCH=amd64 CGO_ENABLED=0 $(GO) build -trimpath -o $(CLUSTER_BIN_DIR)/ ./node/cmd/georaftd ./client/cmd/georaft
	$(GO) build -o bin/ ./client/cmd/georaft

cluster-apply: cluster-check-terraform cluster-check-credentials
	$(TERRAFORM) -chdir=$(TF_DIR) init -input=false
	$(TERRAFORM) -chdir=$(TF_DIR) apply -input=false $(TF_APPLY_FLAGS)

cluster-inventory: cluster-check-state
	@mkdir -p $(CLUSTER_DIR)
	$(TERRAFORM) -chdir=$(TF_DIR) output -json > $(CLUSTER_TF_OUTPUT)
	$(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -out $(CLUSTER_INVENTORY) $(if $(SSH_KEY),-ssh-key $(SSH_KEY))
	@echo "inventory: $(CLUSTER_INVENTORY)"

# Issued once: a CA (valid 10 years), a certificate per node naming its internal IP, external
# IP and VM name, and an admin client certificate (valid a year). An existing CA is kept, so a
# redeploy changes nothing.
CLUSTER_CERTS_CMD = $(GO) run ./node/cmd/georaftd certs --out $(CLUSTER_PKI_DIR) --client admin \
	$$($(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -print certs-flags)
cluster-certs: cluster-inventory
ifneq ($(CLUSTER_TLS_ON),)
	@if [ -f $(CLUSTER_PKI_DIR)/ca.crt ]; then \
	  echo "certs: keeping the CA and certificates in $(CLUSTER_PKI_DIR)"; \
	else \
	  $(CLUSTER_CERTS_CMD); \
	fi
else
	@echo "certs: CLUSTER_TLS=$(CLUSTER_TLS), the cluster runs without TLS"
endif

# Before the year is out, or after nodes were added: new node and client certificates under
# the same CA, which cluster-upgrade installs one node at a time.
cluster-renew-certs: cluster-inventory
	@[ -f $(CLUSTER_PKI_DIR)/ca.crt ] || { echo "certs: no CA in $(CLUSTER_PKI_DIR) to renew under (make cluster-certs issues one)." >&2; exit 1; }
	$(CLUSTER_CERTS_CMD) --renew
	@echo "certs: roll the new certificates out with make cluster-upgrade"

cluster-deploy: cluster-check-ansible cluster-certs
	cd $(ANSIBLE_DIR) && ANSIBLE_CONFIG=ansible.cfg ansible -i $(abspath $(CLUSTER_INVENTORY)) georaft \
	  -m ansible.builtin.wait_for_connection -a timeout=300
	$(CLUSTER_ANSIBLE) site.yml

# site.yml already waits for /readyz on every node; this shows what the cluster says.
cluster-wait: cluster-inventory
	@bin/georaft --endpoints $$($(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -print endpoints) $(CLUSTER_CLIENT_TLS) status

# The steps run one after another even under make -j.
CLUSTER_MAKE := $(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST))

cluster-up: cluster-check-terraform cluster-check-ansible cluster-check-credentials
	$(CLUSTER_MAKE) cluster-build
	$(CLUSTER_MAKE) cluster-apply
	$(CLUSTER_MAKE) cluster-deploy
	$(CLUSTER_MAKE) cluster-wait

cluster-status: cluster-inventory
	@$(TERRAFORM) -chdir=$(TF_DIR) output nodes
	@[ -x bin/georaft ] || $(GO) build -o bin/ ./client/cmd/georaft
	bin/georaft --endpoints $$($(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -print endpoints) $(CLUSTER_CLIENT_TLS) status

cluster-upgrade: cluster-check-ansible cluster-build cluster-certs
	$(CLUSTER_ANSIBLE) upgrade.yml

# From this machine (needs it in client_cidrs), or from the VM in $(REGION) over ssh, talking
# to the nodes' internal addresses as an in-region client would.
cluster-bench: cluster-inventory
ifeq ($(strip $(REGION)),)
	@[ -x bin/georaft ] || $(GO) build -o bin/ ./client/cmd/georaft
	bin/georaft --endpoints $$($(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -print endpoints) $(CLUSTER_CLIENT_TLS) bench $(BENCH_ARGS)
else
	@[ -x $(CLUSTER_BIN_DIR)/georaft ] || $(CLUSTER_MAKE) cluster-build
	@host=$$($(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -print host=$(REGION)) || exit 1; \
	user=$$($(TERRAFORM) -chdir=$(TF_DIR) output -raw ssh_user); \
	endpoints=$$($(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -print internal-endpoints); \
	echo "bench from $(REGION) ($$user@$$host) against $$endpoints"; \
	scp -q $(CLUSTER_SSH_OPTS) $(CLUSTER_BIN_DIR)/georaft "$$user@$$host:/tmp/georaft-bench" || exit 1; \
	tls=""; \
	if [ -n "$(CLUSTER_TLS_ON)" ]; then \
	  scp -q $(CLUSTER_SSH_OPTS) $(CLUSTER_PKI_DIR)/ca.crt "$$user@$$host:/tmp/georaft-bench-ca.crt" || exit 1; \
	  tls="--cacert /tmp/georaft-bench-ca.crt"; \
	fi; \
	ssh $(CLUSTER_SSH_OPTS) "$$user@$$host" /tmp/georaft-bench --endpoints "$$endpoints" $$tls bench $(BENCH_ARGS)
endif

cluster-tune:
	@[ -x bin/georaft ] || $(GO) build -o bin/ ./client/cmd/georaft
	bin/georaft tune --rtt $(RTT) --format ansible > $(ANSIBLE_DIR)/group_vars/georaft/timing.yml.new
	mv $(ANSIBLE_DIR)/group_vars/georaft/timing.yml.new $(ANSIBLE_DIR)/group_vars/georaft/timing.yml
	@bin/georaft tune --rtt $(RTT)
	@echo "wrote $(ANSIBLE_DIR)/group_vars/georaft/timing.yml; apply it with make cluster-upgrade"

cluster-down: cluster-check-terraform cluster-check-credentials
	$(TERRAFORM) -chdir=$(TF_DIR) destroy -input=false $(TF_APPLY_FLAGS)
	rm -f $(CLUSTER_TF_OUTPUT) $(CLUSTER_INVENTORY)
	@# The certificates name the destroyed VMs' addresses; the next cluster gets a new CA.
	rm -rf $(CLUSTER_PKI_DIR)

# tflint with every rule of its bundled Terraform ruleset (terraform/.tflint.hcl); the Google
# ruleset is a plugin that cannot be downloaded offline. Pinned and run with `go run`, like
# buf, so nothing needs installing; the first run compiles it (about 1.5 minutes on 2 cores).
TFLINT_VERSION ?= v0.64.0
tflint:
	$(GO) run github.com/terraform-linters/tflint@$(TFLINT_VERSION) --chdir=$(TF_DIR) --format compact
