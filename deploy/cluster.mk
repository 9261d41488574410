# deploy/cluster.mk: a real georaft cluster on Google Cloud (5 VMs in 5 regions by default).
# Included from the Makefile (`include deploy/cluster.mk`); docs/deploy.md is the guide.
#
#   make cluster-preflight               check the project before anything is created (cluster-up runs it first)
#   make cluster-up                      preflight, build, terraform apply, certificates, ansible, wait, status;
#                                        against a live cluster the ansible step is the rolling upgrade
#   make cluster-certs                   issue the CA and certificates (once; cluster-deploy runs it)
#   make cluster-renew-certs             reissue node and client certificates under the same CA;
#                                        make cluster-upgrade then rolls them out node by node
#   make cluster-status                  nodes and `georaft status`
#   make cluster-bench [REGION=europe-west1] [BENCH_ARGS='-d 30s']
#   make cluster-upgrade                 rolling restart onto a new build, one node at a time
#   make cluster-tune RTT=measured.csv   regenerate the timing group_vars from an RTT matrix
#   make cluster-down CONFIRM=<cluster id>  final snapshot of every data disk, then terraform destroy;
#                                        the CA in build/cluster/pki is kept
#   make cluster-monitoring              Prometheus file_sd targets from the inventory (deploy/monitoring/)
#   make cluster-replace-node REGION=R   that region's node on a new VM and a new, blank disk that joins as a
#                                        new member and takes the old member's place (old disk snapshotted, kept)
#   make cluster-add-node REGION=R       a node in a region that has none; it joins and is promoted
#   make cluster-remove-node REGION=R    the region's member removed first, then its VM (disk snapshotted, kept)
#
# Needs terraform (>= 1.5), ansible-playbook (ansible-core) and Google credentials
# (GOOGLE_APPLICATION_CREDENTIALS, or `gcloud auth application-default login`). Every target
# checks what it needs first and says what is missing.

GO ?= go
TERRAFORM ?= terraform
ANSIBLE_PLAYBOOK ?= ansible-playbook
ANSIBLE ?= ansible
GCLOUD ?= gcloud
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
# cluster-tune: the RTT matrix to derive timing from, and the member ids' regions (empty: the
# cluster's, from its Terraform outputs, or one node per region of the matrix before it exists).
RTT ?= configs/geo/rtt-5-regions.csv
PLACEMENT ?=
# cluster-replace-node, cluster-add-node: how long to wait for the new member to catch up and
# become a voter (a node holding much data takes a while to receive it).
NODE_WAIT ?= 30m
# TLS on the client and peer ports (mutual between peers), from the CA and certificates that
# cluster-certs issues once into CLUSTER_PKI_DIR. CLUSTER_TLS=0 deploys without TLS.
CLUSTER_TLS ?= 1
CLUSTER_PKI_DIR ?= $(CLUSTER_DIR)/pki
CLUSTER_TLS_ON := $(filter 1 true yes,$(CLUSTER_TLS))
ifeq ($(filter 0 1 true false yes no,$(CLUSTER_TLS)),)
$(error CLUSTER_TLS=$(CLUSTER_TLS): want 1 (TLS, the default) or 0 (no TLS))
endif

# Pin every node's ssh host key from its guest attributes (1), or trust keys on first contact (0).
PIN_HOST_KEYS ?= 1
# The login for ssh_mode oslogin or iap: empty asks OS Login for your POSIX user name.
SSH_USER ?=
# cluster-deploy on a live cluster runs the rolling upgrade; 1 restarts every node at once
# (site.yml), for what cannot roll: a new CA, TLS turned on or off.
CLUSTER_ALL_AT_ONCE ?= 0
# cluster-certs without a local CA, on a cluster whose nodes have one: 1 issues a new CA anyway.
NEW_CA ?= 0
# cluster-down: the cluster id, typed out; KEEP_DISKS=1 keeps the data disks after their final
# snapshots instead of deleting them.
CONFIRM ?=
KEEP_DISKS ?= 0

