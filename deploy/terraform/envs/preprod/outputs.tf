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

output "data_s3_endpoint" {
  description = "This environment's S3 API (holding the data remote s3://noria-data/dvc): pre-production's production_data_endpoint_url, as pre-production reaches it."
  value       = module.platform.s3_endpoint
}

output "data_reader_access_key_id" {
  description = "Read-only identity on the data bucket (Read, List): pre-production's production_data_access_key_id."
  value       = module.platform.s3_data_reader_access_key_id
  sensitive   = true
}

output "data_reader_secret_access_key" {
  description = "Secret of the read-only data identity: pre-production's production_data_secret_access_key."
  value       = module.platform.s3_data_reader_secret_access_key
  sensitive   = true
}
