# The data platform Noria runs on, in one namespace: PostgreSQL (MLflow's backend store and
# shared Optuna studies), SeaweedFS (S3 API: MLflow artifacts, DVC remote), MLflow server and
# Redis (Feast online store). Noria's own pods (deploy/k8s) run in the same namespace.
locals {
  labels = merge(var.labels, { environment = var.environment, "app.kubernetes.io/part-of" = "noria" })
  # The bucket of the DVC remote (storage.dvc_remote: s3://noria-data/dvc) and its snapshot records.
  data_bucket = "noria-data"
}

resource "kubernetes_namespace_v1" "noria" {
  metadata {
    name   = var.namespace
    labels = local.labels
  }
}

# ---- credentials (generated, kept in Kubernetes Secrets and the remote state only) ----

resource "random_password" "postgresql" {
  length  = 32
  special = false
}

resource "random_password" "s3_secret_key" {
  length  = 40
  special = false
}

resource "random_id" "s3_access_key" {
  byte_length = 10
}

resource "kubernetes_secret_v1" "postgresql" {
  metadata {
    name      = "postgresql-auth"
    namespace = kubernetes_namespace_v1.noria.metadata[0].name
    labels    = local.labels
  }
  data = {
    "password"          = random_password.postgresql.result
    "postgres-password" = random_password.postgresql.result
  }
}

# A second, read-only identity: it may only Read and List the DVC remote's prefix of the data bucket
# (s3://noria-data/dvc: the snapshots and the records beside them). Production's is handed to pre-production (envs/*: the outputs
# data_reader_*), which reads production's data with it and never writes it (docs/deploying.md,
# "Production data in every environment"). Nothing else of this store is readable with it.
resource "random_password" "s3_data_reader_secret_key" {
  length  = 40
  special = false
}

resource "random_id" "s3_data_reader_access_key" {
  byte_length = 10
}

resource "kubernetes_secret_v1" "s3" {
  metadata {
    name      = "s3-auth"
    namespace = kubernetes_namespace_v1.noria.metadata[0].name
    labels    = local.labels
  }
  data = {
    "access-key-id"     = upper(random_id.s3_access_key.hex)
    "secret-access-key" = random_password.s3_secret_key.result
    # SeaweedFS's S3 identity file: the admin identity, used by MLflow, DVC and Noria, and the
    # data bucket's read-only identity (another environment reads this one's data with it).
    "seaweedfs_s3_config" = jsonencode({
      identities = [{
        name        = "noria"
        credentials = [{ accessKey = upper(random_id.s3_access_key.hex), secretKey = random_password.s3_secret_key.result }]
        actions     = ["Admin", "Read", "List", "Tagging", "Write"]
        }, {
        name = "noria-data-reader"
        credentials = [{
          accessKey = upper(random_id.s3_data_reader_access_key.hex)
          secretKey = random_password.s3_data_reader_secret_key.result
        }]
        # the DVC remote's prefix only: not the prediction log beside it (s3://noria-data/predictions,
        # requests that may hold personal data) nor anything else of the bucket
        actions = ["Read:${local.data_bucket}/dvc/*", "List:${local.data_bucket}/dvc/*"]
      }]
    })
  }
}

# MLflow's basic-auth app (`mlflow server --app-name basic-auth`): every API call needs a user.
# The admin user is created with this password the first time the server starts on an empty auth
# store (tables users, roles, ... and alembic_version_auth, in the same `mlflow` database); Noria's
# pods log in as it through noria-secrets (modules/noria). A new random_password is NOT applied to
# an existing admin: rotation goes through MLflow's update-password API (docs/deploying.md, 6b).
resource "random_password" "mlflow_admin" {
  length  = 32
  special = false
}

resource "random_password" "mlflow_flask_secret" {
  length  = 48
  special = false
}

resource "kubernetes_secret_v1" "mlflow_auth" {
  metadata {
    name      = "mlflow-auth"
    namespace = kubernetes_namespace_v1.noria.metadata[0].name
    labels    = local.labels
  }
  data = {
    "username"         = local.mlflow_admin_username
    "password"         = random_password.mlflow_admin.result
    "flask-secret-key" = random_password.mlflow_flask_secret.result
    # MLflow reads the auth store's address from this file only (MLFLOW_AUTH_CONFIG_PATH); it holds
    # the database password, hence a Secret mounted read-only, not a ConfigMap.
    "basic_auth.ini" = <<-EOT
      [mlflow]
      default_permission = READ
      database_uri = postgresql://mlflow:${random_password.postgresql.result}@postgresql:5432/mlflow
      admin_username = ${local.mlflow_admin_username}
      authorization_function = mlflow.server.auth:authenticate_request_basic_auth
    EOT
  }
}

