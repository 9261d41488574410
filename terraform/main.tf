provider "google" {
  project = var.project_id
}

locals {
  # A slot per region the cluster has had a node in: var.regions in order, then the regions
  # make cluster-add-node added. A slot's number names its instance (georaft-N), subnet,
  # addresses and service account, and never changes, so no apply renames (and so replaces)
  # another region's resources when a node is added or removed.
  slots = { for i, region in concat(var.regions, [for r in var.added_regions : r if !contains(var.regions, r)]) : region => i + 1 }
  # The slots that have a node (make cluster-remove-node takes one's node away).
  node_slots = { for region, slot in local.slots : region => slot if !contains(var.removed_regions, region) }
  # Each node's raft member id: its slot number for the nodes the cluster was created with;
  # the id make cluster-replace-node or cluster-add-node gave a node that joined the running
  # cluster (never one used before: a new disk is a new member).
  member_ids = { for region, slot in local.node_slots : region => lookup(var.member_ids, region, slot) }
  zones      = { for region, slot in local.slots : region => lookup(var.zones, region, "${region}-${var.default_zone_suffix}") }
  names      = { for region, slot in local.slots : region => "${var.name_prefix}-${slot}" }

  # A region's data disk is replaced only when its generation is raised, one region at a
  # time (the replace-node flow); generation 1 keeps the original name.
  disk_names = { for region, slot in local.slots : region =>
    lookup(var.data_disk_generation, region, 1) > 1 ? "${local.names[region]}-data-g${lookup(var.data_disk_generation, region, 1)}" : "${local.names[region]}-data"
  }

  labels = merge(var.labels, { cluster = var.cluster_id })

  # OS Login for oslogin and iap; keys in instance metadata otherwise.
  oslogin = var.ssh_mode != "metadata"

  # Google's documented source range of IAP TCP forwarding.
  iap_source_ranges = ["35.235.240.0/20"]

  # The APIs the kit calls; iap only when ssh goes through it.
  apis = concat(["compute.googleapis.com", "iam.googleapis.com", "cloudresourcemanager.googleapis.com"],
    local.oslogin ? ["oslogin.googleapis.com"] : [],
  var.ssh_mode == "iap" ? ["iap.googleapis.com"] : [])

  # Logging and monitoring writes are all a node needs from Google APIs.
  node_scopes = [
    "https://www.googleapis.com/auth/logging.write",
    "https://www.googleapis.com/auth/monitoring.write",
  ]
  node_roles = ["roles/logging.logWriter", "roles/monitoring.metricWriter"]
}

# ---------------------------------------------------------------------------------------
# APIs. A fresh project has Compute Engine off; disabling them again on destroy would break
# whatever else the project runs, so destroy leaves them on.

resource "google_project_service" "api" {
  for_each = toset(local.apis)

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# ---------------------------------------------------------------------------------------
# Network: one VPC, one subnet per region.

resource "google_compute_network" "cluster" {
  name                    = "${var.name_prefix}-net"
  description             = "georaft cluster ${var.cluster_id}"
  auto_create_subnetworks = false
  routing_mode            = "GLOBAL"

  depends_on = [google_project_service.api]

  # The node changes the kit records (terraform/membership.auto.tfvars.json) must fit
  # together; these checks need more than one variable, so they live here.
  lifecycle {
    precondition {
      condition     = alltrue([for r in var.removed_regions : contains(keys(local.slots), r)])
      error_message = "removed_regions may only name regions of regions or added_regions."
    }
    precondition {
      condition     = length(local.node_slots) >= 3
      error_message = "At least 3 regions must keep a node: a cluster of fewer survives no region's loss."
    }
    precondition {
      condition     = alltrue([for r, id in var.member_ids : contains(keys(local.slots), r)])
      error_message = "member_ids may only name regions of regions or added_regions."
    }
    precondition {
      condition     = length(distinct(values(local.member_ids))) == length(local.member_ids)
      error_message = "Two nodes have the same member id in member_ids."
    }
    precondition {
      condition     = alltrue([for id in values(local.member_ids) : !contains(var.retired_member_ids, id)])
      error_message = "A node's member id is one of retired_member_ids: a member id is never used again once its member was removed."
    }
  }
}

resource "google_compute_subnetwork" "node" {
  for_each = local.node_slots

  name                     = "${var.name_prefix}-${each.key}"
  region                   = each.key
  network                  = google_compute_network.cluster.id
  ip_cidr_range            = cidrsubnet(var.subnet_cidr, 8, each.value - 1)
  private_ip_google_access = true
}

# ---------------------------------------------------------------------------------------
# Firewall. Rules select the nodes by their service accounts, which only an IAM grant can
# attach to an instance (anyone who may edit an instance can give it a network tag). Nothing
# is open to the internet unless the operator lists it in admin_cidrs, client_cidrs or
# monitoring_cidrs. A rule with neither source ranges nor another source would match
# 0.0.0.0/0 in GCP, so the rules built from operator lists exist only when the list is not
# empty.

# Raft traffic: only from the cluster's own instances to each other.
resource "google_compute_firewall" "peer" {
  name        = "${var.name_prefix}-peer"
  description = "georaft PeerService between cluster members only"
  network     = google_compute_network.cluster.id
  direction   = "INGRESS"
  priority    = 1000

  source_service_accounts = [for region in var.regions : google_service_account.node[region].email]
  target_service_accounts = [for region in var.regions : google_service_account.node[region].email]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.peer_port)]
  }

  lifecycle {
    precondition {
      condition     = length(distinct([var.peer_port, var.client_port, var.metrics_port])) == 3
      error_message = "peer_port, client_port and metrics_port must be three different ports."
    }
  }
}

