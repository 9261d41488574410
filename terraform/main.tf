provider "google" {
  project = var.project_id
}

locals {
  # Node ids follow the order of var.regions and never change for a region, so a node keeps
  # its raft identity (and its data disk) across applies.
  node_ids = { for i, region in var.regions : region => i + 1 }
  zones    = { for region in var.regions : region => lookup(var.zones, region, "${region}-${var.default_zone_suffix}") }
  names    = { for region in var.regions : region => "${var.name_prefix}-${local.node_ids[region]}" }

  # Firewall rules select the cluster's instances by this network tag.
  node_tag = "${var.name_prefix}-node"

  labels = merge(var.labels, { cluster = var.cluster_id })

  # Logging and monitoring writes are all a node needs from Google APIs.
  node_scopes = [
    "https://www.googleapis.com/auth/logging.write",
    "https://www.googleapis.com/auth/monitoring.write",
  ]
  node_roles = ["roles/logging.logWriter", "roles/monitoring.metricWriter"]
}

# ---------------------------------------------------------------------------------------
# Network: one VPC, one subnet per region.

resource "google_compute_network" "cluster" {
  name                    = "${var.name_prefix}-net"
  description             = "georaft cluster ${var.cluster_id}"
  auto_create_subnetworks = false
  routing_mode            = "GLOBAL"
}

resource "google_compute_subnetwork" "node" {
  for_each = local.node_ids

  name                     = "${var.name_prefix}-${each.key}"
  region                   = each.key
  network                  = google_compute_network.cluster.id
  ip_cidr_range            = cidrsubnet(var.subnet_cidr, 8, each.value - 1)
  private_ip_google_access = true
}

# ---------------------------------------------------------------------------------------
# Firewall. Nothing is open to the internet unless the operator lists it in admin_cidrs or
# client_cidrs. A rule with neither source ranges nor source tags would match 0.0.0.0/0 in
# GCP, so the rules built from operator lists exist only when the list is not empty.

# Raft traffic: only from the cluster's own instances to each other.
resource "google_compute_firewall" "peer" {
  name        = "${var.name_prefix}-peer"
  description = "georaft PeerService between cluster members only"
  network     = google_compute_network.cluster.id
  direction   = "INGRESS"
  priority    = 1000

  source_tags = [local.node_tag]
  target_tags = [local.node_tag]

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

# Nodes reach each other's client and metrics ports too (redirects, health checks, a
# benchmark run from a node's VM).
resource "google_compute_firewall" "client_internal" {
  name        = "${var.name_prefix}-client-internal"
  description = "georaft KVService and metrics from the cluster's instances"
  network     = google_compute_network.cluster.id
  direction   = "INGRESS"
  priority    = 1000

  source_tags = [local.node_tag]
  target_tags = [local.node_tag]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.client_port), tostring(var.metrics_port)]
  }
}

resource "google_compute_firewall" "client" {
  count = length(var.client_cidrs) > 0 ? 1 : 0

  name        = "${var.name_prefix}-client"
  description = "georaft KVService and metrics from client_cidrs"
  network     = google_compute_network.cluster.id
  direction   = "INGRESS"
  priority    = 1000

  source_ranges = var.client_cidrs
  target_tags   = [local.node_tag]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.client_port), tostring(var.metrics_port)]
  }
}

resource "google_compute_firewall" "ssh" {
  count = length(var.admin_cidrs) > 0 ? 1 : 0

  name        = "${var.name_prefix}-ssh"
  description = "ssh from admin_cidrs"
  network     = google_compute_network.cluster.id
  direction   = "INGRESS"
  priority    = 1000

  source_ranges = var.admin_cidrs
  target_tags   = [local.node_tag]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
}

# ---------------------------------------------------------------------------------------
# Identity: a service account per node, allowed to write logs and metrics and nothing else.

resource "google_service_account" "node" {
  for_each = local.node_ids

  account_id   = "${var.name_prefix}-node-${each.value}"
  display_name = "georaft node ${each.value} (${each.key})"
  description  = "Runs georaft node ${each.value} of cluster ${var.cluster_id}; writes logs and metrics only."
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
  for_each = var.assign_external_ip ? local.node_ids : {}

  name         = "${local.names[each.key]}-ip"
  region       = each.key
  address_type = "EXTERNAL"
  network_tier = "PREMIUM"
}

# A reserved internal address per node: peers dial it and the node's certificate names it, so
# both stay valid when the instance is rebuilt.
resource "google_compute_address" "node_internal" {
  for_each = local.node_ids

  name         = "${local.names[each.key]}-internal-ip"
  region       = each.key
  subnetwork   = google_compute_subnetwork.node[each.key].id
  address_type = "INTERNAL"
}

# The WAL and snapshots live on their own disk, so an instance can be rebuilt (new image,
# new machine type) without losing the node's state.
resource "google_compute_disk" "data" {
  for_each = local.node_ids

  name   = "${local.names[each.key]}-data"
  zone   = local.zones[each.key]
  type   = var.data_disk_type
  size   = var.data_disk_size_gb
  labels = merge(local.labels, { node = tostring(each.value) })
}

resource "google_compute_instance" "node" {
  for_each = local.node_ids

  name         = local.names[each.key]
  description  = "georaft node ${each.value} of cluster ${var.cluster_id} in ${each.key}"
  zone         = local.zones[each.key]
  machine_type = var.machine_type
  tags         = [local.node_tag]
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

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = var.enable_oslogin ? {
    enable-oslogin = "TRUE"
    } : {
    enable-oslogin         = "FALSE"
    block-project-ssh-keys = "TRUE"
    ssh-keys               = "${var.ssh_user}:${trimspace(var.ssh_public_key)}"
  }

  depends_on = [google_project_iam_member.node]
}
