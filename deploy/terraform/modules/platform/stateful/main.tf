# One single-replica stateful server (PostgreSQL, Redis) from its official image: non-root,
# read-only root file system, a persistent data volume, probes, requests and limits.
locals {
  selector = { "app.kubernetes.io/name" = var.name }
  labels   = merge(var.labels, local.selector)
}

resource "kubernetes_stateful_set_v1" "this" {
  #checkov:skip=CKV_K8S_43:Official images are pinned by version tag in variables; set a digest there to pin harder
  #checkov:skip=CKV_K8S_35:The official images read their password from an environment variable only
  metadata {
    name      = var.name
    namespace = var.namespace
    labels    = local.labels
  }
  spec {
    service_name = var.name
    replicas     = 1
    selector {
      match_labels = local.selector
    }
    template {
      metadata {
        labels = local.labels
      }
      spec {
        automount_service_account_token = false
        enable_service_links            = false
        security_context {
          run_as_non_root = true
          run_as_user     = var.run_as_user
          run_as_group    = var.run_as_user
          fs_group        = var.run_as_user
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        container {
          name              = var.name
          image             = var.image
          image_pull_policy = "Always"
          args              = var.args
          port {
            name           = "server"
            container_port = var.port
          }
          dynamic "env" {
            for_each = var.env
            content {
              name  = env.key
              value = env.value
            }
          }
          dynamic "env" {
            for_each = var.secret_env
            content {
              name = env.key
              value_from {
                secret_key_ref {
                  name = env.value.secret
                  key  = env.value.key
                }
              }
            }
          }
          resources {
            requests = { cpu = var.resources.cpu_request, memory = var.resources.memory_request }
            limits   = { cpu = var.resources.cpu_limit, memory = var.resources.memory_limit }
          }
          readiness_probe {
            exec {
              command = var.probe_command
            }
            period_seconds = 10
          }
          liveness_probe {
            exec {
              command = var.probe_command
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
            name       = "data"
            mount_path = var.data_path
          }
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
          dynamic "volume_mount" {
            for_each = var.writable_dirs
            content {
              name       = volume_mount.key
              mount_path = volume_mount.value
            }
          }
        }
        volume {
          name = "tmp"
          empty_dir {
            size_limit = "256Mi"
          }
        }
        dynamic "volume" {
          for_each = var.writable_dirs
          content {
            name = volume.key
            empty_dir {
              size_limit = "64Mi"
            }
          }
        }
      }
    }
    volume_claim_template {
      metadata {
        name   = "data"
        labels = local.labels
      }
      spec {
        access_modes       = ["ReadWriteOnce"]
        storage_class_name = var.storage_class
        resources {
          requests = { storage = var.storage }
        }
      }
    }
  }
}

resource "kubernetes_service_v1" "this" {
  metadata {
    name      = var.name
    namespace = var.namespace
    labels    = local.labels
  }
  spec {
    selector = local.selector
    port {
      name        = "server"
      port        = var.port
      target_port = "server"
    }
  }
}