CLUSTER_TF_OUTPUT := $(CLUSTER_DIR)/terraform-output.json
CLUSTER_INVENTORY := $(CLUSTER_DIR)/inventory.yml
CLUSTER_KNOWN_HOSTS := $(CLUSTER_DIR)/known_hosts
CLUSTER_HOST_KEYS := $(CLUSTER_DIR)/hostkeys
CLUSTER_INVENTORY_CMD := $(GO) run ./deploy/cmd/georaft-inventory
CLUSTER_ANSIBLE := cd $(ANSIBLE_DIR) && ANSIBLE_CONFIG=ansible.cfg $(ANSIBLE_PLAYBOOK) -i $(abspath $(CLUSTER_INVENTORY)) \
	-e georaft_binary_src=$(abspath $(CLUSTER_BIN_DIR))/georaftd \
	-e georaft_client_binary_src=$(abspath $(CLUSTER_BIN_DIR))/georaft \
	$(if $(CLUSTER_TLS_ON),-e georaft_tls_src_dir=$(abspath $(CLUSTER_PKI_DIR)),-e georaft_tls_enabled=false)
CLUSTER_ANSIBLE_ADHOC := cd $(ANSIBLE_DIR) && ANSIBLE_CONFIG=ansible.cfg $(ANSIBLE) -i $(abspath $(CLUSTER_INVENTORY)) georaft
# What the georaft client needs to talk to the cluster: the CA, and the admin certificate.
CLUSTER_CLIENT_TLS := $(if $(CLUSTER_TLS_ON),--cacert $(CLUSTER_PKI_DIR)/ca.crt \
	--cert $(CLUSTER_PKI_DIR)/client-admin.crt --key $(CLUSTER_PKI_DIR)/client-admin.key)
CLUSTER_SSH_OPTS = $(if $(filter 1,$(PIN_HOST_KEYS)),-o UserKnownHostsFile=$(CLUSTER_KNOWN_HOSTS) -o StrictHostKeyChecking=yes,-o StrictHostKeyChecking=accept-new) \
	$(if $(SSH_KEY),-i $(SSH_KEY))

.PHONY: cluster-up cluster-down cluster-status cluster-bench cluster-upgrade cluster-tune cluster-preflight \
	cluster-build cluster-apply cluster-inventory cluster-certs cluster-renew-certs cluster-deploy cluster-wait \
	cluster-check-terraform cluster-check-ansible cluster-check-credentials cluster-check-state cluster-check-gcloud \
	cluster-host-keys cluster-monitoring tflint cluster-replace-node cluster-add-node cluster-remove-node \
	cluster-check-region cluster-nodechange-tools

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

cluster-check-gcloud:
	@command -v $(GCLOUD) >/dev/null 2>&1 || { \
	  echo "cluster: gcloud not found. Install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install), or set GCLOUD=/path/to/gcloud." >&2; exit 1; }

# Everything a first apply needs, checked read-only: credentials, project, APIs, permissions,
# quotas, the machine type in each zone, org policies. Each failure says how to fix it.
cluster-preflight: cluster-check-gcloud
	@[ -f $(TF_DIR)/terraform.tfvars ] || { \
	  echo "cluster: $(TF_DIR)/terraform.tfvars is missing. Copy $(TF_DIR)/terraform.tfvars.example and set project_id, ssh_mode, admin_cidrs and client_cidrs." >&2; exit 1; }
	$(GO) run ./deploy/cmd/georaft-preflight -tf-dir $(TF_DIR) -gcloud $(GCLOUD)

# Targets that only read the cluster need its Terraform state, not credentials for apply.
cluster-check-state: cluster-check-terraform
	@$(TERRAFORM) -chdir=$(TF_DIR) output -json nodes >/dev/null 2>&1 || { \
	  echo "cluster: no cluster in the Terraform state of $(TF_DIR)/ (run make cluster-up first)." >&2; exit 1; }

