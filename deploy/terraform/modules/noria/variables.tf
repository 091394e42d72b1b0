variable "environment" {
  description = "Environment name (preprod, prod): part of every cost label."
  type        = string
}

variable "namespace" {
  description = "Namespace of Noria's pods (the platform module's)."
  type        = string
}

variable "labels" {
  description = "Cost-allocation labels put on every object (maturity item 39)."
  type        = map(string)
}

variable "s3_endpoint" {
  description = "S3 API of the object store, inside the cluster."
  type        = string
}

variable "s3_access_key_id" {
  description = "Access key of the object store's identity."
  type        = string
  sensitive   = true
}

variable "s3_secret_access_key" {
  description = "Secret key of the object store's identity."
  type        = string
  sensitive   = true
}

variable "data_s3_endpoint" {
  description = "S3 API of the store holding the data remote when it is another environment's (pre-production reads production's); empty: this environment's own store."
  type        = string
  default     = ""
}

variable "data_s3_access_key_id" {
  description = "Access key of the read-only identity on that data remote; empty: the object store's identity."
  type        = string
  default     = ""
  sensitive   = true
}

variable "data_s3_secret_access_key" {
  description = "Secret key of the read-only identity on that data remote."
  type        = string
  default     = ""
  sensitive   = true
}

variable "redis_password" {
  description = "Password of Redis (the Feast online store), for the connection string of noria.yaml's cluster profile."
  type        = string
  sensitive   = true
}

variable "mlflow_username" {
  description = "The MLflow user Noria's pods log in as (MLFLOW_TRACKING_USERNAME; modules/platform's admin)."
  type        = string
}

variable "mlflow_password" {
  description = "That user's password (MLFLOW_TRACKING_PASSWORD)."
  type        = string
  sensitive   = true
}

variable "api_key_count" {
  description = "How many API keys the serving API accepts (one per client; rotate by raising the count, then dropping the old key)."
  type        = number
  default     = 2
}

variable "quota" {
  description = "Ceiling on what Noria's namespace may request: cost is bounded by construction."
  type = object({
    requests_cpu    = string
    requests_memory = string
    limits_cpu      = string
    limits_memory   = string
    pods            = number
  })
}

variable "developers_group" {
  description = "Identity-provider group of the people who work on Noria: read-only in the namespace."
  type        = string
  default     = "noria-developers"
}
