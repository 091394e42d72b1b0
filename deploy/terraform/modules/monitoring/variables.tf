variable "environment" {
  description = "Environment name (preprod, prod): part of every cost label."
  type        = string
}

variable "namespace" {
  description = "Namespace of Prometheus, Alertmanager and Grafana (the NetworkPolicy of deploy/k8s admits scrapes from it)."
  type        = string
  default     = "monitoring"
}

variable "labels" {
  description = "Cost-allocation labels put on every object (maturity item 39)."
  type        = map(string)
}

variable "chart_version" {
  description = "kube-prometheus-stack chart version (Prometheus operator, Prometheus, Alertmanager, Grafana, kube-state-metrics)."
  type        = string
  default     = "77.14.0"
}

variable "prometheus_retention" {
  description = "How long Prometheus keeps samples."
  type        = string
}

variable "prometheus_storage" {
  description = "Size of Prometheus's volume."
  type        = string
}

variable "storage_class" {
  description = "StorageClass of the persistent volumes (null: the cluster's default)."
  type        = string
  default     = null
}

variable "grafana_hostname" {
  description = "Public hostname of Grafana (ingress with TLS from cert-manager)."
  type        = string
}

variable "alert_webhook_urls" {
  description = "Webhook URL of each receiver of deploy/alertmanager/alertmanager.yml, by key: platform (service and cluster alerts) and ml (model and batch delivery alerts)."
  type        = map(string)
  sensitive   = true
  validation {
    condition     = alltrue([for k in ["platform", "ml"] : can(regex("^https://", lookup(var.alert_webhook_urls, k, "")))])
    error_message = "alert_webhook_urls needs an https:// URL for platform and for ml: the receivers of deploy/alertmanager/alertmanager.yml post there."
  }
}
