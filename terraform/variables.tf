variable "project_id" {
  type        = string
  description = "Google Cloud project that holds the cluster."

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "cluster_id" {
  type        = string
  description = "georaft cluster id written into every node config; peers refuse RPCs that carry another one."
  default     = "georaft"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{0,40}$", var.cluster_id))
    error_message = "cluster_id must be lowercase letters, digits and hyphens, starting with a letter, at most 41 characters."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name (instances are PREFIX-1 ... PREFIX-N, N being the node id)."
  default     = "georaft"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{0,19}$", var.name_prefix))
    error_message = "name_prefix must be 1-20 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "regions" {
  type        = list(string)
  description = "One node per region; node ids are 1..N in this order. An odd count of at least 3 so a majority survives losing any one region."
  default     = ["us-central1", "us-east1", "us-west1", "europe-west1", "asia-east1"]

  validation {
    condition     = length(var.regions) == length(distinct(var.regions))
    error_message = "regions must be distinct: two nodes in one region lose a majority together when that region fails."
  }

  validation {
    condition     = length(var.regions) >= 3 && length(var.regions) % 2 == 1
    error_message = "regions must list an odd number of regions, at least 3 (an even count tolerates no more failures than the odd count below it)."
  }

  validation {
    condition     = alltrue([for r in var.regions : can(regex("^[a-z]+-[a-z]+[0-9]+$", r))])
    error_message = "each region must be a Google Cloud region name such as us-central1."
  }
}

variable "zones" {
  type        = map(string)
  description = "Optional zone per region (region => zone). Regions not listed use REGION-<default_zone_suffix>."
  default     = {}

  validation {
    condition     = alltrue([for region, zone in var.zones : startswith(zone, "${region}-")])
    error_message = "each zone must lie in the region it is listed under, e.g. us-central1 = \"us-central1-c\"."
  }
}

variable "default_zone_suffix" {
  type        = string
  description = "Zone letter used for regions absent from zones. \"b\" exists in all five default regions (us-east1 and europe-west1 have no \"a\")."
  default     = "b"

  validation {
    condition     = can(regex("^[a-z]$", var.default_zone_suffix))
    error_message = "default_zone_suffix must be a single lowercase letter."
  }
}

variable "subnet_cidr" {
  type        = string
  description = "Address block the per-region subnets are carved from: the i-th region gets the i-th /24 of it."
  default     = "10.42.0.0/16"

  validation {
    condition     = can(cidrsubnet(var.subnet_cidr, 8, 0)) && tonumber(split("/", var.subnet_cidr)[1]) <= 20
    error_message = "subnet_cidr must be an IPv4 CIDR of prefix length at most /20, so it holds a /24 per region."
  }
}

variable "machine_type" {
  type        = string
  description = "Compute Engine machine type of every node. n2 by default: dedicated vCPUs, where E2's shared, dynamically scheduled ones can stall a leader's heartbeats for tens of milliseconds (docs/tuning.md)."
  default     = "n2-standard-2"

  validation {
    condition     = can(regex("^[a-z0-9]+-[a-z0-9-]+$", var.machine_type))
    error_message = "machine_type must be a machine type name such as e2-standard-2."
  }
}

variable "image" {
  type        = string
  description = "Boot image (project/family or self link). It must support Shielded VM and systemd."
  default     = "debian-cloud/debian-12"
}

variable "boot_disk_size_gb" {
  type        = number
  description = "Boot disk size in GB."
  default     = 20

  validation {
    condition     = var.boot_disk_size_gb >= 10
    error_message = "boot_disk_size_gb must be at least 10."
  }
}

variable "data_disk_size_gb" {
  type        = number
  description = "Size in GB of the persistent disk that holds each node's WAL and snapshots."
  default     = 50

  validation {
    condition     = var.data_disk_size_gb >= 10 && var.data_disk_size_gb <= 65536
    error_message = "data_disk_size_gb must be between 10 and 65536."
  }
}

variable "data_disk_type" {
  type        = string
  description = "Persistent disk type of the data disk. fsync latency is on every write's path, so pd-ssd or pd-balanced."
  default     = "pd-balanced"

  validation {
    condition     = contains(["pd-standard", "pd-balanced", "pd-ssd", "pd-extreme"], var.data_disk_type)
    error_message = "data_disk_type must be one of pd-standard, pd-balanced, pd-ssd, pd-extreme."
  }
}

variable "ssh_user" {
  type        = string
  description = "Login the ssh key is installed for; Ansible connects as this user."
  default     = "georaft-admin"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user))
    error_message = "ssh_user must be a valid Linux user name."
  }
}

variable "ssh_public_key" {
  type        = string
  description = "Public key (one line, OpenSSH format) installed for ssh_user on every node with ssh_mode \"metadata\"; unused with OS Login."
  default     = ""

  validation {
    condition     = var.ssh_public_key == "" || can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh.com) [A-Za-z0-9+/=]+", var.ssh_public_key))
    error_message = "ssh_public_key must be one OpenSSH public key line, e.g. \"ssh-ed25519 AAAA... you@host\"."
  }
}

variable "admin_cidrs" {
  type        = list(string)
  description = "Source ranges allowed to SSH to the nodes (your office; with ssh_mode \"iap\" leave it empty, the IAP range gets its own rule). Empty: no SSH rule from addresses."
  default     = []

  validation {
    condition     = alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0))])
    error_message = "admin_cidrs must be CIDR blocks such as 203.0.113.0/24."
  }
}

variable "client_cidrs" {
  type        = list(string)
  description = "Source ranges allowed to reach the client port (KVService; TLS with a client certificate). Empty: only the cluster's own instances."
  default     = []

  validation {
    condition     = alltrue([for c in var.client_cidrs : can(cidrhost(c, 0))])
    error_message = "client_cidrs must be CIDR blocks such as 203.0.113.0/24."
  }
}