cluster-build:
	@mkdir -p $(CLUSTER_BIN_DIR) bin
	GOOS=linux GOARCH=amd64 CGO_ENABLED=0 $(GO) build -trimpath -o $(CLUSTER_BIN_DIR)/ ./node/cmd/georaftd ./client/cmd/georaft
	$(GO) build -o bin/ ./client/cmd/georaft

# Never in the middle of a node change, nor without the kit's record of the nodes that joined.
cluster-apply: cluster-check-terraform cluster-check-credentials
	$(TERRAFORM) -chdir=$(TF_DIR) init -input=false
	@$(GO) run ./deploy/cmd/georaft-nodechange -op check -terraform "$(TERRAFORM)" -tf-dir $(TF_DIR) -journal $(CLUSTER_DIR)/node-change.json
	$(TERRAFORM) -chdir=$(TF_DIR) apply -input=false $(TF_APPLY_FLAGS)

# The inventory, with every host key pinned from the instance's guest attributes (the guest
# agent publishes them under hostkeys/ a minute or so after boot), and with OS Login, the
# operator's POSIX user name and registered key.
cluster-inventory: cluster-check-state
	@mkdir -p $(CLUSTER_DIR)
	$(TERRAFORM) -chdir=$(TF_DIR) output -json > $(CLUSTER_TF_OUTPUT)
	@mode=$$($(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -print ssh-mode) || exit 1; \
	user="$(SSH_USER)"; \
	if [ "$$mode" != metadata ] && [ -z "$$user" ]; then \
	  if [ -n "$(SSH_KEY)" ]; then \
	    $(GCLOUD) compute os-login ssh-keys add --key-file=$(SSH_KEY).pub --ttl=30d --quiet >/dev/null || { \
	      echo "cluster: could not register $(SSH_KEY).pub with OS Login (gcloud compute os-login ssh-keys add)." >&2; exit 1; }; \
	  fi; \
	  user=$$($(GCLOUD) compute os-login describe-profile --format='value(posixAccounts[0].username)') && [ -n "$$user" ] || { \
	    echo "cluster: ssh_mode $$mode needs your OS Login user name, and gcloud compute os-login describe-profile gave none; set SSH_USER." >&2; exit 1; }; \
	fi; \
	pin=""; \
	if [ "$(PIN_HOST_KEYS)" = 1 ]; then \
	  $(CLUSTER_MAKE) cluster-host-keys || exit 1; \
	  pin="-host-keys $(CLUSTER_HOST_KEYS) -known-hosts $(CLUSTER_KNOWN_HOSTS)"; \
	fi; \
	$(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -out $(CLUSTER_INVENTORY) $(if $(SSH_KEY),-ssh-key $(SSH_KEY)) \
	  $$([ -n "$$user" ] && echo "-ssh-user $$user") $$pin
	@echo "inventory: $(CLUSTER_INVENTORY)"

# Each node's host keys from its guest attributes, retried while the guest agent has not
# published them yet (a fresh VM).
cluster-host-keys: cluster-check-gcloud
	@mkdir -p $(CLUSTER_HOST_KEYS)
	@project=$$($(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -print project) || exit 1; \
	$(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -print nodes | while read -r name zone; do \
	  for try in 1 2 3 4 5 6 7 8 9 10 11 12; do \
	    if $(GCLOUD) compute instances get-guest-attributes "$$name" --zone="$$zone" --project="$$project" \
	         --query-path=hostkeys/ --format=json > $(CLUSTER_HOST_KEYS)/$$name.json.tmp 2>$(CLUSTER_HOST_KEYS)/$$name.err \
	       && grep -q '"hostkeys"' $(CLUSTER_HOST_KEYS)/$$name.json.tmp; then \
	      mv $(CLUSTER_HOST_KEYS)/$$name.json.tmp $(CLUSTER_HOST_KEYS)/$$name.json; break; \
	    fi; \
	    [ $$try = 12 ] && { echo "cluster: $$name has published no ssh host keys in its guest attributes after 2 minutes ($$(cat $(CLUSTER_HOST_KEYS)/$$name.err)). Is its guest agent running? PIN_HOST_KEYS=0 trusts keys on first contact instead." >&2; exit 1; }; \
	    sleep 10; \
	  done; \
	done

# Issued once: a CA (valid 10 years), a certificate per node naming its internal IP, external
# IP and VM name, and an admin client certificate (valid a year). An existing CA is kept, so a
# redeploy changes nothing.
CLUSTER_CERTS_CMD = $(GO) run ./node/cmd/georaftd certs --out $(CLUSTER_PKI_DIR) --client admin \
	$$($(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -print certs-flags)
# Without a local CA, the nodes are asked first: a cluster that has one never silently gets a
# second (its nodes could no longer talk to the new ones, and every client breaks).
cluster-certs: cluster-inventory
ifneq ($(CLUSTER_TLS_ON),)
	@if [ -f $(CLUSTER_PKI_DIR)/ca.crt ]; then \
	  echo "certs: keeping the CA and certificates in $(CLUSTER_PKI_DIR)"; \
	else \
	  if [ "$(NEW_CA)" != 1 ]; then \
	    out=$$($(CLUSTER_ANSIBLE_ADHOC) --one-line --become -m ansible.builtin.shell \
	      -a 'if [ -e /etc/georaft/tls/ca.crt ]; then echo georaft-ca-present; else echo georaft-ca-absent; fi' 2>&1); \
	    if echo "$$out" | grep -q georaft-ca-present; then \
	      echo "certs: $(CLUSTER_PKI_DIR) has no CA, but the cluster's nodes already have one (/etc/georaft/tls/ca.crt on $$(echo "$$out" | grep georaft-ca-present | cut -d' ' -f1 | tr '\n' ' ')). A new CA would cut the nodes and every client off from each other. Put the cluster's PKI into $(CLUSTER_PKI_DIR): copy it from the operator who created the cluster or from where your team keeps it (a secret manager; ca.key never goes to the nodes). To replace the CA on purpose: make cluster-certs NEW_CA=1, then make cluster-deploy CLUSTER_ALL_AT_ONCE=1." >&2; exit 1; \
	    elif ! echo "$$out" | grep -q georaft-ca-absent; then \
	      echo "certs: $(CLUSTER_PKI_DIR) has no CA and the nodes could not be asked whether they have one:" >&2; echo "$$out" >&2; \
	      echo "certs: fix ssh to the nodes, or, for a cluster you know has no CA yet, NEW_CA=1." >&2; exit 1; \
	    fi; \
	  fi; \
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

# A live cluster (a node's data disk carries the cluster's marker) gets the rolling upgrade,
# one node at a time, the leader last; only creation, or CLUSTER_ALL_AT_ONCE=1, runs site.yml.
cluster-deploy: cluster-check-ansible cluster-certs
	$(CLUSTER_ANSIBLE_ADHOC) -m ansible.builtin.wait_for_connection -a timeout=300
	@out=$$($(CLUSTER_ANSIBLE_ADHOC) --one-line --become -m ansible.builtin.shell \
	  -a 'if [ -e /var/lib/georaft/georaft-member.yml ]; then echo georaft-member; else echo georaft-blank; fi' 2>&1); \
	if echo "$$out" | grep -q georaft-member && [ "$(CLUSTER_ALL_AT_ONCE)" != 1 ]; then \
	  echo "deploy: the cluster is live (marked on $$(echo "$$out" | grep georaft-member | cut -d' ' -f1 | tr '\n' ' ')): rolling upgrade, one node at a time, the leader last"; \
	  $(CLUSTER_ANSIBLE) upgrade.yml; \
	else \
	  $(CLUSTER_ANSIBLE) site.yml; \
	fi

# site.yml already waits for /readyz on every node; this shows what the cluster says.
cluster-wait: cluster-inventory
	@bin/georaft --endpoints $$($(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -print endpoints) $(CLUSTER_CLIENT_TLS) status

# The steps run one after another even under make -j.
CLUSTER_MAKE := $(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST))

cluster-up: cluster-check-terraform cluster-check-ansible cluster-check-credentials
	$(CLUSTER_MAKE) cluster-preflight
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

# The placement is the cluster's member ids and regions: after a node change they are no
# longer 1..N in region order, and the role deploys only timing derived for them.
cluster-tune:
	@[ -x bin/georaft ] || $(GO) build -o bin/ ./client/cmd/georaft
	@placement="$(PLACEMENT)"; \
	if [ -z "$$placement" ] && [ -f $(CLUSTER_TF_OUTPUT) ]; then \
	  placement=$$($(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -print placement) || exit 1; \
	fi; \
	echo "bin/georaft tune --rtt $(RTT) $${placement:+--placement $$placement} --format ansible"; \
	bin/georaft tune --rtt $(RTT) $${placement:+--placement $$placement} --format ansible > $(ANSIBLE_DIR)/group_vars/georaft/timing.yml.new && \
	mv $(ANSIBLE_DIR)/group_vars/georaft/timing.yml.new $(ANSIBLE_DIR)/group_vars/georaft/timing.yml && \
	bin/georaft tune --rtt $(RTT) $${placement:+--placement $$placement}
	@echo "wrote $(ANSIBLE_DIR)/group_vars/georaft/timing.yml; apply it with make cluster-upgrade"

# Takes the cluster id typed out (CONFIRM=<cluster id>), then a final snapshot of every data
# disk (gcloud waits until each is done), then destroys the rest. Terraform never destroys a
# data disk (prevent_destroy): they leave its state and are deleted here once their snapshot
# exists, or kept with KEEP_DISKS=1. The CA in build/cluster/pki is kept: it is the only way
# to talk to a cluster restored from the snapshots.
cluster-down: cluster-check-terraform cluster-check-credentials cluster-check-gcloud cluster-check-state
	@id=$$($(TERRAFORM) -chdir=$(TF_DIR) output -raw cluster_id) || exit 1; \
	[ "$(CONFIRM)" = "$$id" ] || { echo "cluster: cluster-down destroys cluster $$id. Type its id to confirm: make cluster-down CONFIRM=$$id" >&2; exit 1; }
	@mkdir -p $(CLUSTER_DIR)
	$(TERRAFORM) -chdir=$(TF_DIR) output -json > $(CLUSTER_TF_OUTPUT)
	@project=$$($(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -print project) || exit 1; \
	stamp=$$(date -u +%Y%m%d-%H%M%S); \
	$(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -print data-disks | while read -r disk zone; do \
	  echo "down: final snapshot of $$disk ($$zone)"; \
	  $(GCLOUD) compute snapshots create "$$disk-final-$$stamp" --project="$$project" --source-disk="$$disk" \
	    --source-disk-zone="$$zone" --storage-location="$${zone%-*}" --labels=georaft-cluster=$(CONFIRM),georaft-final=true \
	    --description="georaft cluster $(CONFIRM): final snapshot before cluster-down" --format=json >/dev/null || { \
	    echo "cluster: the final snapshot of $$disk failed; nothing was destroyed." >&2; exit 1; }; \
	done
	$(TERRAFORM) -chdir=$(TF_DIR) state rm 'google_compute_disk.data'
	$(TERRAFORM) -chdir=$(TF_DIR) destroy -input=false $(TF_APPLY_FLAGS)
	@project=$$($(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -print project) || exit 1; \
	$(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -print data-disks | while read -r disk zone; do \
	  if [ "$(KEEP_DISKS)" = 1 ]; then echo "down: kept data disk $$disk ($$zone)"; \
	  else $(GCLOUD) compute disks delete "$$disk" --zone="$$zone" --project="$$project" --quiet || exit 1; fi; \
	done
	rm -f $(CLUSTER_TF_OUTPUT) $(CLUSTER_INVENTORY)
	@echo "down: the data is in the snapshots named *-final-*; the CA stays in $(CLUSTER_PKI_DIR) (never deleted by the kit)."

# Prometheus file_sd targets for every node's metrics port (internal addresses: run Prometheus
# in the VPC, from monitoring_cidrs), for deploy/monitoring/prometheus.yml.
cluster-monitoring: cluster-inventory
	@mkdir -p $(CLUSTER_DIR)/prometheus
	$(CLUSTER_INVENTORY_CMD) -in $(CLUSTER_TF_OUTPUT) -print prometheus-targets > $(CLUSTER_DIR)/prometheus/georaft-targets.json
	@echo "monitoring: $(CLUSTER_DIR)/prometheus/georaft-targets.json; scrape config, alerts and dashboard in deploy/monitoring/"

# tflint with every rule of its bundled Terraform ruleset (terraform/.tflint.hcl); the Google
# ruleset is a plugin that cannot be downloaded offline. Pinned and run with `go run`, like
# buf, so nothing needs installing; the first run compiles it (about 1.5 minutes on 2 cores).
TFLINT_VERSION ?= v0.64.0
tflint:
	$(GO) run github.com/terraform-linters/tflint@$(TFLINT_VERSION) --chdir=$(TF_DIR) --format compact

# Node changes on a running cluster (deploy/nodechange; docs/deploy.md "Replacing, adding and
# removing nodes"). Each records its progress in build/cluster/node-change.json: a change that
# failed midway goes on from there when the same target runs again, and no other starts before.
CLUSTER_NODECHANGE = $(GO) run ./deploy/cmd/georaft-nodechange -region "$(REGION)" -terraform "$(TERRAFORM)" -tf-dir $(TF_DIR) \
	-apply-flags "$(TF_APPLY_FLAGS)" -gcloud "$(GCLOUD)" -make "$(CLUSTER_MAKE)" -playbook "$(CLUSTER_ANSIBLE)" \
	-client "$(CLUSTER_CLIENT) $(CLUSTER_CLIENT_TLS)" -certs "$(if $(CLUSTER_TLS_ON),$(CLUSTER_CERTS_RENEW_CMD))" -pki $(CLUSTER_PKI_DIR) \
	-journal $(CLUSTER_DIR)/node-change.json -timing $(ANSIBLE_DIR)/group_vars/georaft/timing.yml -wait $(NODE_WAIT)
CLUSTER_CERTS_RENEW_CMD = $(GO) run ./node/cmd/georaftd certs

cluster-check-region:
	@[ -n "$(REGION)" ] || { echo "cluster: this target needs REGION=<region>, e.g. REGION=us-west1 (make cluster-status lists the nodes' regions)." >&2; exit 1; }

# The georaft client the node changes ask the cluster with.
CLUSTER_CLIENT ?= bin/georaft
cluster-nodechange-tools:
	@[ -x $(CLUSTER_CLIENT) ] || $(GO) build -o bin/ ./client/cmd/georaft

cluster-replace-node: cluster-check-region cluster-check-terraform cluster-check-ansible cluster-check-credentials cluster-check-gcloud cluster-check-state cluster-nodechange-tools
	@$(CLUSTER_NODECHANGE) -op replace

cluster-add-node: cluster-check-region cluster-check-terraform cluster-check-ansible cluster-check-credentials cluster-check-gcloud cluster-check-state cluster-nodechange-tools
	@$(CLUSTER_NODECHANGE) -op add

cluster-remove-node: cluster-check-region cluster-check-terraform cluster-check-ansible cluster-check-credentials cluster-check-gcloud cluster-check-state cluster-nodechange-tools
	@$(CLUSTER_NODECHANGE) -op remove