# Nodes reach each other's client and metrics ports too (redirects, leadership transfer
# during upgrades, a benchmark run from a node's VM).
resource "google_compute_firewall" "client_internal" {
  name        = "${var.name_prefix}-client-internal"
  description = "georaft KVService and metrics from the cluster's instances"
  network     = google_compute_network.cluster.id
  direction   = "INGRESS"
  priority    = 1000

  source_service_accounts = [for region in var.regions : google_service_account.node[region].email]
  target_service_accounts = [for region in var.regions : google_service_account.node[region].email]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.client_port), tostring(var.metrics_port)]
  }
}

# Clients: the port speaks TLS and wants a client certificate of the cluster's CA.
resource "google_compute_firewall" "client" {
  count = length(var.client_cidrs) > 0 ? 1 : 0

  name        = "${var.name_prefix}-client"
  description = "georaft KVService from client_cidrs"
  network     = google_compute_network.cluster.id
  direction   = "INGRESS"
  priority    = 1000

  source_ranges           = var.client_cidrs
  target_service_accounts = [for region in var.regions : google_service_account.node[region].email]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.client_port)]
  }
}

# /metrics, /healthz and /readyz are plain HTTP on the internal address: for a Prometheus
# inside the VPC (or reached over a VPN), from monitoring_cidrs only.
resource "google_compute_firewall" "metrics" {
  count = length(var.monitoring_cidrs) > 0 ? 1 : 0

  name        = "${var.name_prefix}-metrics"
  description = "georaft and node_exporter metrics, health, from monitoring_cidrs"
  network     = google_compute_network.cluster.id
  direction   = "INGRESS"
  priority    = 1000

  source_ranges           = var.monitoring_cidrs
  target_service_accounts = [for region in var.regions : google_service_account.node[region].email]

  # georaftd's metrics, and node_exporter's (installed by the role) on 9100.
  allow {
    protocol = "tcp"
    ports    = [tostring(var.metrics_port), "9100"]
  }
}

