# What Noria's manifests (deploy/k8s) expect from the cluster before CD applies them:
# the Secret they reference (never committed) and a quota that bounds the namespace's cost.
# The workloads themselves are applied by the CD pipeline only (.github/workflows/cd.yml).
locals {
  labels = merge(var.labels, { environment = var.environment, "app.kubernetes.io/part-of" = "noria" })
}

resource "random_password" "api_key" {
  count   = var.api_key_count
  length  = 40
  special = false
}

resource "kubernetes_secret_v1" "noria" {
  metadata {
    name      = "noria-secrets"
    namespace = var.namespace
    labels    = local.labels
  }
  data = merge({
    "api-keys"             = join(",", random_password.api_key[*].result)
    "s3-access-key-id"     = var.s3_access_key_id
    "s3-secret-access-key" = var.s3_secret_access_key
    "s3-endpoint-url"      = var.s3_endpoint
    "redis-password"       = var.redis_password
    # MLflow runs with authentication (modules/platform): MLflow's client reads these two.
    "mlflow-username" = var.mlflow_username
    "mlflow-password" = var.mlflow_password
    },
    # The data remote on another environment's store (pre-production reads production's data with
    # a read-only identity): the pipeline CronJobs take these as NORIA_DATA_S3_* (optional keys;
    # absent, as in production, the data remote is on this environment's own store).
    { for key, value in {
      "s3-data-endpoint-url"      = var.data_s3_endpoint
      "s3-data-access-key-id"     = var.data_s3_access_key_id
      "s3-data-secret-access-key" = var.data_s3_secret_access_key
    } : key => value if var.data_s3_endpoint != "" }
  )
}

resource "kubernetes_resource_quota_v1" "noria" {
  metadata {
    name      = "noria"
    namespace = var.namespace
    labels    = local.labels
  }
  spec {
    hard = {
      "requests.cpu"    = var.quota.requests_cpu
      "requests.memory" = var.quota.requests_memory
      "limits.cpu"      = var.quota.limits_cpu
      "limits.memory"   = var.quota.limits_memory
      "pods"            = var.quota.pods
    }
  }
}

resource "kubernetes_limit_range_v1" "noria" {
  metadata {
    name      = "noria"
    namespace = var.namespace
    labels    = local.labels
  }
  spec {
    limit {
      type            = "Container"
      default         = { cpu = "500m", memory = "1Gi" }
      default_request = { cpu = "100m", memory = "256Mi" }
    }
  }
}

# People read, only CD writes (maturity item 13): the developers' group gets the built-in
# read-only `view` role in Noria's namespace and nothing more; CD's own identity (the
# kubeconfig in the GitHub environments) is the only one that applies changes.
resource "kubernetes_role_binding_v1" "developers_read_only" {
  metadata {
    name      = "noria-developers-view"
    namespace = var.namespace
    labels    = local.labels
  }
  role_ref {
    api_group = "rbac.authorization.k8s.io"
    kind      = "ClusterRole"
    name      = "view"
  }
  subject {
    api_group = "rbac.authorization.k8s.io"
    kind      = "Group"
    name      = var.developers_group
  }
}