variable "peer_port" {
  type        = number
  description = "TCP port of PeerService (raft traffic between nodes)."
  default     = 7100

  validation {
    condition     = var.peer_port >= 1024 && var.peer_port <= 65535 && floor(var.peer_port) == var.peer_port
    error_message = "peer_port must be an integer in 1024-65535."
  }
}

variable "client_port" {
  type        = number
  description = "TCP port of KVService (clients)."
  default     = 7200

  validation {
    condition     = var.client_port >= 1024 && var.client_port <= 65535 && floor(var.client_port) == var.client_port
    error_message = "client_port must be an integer in 1024-65535."
  }
}

variable "metrics_port" {
  type        = number
  description = "TCP port of /metrics, /healthz and /readyz."
  default     = 7300

  validation {
    condition     = var.metrics_port >= 1024 && var.metrics_port <= 65535 && floor(var.metrics_port) == var.metrics_port
    error_message = "metrics_port must be an integer in 1024-65535."
  }
}

variable "assign_external_ip" {
  type        = bool
  description = "Give every node a static external IP (to reach it from outside the VPC: ssh without IAP, clients, benchmarks). Organisations with the constraints/compute.vmExternalIpAccess policy need false, with ssh_mode \"iap\"."
  default     = true
}

variable "ssh_mode" {
  type        = string
  description = "How Ansible logs in: \"metadata\" (ssh_public_key in instance metadata, for ssh_user), \"oslogin\" (OS Login: your Google identity's POSIX user and registered key; grant roles/compute.osAdminLogin), or \"iap\" (OS Login through an IAP tunnel: no ssh from the internet, no external address needed; grant roles/iap.tunnelResourceAccessor too)."
  default     = "metadata"

  validation {
    condition     = contains(["metadata", "oslogin", "iap"], var.ssh_mode)
    error_message = "ssh_mode must be metadata, oslogin or iap."
  }
}

variable "monitoring_cidrs" {
  type        = list(string)
  description = "Source ranges (inside the VPC or reached through a VPN) allowed to scrape /metrics and probe /healthz and /readyz on the nodes' internal addresses. Empty: only the nodes themselves."
  default     = []

  validation {
    condition     = alltrue([for c in var.monitoring_cidrs : can(cidrhost(c, 0))])
    error_message = "monitoring_cidrs must be CIDR blocks such as 10.42.0.0/16."
  }
}

variable "snapshot_retention_days" {
  type        = number
  description = "Days each daily snapshot of a data disk is kept."
  default     = 14

  validation {
    condition     = var.snapshot_retention_days >= 1 && floor(var.snapshot_retention_days) == var.snapshot_retention_days
    error_message = "snapshot_retention_days must be a whole number of days, at least 1."
  }
}

variable "snapshot_start_time" {
  type        = string
  description = "UTC hour (HH:00) the daily data disk snapshots start."
  default     = "04:00"

  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):00$", var.snapshot_start_time))
    error_message = "snapshot_start_time must be a whole UTC hour such as 04:00."
  }
}

# The next six are the kit's record of node changes: make cluster-replace-node,
# cluster-add-node and cluster-remove-node write them to terraform/membership.auto.tfvars.json
# (docs/deploy.md). Keep that file with terraform.tfvars and the state; do not edit it by hand.

variable "data_disk_generation" {
  type        = map(number)
  description = "Per region, the generation of its node's data disk (default 1). Raising one region's generation gives that node a new, blank disk: part of the replace-node flow, one region at a time, never all at once. Written by make cluster-replace-node."
  default     = {}

  validation {
    condition     = alltrue([for r, g in var.data_disk_generation : g >= 1 && floor(g) == g])
    error_message = "data_disk_generation values must be whole numbers, at least 1."
  }
}

variable "member_ids" {
  type        = map(number)
  description = "Per region, the raft member id of a node that joined the running cluster (replace or add); the others keep their slot number. Written by make cluster-replace-node and cluster-add-node."
  default     = {}

  validation {
    condition     = alltrue([for r, id in var.member_ids : id >= 1 && floor(id) == id])
    error_message = "member_ids values must be whole numbers, at least 1."
  }
}

variable "replaced_member_ids" {
  type        = map(number)
  description = "Per region, the member id its node took the place of when it joined (cluster.replaces). Written by make cluster-replace-node."
  default     = {}
}

variable "retired_member_ids" {
  type        = list(number)
  description = "Member ids of removed members: never given to a node again. Written by make cluster-replace-node and cluster-remove-node."
  default     = []
}

variable "added_regions" {
  type        = list(string)
  description = "Regions make cluster-add-node gave a node, after regions (their slots follow regions' in this order)."
  default     = []

  validation {
    condition     = length(var.added_regions) == length(distinct(var.added_regions))
    error_message = "added_regions must be distinct."
  }

  validation {
    condition     = alltrue([for r in var.added_regions : can(regex("^[a-z]+-[a-z]+[0-9]+$", r))])
    error_message = "each added region must be a Google Cloud region name such as europe-west4."
  }
}

variable "removed_regions" {
  type        = list(string)
  description = "Regions whose node make cluster-remove-node removed: their slot keeps its number (no other node is renamed), their kept disk its snapshot schedule."
  default     = []
}

variable "labels" {
  type        = map(string)
  description = "Labels added to every instance and disk (lowercase keys and values)."
  default     = { app = "georaft" }

  validation {
    condition = alltrue([for k, v in var.labels :
      can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))
    ])
    error_message = "label keys must start with a lowercase letter; keys and values may hold lowercase letters, digits, _ and -, at most 63 characters."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the instances (turn off before cluster-down)."
  default     = false
}
