output "namespace" {
  description = "Namespace where CD applies deploy/k8s."
  value       = module.platform.namespace
}

output "mlflow_tracking_uri" {
  description = "MLflow inside the cluster."
  value       = module.platform.mlflow_tracking_uri
}

output "grafana_url" {
  description = "Grafana's public address."
  value       = module.monitoring.grafana_url
}

output "api_keys" {
  description = "API keys of the serving API: terraform output -json api_keys."
  value       = module.noria.api_keys
  sensitive   = true
}
