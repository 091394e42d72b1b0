# prod: only sizes, hostnames and the cluster differ from the other environment.
kube_context         = "noria-prod"
environment          = "prod"
cost_center          = "mlops-prod"
pipeline_image       = "ghcr.io/noria-mlops/noria-pipeline:0.1.0" # CD overrides it with the digest it built
prometheus_retention = "30d"
grafana_hostname     = "grafana.example.com"

storage = {
  postgresql = "50Gi"
  redis      = "8Gi"
  objects    = "500Gi"
  prometheus = "100Gi"
}

mlflow_resources = {
  cpu_request    = "250m"
  memory_request = "1Gi"
  cpu_limit      = "1"
  memory_limit   = "2Gi"
}

quota = {
  requests_cpu    = "16"
  requests_memory = "64Gi"
  limits_cpu      = "32"
  limits_memory   = "128Gi"
  pods            = 100
}