# ssh is logged: every accepted connection leaves a record in Cloud Logging.
resource "google_compute_firewall" "ssh" {
  count = length(var.admin_cidrs) > 0 ? 1 : 0

  name        = "${var.name_prefix}-ssh"
  description = "ssh from admin_cidrs"
  network     = google_compute_network.cluster.id
  direction   = "INGRESS"
  priority    = 1000

  source_ranges           = var.admin_cidrs
  target_service_accounts = [for region in var.regions : google_service_account.node[region].email]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# ssh through Identity-Aware Proxy: the tunnel arrives from Google's IAP range; who may open
# it is decided by IAM (roles/iap.tunnelResourceAccessor), not by an address.
resource "google_compute_firewall" "ssh_iap" {
  count = var.ssh_mode == "iap" ? 1 : 0

  name        = "${var.name_prefix}-ssh-iap"
  description = "ssh through IAP TCP forwarding"
  network     = google_compute_network.cluster.id
  direction   = "INGRESS"
  priority    = 1000

  source_ranges           = local.iap_source_ranges
  target_service_accounts = [for region in var.regions : google_service_account.node[region].email]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# ---------------------------------------------------------------------------------------
# Identity: a service account per node, allowed to write logs and metrics and nothing else.

resource "google_service_account" "node" {
  for_each = local.node_slots

  account_id   = "${var.name_prefix}-node-${each.value}"
  display_name = "georaft node ${each.value} (${each.key})"
  description  = "Runs georaft node ${each.value} of cluster ${var.cluster_id}; writes logs and metrics only."

  depends_on = [google_project_service.api]
}

resource "google_project_iam_member" "node" {
  for_each = {
    for pair in setproduct(var.regions, local.node_roles) : "${pair[0]}/${pair[1]}" => {
      region = pair[0]
      role   = pair[1]
    }
  }

  project = var.project_id
  role    = each.value.role
  member  = "serviceAccount:${google_service_account.node[each.value.region].email}"
}

# ---------------------------------------------------------------------------------------
# Nodes.

resource "google_compute_address" "node" {
  for_each = var.assign_external_ip ? local.node_slots : {}

  name         = "${local.names[each.key]}-ip"
  region       = each.key
  address_type = "EXTERNAL"
  network_tier = "PREMIUM"
}

# A reserved internal address per node: peers dial it and the node's certificate names it, so
# both stay valid when the instance is rebuilt.
resource "google_compute_address" "node_internal" {
  for_each = local.node_slots

  name         = "${local.names[each.key]}-internal-ip"
  region       = each.key
  subnetwork   = google_compute_subnetwork.node[each.key].id
  address_type = "INTERNAL"
}

# A daily snapshot of every data disk, kept snapshot_retention_days, in the disk's region;
# the snapshots outlive the disk.
resource "google_compute_resource_policy" "data_snapshots" {
  # Every slot, also one whose node was removed: the removed node's disk, kept, stays
  # attached to its schedule (a policy in use cannot be deleted).
  for_each = local.slots

  name   = "${var.name_prefix}-data-snapshots-${each.value}"
  region = each.key

  snapshot_schedule_policy {
    schedule {
      daily_schedule {
        days_in_cycle = 1
        start_time    = var.snapshot_start_time
      }
    }
    retention_policy {
      max_retention_days    = var.snapshot_retention_days
      on_source_disk_delete = "KEEP_AUTO_SNAPSHOTS"
    }
    snapshot_properties {
      labels            = merge(local.labels, { node = tostring(each.value) })
      storage_locations = [each.key]
    }
  }

  depends_on = [google_project_service.api]
}

# The WAL and snapshots live on their own disk, so an instance can be rebuilt (new image,
# new machine type) without losing the node's state. Terraform never destroys one
# (prevent_destroy): a plan that would fails instead. A new data_disk_type applies to disks
# created from then on (type is ignored on existing ones, since changing it replaces the
# disk); a node moves to a new disk one region at a time by raising its data_disk_generation
# in the replace-node flow. Only a blank disk of a cluster being created is formatted.
resource "google_compute_disk" "data" {
  for_each = local.node_slots

  name              = local.disk_names[each.key]
  zone              = local.zones[each.key]
  type              = var.data_disk_type
  size              = var.data_disk_size_gb
  labels            = merge(local.labels, { node = tostring(each.value) })
  resource_policies = [google_compute_resource_policy.data_snapshots[each.key].id]

  lifecycle {
    prevent_destroy = true
    ignore_changes  = [type]
  }
}

resource "google_compute_instance" "node" {
  for_each = local.node_slots

  name         = local.names[each.key]
  description  = "georaft node ${each.value} of cluster ${var.cluster_id} in ${each.key}"
  zone         = local.zones[each.key]
  machine_type = var.machine_type
  labels       = merge(local.labels, { node = tostring(each.value), region = each.key })

  allow_stopping_for_update = true
  deletion_protection       = var.deletion_protection

  boot_disk {
    auto_delete = true
    initialize_params {
      image = var.image
      size  = var.boot_disk_size_gb
      type  = "pd-balanced"
    }
  }

  # Visible in the guest as /dev/disk/by-id/google-georaft-data; the Ansible role formats
  # and mounts it on the data directory.
  attached_disk {
    source      = google_compute_disk.data[each.key].id
    device_name = "georaft-data"
    mode        = "READ_WRITE"
  }

  network_interface {
    subnetwork = google_compute_subnetwork.node[each.key].id
    network_ip = google_compute_address.node_internal[each.key].address

    dynamic "access_config" {
      for_each = var.assign_external_ip ? [google_compute_address.node[each.key].address] : []
      content {
        nat_ip       = access_config.value
        network_tier = "PREMIUM"
      }
    }
  }

  service_account {
    email  = google_service_account.node[each.key].email
    scopes = local.node_scopes
  }

  # Host maintenance stops the VM (it restarts after, the node rejoins) instead of live
  # migrating it: a migration's blackout freezes the leader between two clock readings while
  # the others' clocks run, which the lease's drift bound does not cover. docs/tuning.md.
  scheduling {
    on_host_maintenance = "TERMINATE"
    automatic_restart   = true
    preemptible         = false
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  # The guest agent publishes the ssh host keys as guest attributes (hostkeys/), from which
  # make cluster-inventory pins them.
  metadata = local.oslogin ? {
    enable-oslogin          = "TRUE"
    enable-guest-attributes = "TRUE"
    } : {
    enable-oslogin          = "FALSE"
    enable-guest-attributes = "TRUE"
    block-project-ssh-keys  = "TRUE"
    ssh-keys                = "${var.ssh_user}:${trimspace(var.ssh_public_key)}"
  }

  lifecycle {
    precondition {
      condition     = local.oslogin || length(trimspace(var.ssh_public_key)) > 0
      error_message = "ssh_mode \"metadata\" installs ssh_public_key on the nodes: set it, or use ssh_mode \"oslogin\" or \"iap\"."
    }
  }

  depends_on = [google_project_iam_member.node]
}
