# One environment = one cluster running the same three modules; preprod and prod differ only
# in terraform.tfvars (sizes, hostnames, context). Applied by .github/workflows/cd.yml.
locals {
  # Cost allocation (maturity item 39): every object carries these labels.
  labels = {
    "cost-center" = var.cost_center
    "team"        = "noria"
    "managed-by"  = "terraform"
  }
}

module "platform" {
  source             = "../../modules/platform"
  environment        = var.environment
  labels             = local.labels
  postgresql_storage = var.storage.postgresql
  redis_storage      = var.storage.redis
  object_storage     = var.storage.objects
  mlflow_image       = var.pipeline_image
  mlflow_resources   = var.mlflow_resources
}

module "monitoring" {
  source               = "../../modules/monitoring"
  environment          = var.environment
  labels               = local.labels
  prometheus_retention = var.prometheus_retention
  prometheus_storage   = var.storage.prometheus
  grafana_hostname     = var.grafana_hostname
  alert_webhook_urls   = var.alert_webhook_urls
}

module "noria" {
  source               = "../../modules/noria"
  environment          = var.environment
  labels               = local.labels
  namespace            = module.platform.namespace
  s3_endpoint          = module.platform.s3_endpoint
  s3_access_key_id     = module.platform.s3_access_key_id
  s3_secret_access_key = module.platform.s3_secret_access_key
  # pre-production: production's data remote, read-only (empty in production: its own store)
  data_s3_endpoint          = var.production_data_endpoint_url
  data_s3_access_key_id     = var.production_data_access_key_id
  data_s3_secret_access_key = var.production_data_secret_access_key
  redis_password            = module.platform.redis_password
  mlflow_username           = module.platform.mlflow_username
  mlflow_password           = module.platform.mlflow_password
  quota                     = var.quota
}