# ---- PostgreSQL (official image; Bitnami's free images left Docker Hub in 2025) ----

module "postgresql" {
  source        = "./stateful"
  name          = "postgresql"
  namespace     = kubernetes_namespace_v1.noria.metadata[0].name
  labels        = local.labels
  image         = var.postgresql_image
  port          = 5432
  run_as_user   = 999
  storage       = var.postgresql_storage
  storage_class = var.storage_class
  data_path     = "/var/lib/postgresql/data"
  writable_dirs = { run = "/var/run/postgresql" }
  args          = []
  env = {
    POSTGRES_DB   = "mlflow"
    POSTGRES_USER = "mlflow"
    PGDATA        = "/var/lib/postgresql/data/pgdata"
  }
  secret_env = {
    POSTGRES_PASSWORD = { secret = kubernetes_secret_v1.postgresql.metadata[0].name, key = "password" }
  }
  probe_command = ["pg_isready", "-U", "mlflow", "-d", "mlflow"]
  resources     = { cpu_request = "250m", memory_request = "512Mi", cpu_limit = "1", memory_limit = "1Gi" }
}

# ---- object storage (S3 API on port 8333) ----

resource "helm_release" "seaweedfs" {
  name       = "seaweedfs"
  namespace  = kubernetes_namespace_v1.noria.metadata[0].name
  repository = "https://seaweedfs.github.io/seaweedfs/helm"
  chart      = "seaweedfs"
  version    = var.seaweedfs_chart_version
  atomic     = true
  values = [yamlencode({
    global = { enableSecurity = false, monitoring = { enabled = true } }
    master = { replicas = 1 }
    volume = {
      replicas = 1
      dataDirs = [{
        name         = "data"
        type         = "persistentVolumeClaim"
        size         = var.object_storage
        storageClass = var.storage_class
        maxVolumes   = 0
      }]
    }
    filer = { replicas = 1 }
    s3 = {
      enabled              = true
      port                 = 8333
      enableAuth           = true
      existingConfigSecret = kubernetes_secret_v1.s3.metadata[0].name
      createBuckets        = [{ name = "mlflow" }, { name = local.data_bucket }, { name = "noria-artifacts" }]
    }
  })]
}

# ---- MLflow server (tracking + registry; artifacts proxied to the object store) ----

