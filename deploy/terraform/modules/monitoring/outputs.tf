output "namespace" {
  description = "Namespace of the monitoring stack."
  value       = kubernetes_namespace_v1.monitoring.metadata[0].name
}

output "grafana_url" {
  description = "Grafana's public address."
  value       = "https://${var.grafana_hostname}"
}

output "grafana_admin_password" {
  description = "Grafana's admin password (also in the grafana-admin Secret)."
  value       = random_password.grafana_admin.result
  sensitive   = true
}
