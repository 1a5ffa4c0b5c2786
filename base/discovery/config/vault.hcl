# Vault in HA mode on its integrated Raft storage: vault-0 is initialised once (out of band,
# unseal keys to the security team's HSM); the others join through retry_join.
ui            = true
cluster_name  = "healthflow"
disable_mlock = true  # Raft storage; mlock needs IPC_LOCK, which the restricted profile forbids

listener "tcp" {
  address         = "[::]:8200"
  cluster_address = "[::]:8201"
  # In-cluster clients only (NetworkPolicy: hf-app and Prometheus); TLS via cert-manager is
  # tracked for the next platform release.
  tls_disable = true
  telemetry {
    unauthenticated_metrics_access = true
  }
}

storage "raft" {
  path = "/vault/data"
  retry_join {
    leader_api_addr = "http://vault-0.vault-internal.hf-discovery.svc.cluster.local:8200"
  }
  retry_join {
    leader_api_addr = "http://vault-1.vault-internal.hf-discovery.svc.cluster.local:8200"
  }
  retry_join {
    leader_api_addr = "http://vault-2.vault-internal.hf-discovery.svc.cluster.local:8200"
  }
}

# No service_registration "kubernetes": it would need egress to the API server, which the
# network contract does not give this stack. Standbys forward requests to the active node.

telemetry {
  prometheus_retention_time = "30s"
  disable_hostname          = true
}
