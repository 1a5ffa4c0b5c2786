# Consul server agent. Peers find each other through the headless Service's per-pod DNS names;
# bootstrap_expect comes from the command line (discovery-topology ConfigMap).
datacenter = "healthflow"
data_dir   = "/consul/data"
server     = true
ui_config {
  enabled = true
}
client_addr = "0.0.0.0"
bind_addr   = "{{ GetPrivateInterfaces | exclude \"type\" \"IPv6\" | attr \"address\" }}"

retry_join = [
  "consul-server-0.consul-server.hf-discovery.svc.cluster.local",
  "consul-server-1.consul-server.hf-discovery.svc.cluster.local",
  "consul-server-2.consul-server.hf-discovery.svc.cluster.local",
]

performance {
  raft_multiplier = 1
}

# Prometheus scrapes /v1/agent/metrics?format=prometheus on 8500.
telemetry {
  prometheus_retention_time = "60s"
  disable_hostname          = true
}

ports {
  grpc = -1
}

leave_on_terminate       = true
disable_update_check     = true
