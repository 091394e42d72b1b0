# preprod: only sizes, hostnames and the cluster differ from the other environment.
kube_context         = "noria-preprod"
environment          = "preprod"
cost_center          = "mlops-preprod"
pipeline_image       = "ghcr.io/noria-mlops/noria-pipeline:0.1.0" # CD overrides it with the digest it built
prometheus_retention = "7d"
grafana_hostname     = "grafana.preprod.example.com"
# production's S3 API as this cluster reaches it: pre-production reads production's data remote
# read-only (its keys come from CD's secrets); empty in production (its own store)
production_data_endpoint_url = "https://s3-data.example.com"

storage = {
  postgresql = "10Gi"
  redis      = "2Gi"
  objects    = "50Gi"
  prometheus = "20Gi"
}

mlflow_resources = {
  cpu_request    = "100m"
  memory_request = "512Mi"
  cpu_limit      = "500m"
  memory_limit   = "1Gi"
}

quota = {
  requests_cpu    = "8"
  requests_memory = "24Gi"
  limits_cpu      = "16"
  limits_memory   = "48Gi"
  pods            = 40
}
