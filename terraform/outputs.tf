# deploy/inventory reads `terraform output -json`: the nodes map, the ports, the ssh user and
# mode, the project and the cluster id. Keep the attribute names in step with deploy/inventory.

output "nodes" {
  description = "Every node by instance name: id (its raft member id: 1..N in var.regions order for the nodes the cluster was created with), name, region, zone, internal_ip, external_ip (null without assign_external_ip), joined (it joined the running cluster as a new member) and replaces (the member id it took the place of, or null)."
  value = {
    for region, id in local.member_ids : google_compute_instance.node[region].name => {
      id          = id
      joined      = contains(keys(var.member_ids), region)
      replaces    = lookup(var.replaced_member_ids, region, null)
      name        = google_compute_instance.node[region].name
      region      = region
      zone        = google_compute_instance.node[region].zone
      internal_ip = google_compute_instance.node[region].network_interface[0].network_ip
      external_ip = var.assign_external_ip ? google_compute_address.node[region].address : null
    }
  }
}

output "cluster_id" {
  description = "georaft cluster id for the node configs."
  value       = var.cluster_id
}

output "ssh_user" {
  description = "User Ansible logs in as."
  value       = var.ssh_user
}

output "peer_port" {
  description = "PeerService port on every node."
  value       = var.peer_port
}

output "client_port" {
  description = "KVService port on every node."
  value       = var.client_port
}

output "metrics_port" {
  description = "Metrics and health port on every node."
  value       = var.metrics_port
}

output "client_endpoints" {
  description = "host:port of every node's KVService as seen from outside the VPC (internal address when there is no external IP), in slot order."
  value = [
    for region in concat(var.regions, var.added_regions) :
    "${var.assign_external_ip ? google_compute_address.node[region].address : google_compute_instance.node[region].network_interface[0].network_ip}:${var.client_port}"
    if contains(keys(local.node_slots), region)
  ]
}

output "network" {
  description = "Self link of the cluster's VPC."
  value       = google_compute_network.cluster.self_link
}

output "data_device" {
  description = "Guest path of every node's data disk (attached with device_name georaft-data); the Ansible role formats and mounts it."
  value       = "/dev/disk/by-id/google-georaft-data"
}

output "ssh_mode" {
  description = "How Ansible logs in: metadata, oslogin or iap (the inventory adds the IAP tunnel)."
  value       = var.ssh_mode
}

output "project_id" {
  description = "The project (gcloud commands of the kit: IAP tunnel, guest attributes, snapshots)."
  value       = var.project_id
}

output "data_disks" {
  description = "Every node's data disk by instance name: name, zone (cluster-down snapshots them)."
  value = {
    for region, id in local.node_slots : local.names[region] => {
      name = google_compute_disk.data[region].name
      zone = google_compute_disk.data[region].zone
    }
  }
}
