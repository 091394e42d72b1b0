variable "environment" {
  description = "Environment name (preprod, prod): part of every cost label."
  type        = string
}

variable "namespace" {
  description = "Namespace for the data platform and Noria's pods (one per cluster)."
  type        = string
  default     = "noria"
}

variable "labels" {
  description = "Cost-allocation labels put on every object (maturity item 39)."
  type        = map(string)
}

variable "storage_class" {
  description = "StorageClass of the persistent volumes (null: the cluster's default)."
  type        = string
  default     = null
}

variable "postgresql_image" {
  description = "PostgreSQL image (official)."
  type        = string
  default     = "postgres:16.4-bookworm"
}

variable "postgresql_storage" {
  description = "Size of PostgreSQL's volume (MLflow's backend store, Optuna studies)."
  type        = string
}

variable "redis_image" {
  description = "Redis image (official; Feast online store)."
  type        = string
  default     = "redis:7.4.1-bookworm"
}

variable "redis_storage" {
  description = "Size of Redis's volume."
  type        = string
}

variable "seaweedfs_chart_version" {
  description = "SeaweedFS chart version (S3-compatible object storage)."
  type        = string
  default     = "4.0.0"
}

variable "object_storage" {
  description = "Size of the object store's data volume (artifacts, DVC remote)."
  type        = string
}

variable "mlflow_image" {
  description = "Image that runs `mlflow server`: Noria's pipeline image, which holds the same MLflow as the clients plus psycopg2 and boto3."
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
