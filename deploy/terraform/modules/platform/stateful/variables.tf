variable "name" {
  description = "Name of the StatefulSet and its Service."
  type        = string
}

variable "namespace" {
  description = "Namespace to run in."
  type        = string
}

variable "labels" {
  description = "Cost-allocation labels put on every object (maturity item 39)."
  type        = map(string)
}

variable "image" {
  description = "Container image."
  type        = string
}

variable "port" {
  description = "TCP port the server listens on (also the Service's)."
  type        = number
}

variable "run_as_user" {
  description = "Non-root user id (and group) of the server; owns the data volume."
  type        = number
}

variable "storage" {
  description = "Size of the data volume."
  type        = string
}

variable "storage_class" {
  description = "StorageClass of the data volume (null: the cluster's default)."
  type        = string
  default     = null
}

variable "data_path" {
  description = "Where the data volume is mounted."
  type        = string
}

variable "writable_dirs" {
  description = "Other folders the server writes to (emptyDir volumes): name => path. /tmp always is."
  type        = map(string)
}

variable "args" {
  description = "Container arguments (empty: the image's default command)."
  type        = list(string)
}

variable "env" {
  description = "Plain environment variables."
  type        = map(string)
}

variable "secret_env" {
  description = "Environment variables read from Secrets: name => {secret, key}."
  type        = map(object({ secret = string, key = string }))
}

variable "probe_command" {
  description = "Command whose success means the server answers (readiness and liveness)."
  type        = list(string)
}

variable "resources" {
  description = "Requests and limits."
  type = object({
    cpu_request    = string
    memory_request = string
    cpu_limit      = string
    memory_limit   = string
  })
}
