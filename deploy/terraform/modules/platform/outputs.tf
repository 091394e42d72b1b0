output "namespace" {
  description = "Namespace of the platform and of Noria's pods."
  value       = kubernetes_namespace_v1.noria.metadata[0].name
}

output "mlflow_tracking_uri" {
  description = "MLflow's address inside the cluster (noria.yaml's cluster profile: http://mlflow:5000)."
  value       = "http://${kubernetes_service_v1.mlflow.metadata[0].name}:5000"
}

output "s3_endpoint" {
  description = "S3 API of the object store, inside the cluster."
  value       = local.s3_endpoint
}

output "s3_access_key_id" {
  description = "Access key of the object store's identity."
  value       = upper(random_id.s3_access_key.hex)
  sensitive   = true
}

output "s3_secret_access_key" {
  description = "Secret key of the object store's identity."
  value       = random_password.s3_secret_key.result
  sensitive   = true
}

output "s3_data_reader_access_key_id" {
  description = "Access key of the object store's read-only identity on the DVC remote (Read, List on s3://noria-data/dvc/*)."
  value       = upper(random_id.s3_data_reader_access_key.hex)
  sensitive   = true
}

output "s3_data_reader_secret_access_key" {
  description = "Secret key of the object store's read-only identity on the data bucket."
  value       = random_password.s3_data_reader_secret_key.result
  sensitive   = true
}

output "redis_address" {
  description = "Redis (Feast online store) inside the cluster."
  value       = module.redis.address
}

output "redis_password" {
  description = "Password of Redis (the Feast online store)."
  value       = random_password.redis.result
  sensitive   = true
}

output "mlflow_username" {
  description = "MLflow's admin user, which Noria's pods log in as (MLFLOW_TRACKING_USERNAME)."
  value       = local.mlflow_admin_username
}

output "mlflow_password" {
  description = "Password of MLflow's admin user (MLFLOW_TRACKING_PASSWORD)."
  value       = random_password.mlflow_admin.result
  sensitive   = true
}