resource "kubernetes_deployment_v1" "mlflow" {
  #checkov:skip=CKV_K8S_43:The image comes by digest from CD (deploy.yml passes -var pipeline_image=...@sha256:...)
  #checkov:skip=CKV_K8S_35:MLflow and boto3 read these credentials from environment variables only
  metadata {
    name      = "mlflow"
    namespace = kubernetes_namespace_v1.noria.metadata[0].name
    labels    = merge(local.labels, { "app.kubernetes.io/name" = "mlflow" })
  }
  spec {
    replicas = 1
    selector {
      match_labels = { "app.kubernetes.io/name" = "mlflow" }
    }
    template {
      metadata {
        labels = merge(local.labels, { "app.kubernetes.io/name" = "mlflow" })
      }
      spec {
        automount_service_account_token = false
        enable_service_links            = false
        security_context {
          run_as_non_root = true
          run_as_user     = 10001
          run_as_group    = 10001
          fs_group        = 10001
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        container {
          name              = "mlflow"
          image             = var.mlflow_image
          image_pull_policy = "Always"
          command           = ["mlflow"]
          args = [
            "server", "--app-name", "basic-auth", "--host", "0.0.0.0", "--port", "5000",
            "--backend-store-uri", "postgresql://mlflow:$(PGPASSWORD)@postgresql:5432/mlflow",
            "--artifacts-destination", "s3://mlflow", "--serve-artifacts",
            "--allowed-hosts", "mlflow,mlflow:5000,mlflow.${var.namespace}.svc.cluster.local:5000,localhost:5000",
          ]
          port {
            name           = "http"
            container_port = 5000
          }
          env {
            name = "PGPASSWORD"
            value_from {
              secret_key_ref {
                name = kubernetes_secret_v1.postgresql.metadata[0].name
                key  = "password"
              }
            }
          }
          env {
            name = "AWS_ACCESS_KEY_ID"
            value_from {
              secret_key_ref {
                name = kubernetes_secret_v1.s3.metadata[0].name
                key  = "access-key-id"
              }
            }
          }
          env {
            name = "AWS_SECRET_ACCESS_KEY"
            value_from {
              secret_key_ref {
                name = kubernetes_secret_v1.s3.metadata[0].name
                key  = "secret-access-key"
              }
            }
          }
          env {
            name  = "MLFLOW_S3_ENDPOINT_URL"
            value = local.s3_endpoint
          }
          env {
            name  = "MLFLOW_DISABLE_TELEMETRY"
            value = "true"
          }
          env {
            name  = "MLFLOW_AUTH_CONFIG_PATH"
            value = "/etc/mlflow-auth/basic_auth.ini"
          }
          env {
            name = "MLFLOW_AUTH_ADMIN_PASSWORD"
            value_from {
              secret_key_ref {
                name = kubernetes_secret_v1.mlflow_auth.metadata[0].name
                key  = "password"
              }
            }
          }
          env {
            name = "MLFLOW_FLASK_SERVER_SECRET_KEY"
            value_from {
              secret_key_ref {
                name = kubernetes_secret_v1.mlflow_auth.metadata[0].name
                key  = "flask-secret-key"
              }
            }
          }
          resources {
            requests = { cpu = var.mlflow_resources.cpu_request, memory = var.mlflow_resources.memory_request }
            limits   = { cpu = var.mlflow_resources.cpu_limit, memory = var.mlflow_resources.memory_limit }
          }
          # /health answers without credentials (MLflow's auth app leaves it open).
          readiness_probe {
            http_get {
              path = "/health"
              port = "http"
            }
            period_seconds = 10
          }
          liveness_probe {
            http_get {
              path = "/health"
              port = "http"
            }
            initial_delay_seconds = 30
            period_seconds        = 20
          }
          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            privileged                 = false
            capabilities {
              drop = ["ALL"]
            }
          }
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
          volume_mount {
            name       = "auth-config"
            mount_path = "/etc/mlflow-auth"
            read_only  = true
          }
        }
        volume {
          name = "tmp"
          empty_dir {
            size_limit = "1Gi"
          }
        }
        volume {
          name = "auth-config"
          secret {
            secret_name  = kubernetes_secret_v1.mlflow_auth.metadata[0].name
            default_mode = "0440" # group-readable: fs_group makes the server's group own it
            items {
              key  = "basic_auth.ini"
              path = "basic_auth.ini"
            }
          }
        }
      }
    }
  }
  depends_on = [module.postgresql, helm_release.seaweedfs]
}

resource "kubernetes_service_v1" "mlflow" {
  metadata {
    name      = "mlflow"
    namespace = kubernetes_namespace_v1.noria.metadata[0].name
    labels    = merge(local.labels, { "app.kubernetes.io/name" = "mlflow" })
  }
  spec {
    selector = { "app.kubernetes.io/name" = "mlflow" }
    port {
      name        = "http"
      port        = 5000
      target_port = "http"
    }
  }
}

# ---- Redis (Feast online store; official image) ----

resource "random_password" "redis" {
  length  = 32
  special = false
}

resource "kubernetes_secret_v1" "redis" {
  metadata {
    name      = "redis-auth"
    namespace = kubernetes_namespace_v1.noria.metadata[0].name
    labels    = local.labels
  }
  data = {
    "redis-password" = random_password.redis.result
  }
}

module "redis" {
  source        = "./stateful"
  name          = "redis"
  namespace     = kubernetes_namespace_v1.noria.metadata[0].name
  labels        = local.labels
  image         = var.redis_image
  port          = 6379
  run_as_user   = 999
  storage       = var.redis_storage
  storage_class = var.storage_class
  data_path     = "/data"
  writable_dirs = {}
  # The password comes from the environment (REDIS_PASSWORD), expanded by Kubernetes.
  args       = ["redis-server", "--requirepass", "$(REDIS_PASSWORD)", "--appendonly", "yes", "--dir", "/data"]
  env        = {}
  secret_env = { REDIS_PASSWORD = { secret = kubernetes_secret_v1.redis.metadata[0].name, key = "redis-password" } }
  # REDISCLI_AUTH keeps the password off the command line of the probe.
  probe_command = ["sh", "-c", "REDISCLI_AUTH=\"$REDIS_PASSWORD\" redis-cli ping | grep -q PONG"]
  resources     = { cpu_request = "100m", memory_request = "256Mi", cpu_limit = "500m", memory_limit = "1Gi" }
}

locals {
  s3_endpoint           = "http://seaweedfs-s3.${var.namespace}.svc.cluster.local:8333"
  mlflow_admin_username = "admin"
}
