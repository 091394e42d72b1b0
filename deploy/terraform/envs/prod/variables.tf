variable "kubeconfig" {
  description = "Path of the kubeconfig file."
  type        = string
  default     = "~/.kube/config"
}

variable "kube_context" {
  description = "Kube context of this environment's cluster."
  type        = string
}

variable "environment" {
  description = "Environment name: part of every cost label."
  type        = string
}

variable "cost_center" {
  description = "Who pays: the cost-center label on every object."
  type        = string
}

variable "pipeline_image" {
  description = "The noria-pipeline image that runs the MLflow server; CD passes the one it built, by digest."
  type        = string
}

variable "storage" {
  description = "Volume sizes of the platform's stateful parts."
  type = object({
    postgresql = string
    redis      = string
    objects    = string
    prometheus = string
  })
}

variable "prometheus_retention" {
  description = "How long Prometheus keeps samples."
  type        = string
}

variable "grafana_hostname" {
  description = "Public hostname of Grafana."
  type        = string
}

variable "mlflow_resources" {
  description = "Requests and limits of the MLflow server."
  type = object({
    cpu_request    = string
    memory_request = string
    cpu_limit      = string
    memory_limit   = string
  })
}

variable "quota" {
  description = "Ceiling on what Noria's namespace may request."
  type = object({
    requests_cpu    = string
    requests_memory = string
    limits_cpu      = string
    limits_memory   = string
    pods            = number
  })
}

variable "alert_webhook_urls" {
  description = "Webhook URL of each Alertmanager receiver (platform, ml): a secret, so never in terraform.tfvars; CD passes TF_VAR_alert_webhook_urls from the environment's ALERT_WEBHOOK_URLS secret."
  type        = map(string)
  sensitive   = true
}

variable "production_data_endpoint_url" {
  description = "Pre-production only: production's S3 endpoint as this cluster reaches it (production's output data_s3_endpoint, or its public address); empty (production): the data remote is on this environment's own store."
  type        = string
  default     = ""
}

variable "production_data_access_key_id" {
  description = "Pre-production only: production's read-only data identity (terraform output data_reader_access_key_id in envs/prod); a secret: CD passes TF_VAR_production_data_access_key_id. Empty in production."
  type        = string
  default     = ""
  sensitive   = true
}

variable "production_data_secret_access_key" {
  description = "Pre-production only: the secret of production's read-only data identity (output data_reader_secret_access_key); CD passes TF_VAR_production_data_secret_access_key. Empty in production."
  type        = string
  default     = ""
  sensitive   = true
}
