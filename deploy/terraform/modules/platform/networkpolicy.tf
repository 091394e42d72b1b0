# Who may talk to the platform services (issue 14): each one accepts connections only from the
# pods that use it, selected by the labels deploy/k8s gives Noria's pods
# (app.kubernetes.io/name = noria-serving for the API, noria-pipeline for every CronJob, Job and
# pipeline step). Everything else in the cluster, including other pods of this namespace, is
# refused. deploy/k8s/base/networkpolicy.yaml restricts the other direction (Noria's egress).
# Needs a NetworkPolicy-enforcing CNI (docs/deploying.md section 1). tests/unit/test_platform_policies.py
# checks that every platform service has one and whom it admits.
locals {
  noria_serving  = { "app.kubernetes.io/name" = "noria-serving" }
  noria_pipeline = { "app.kubernetes.io/name" = "noria-pipeline" }
  mlflow_pods    = { "app.kubernetes.io/name" = "mlflow" }
  # The chart's S3 gateway Deployment (seaweedfs-s3); master, volume and filer talk among themselves.
  seaweedfs_s3_pods = { "app.kubernetes.io/name" = "seaweedfs", "app.kubernetes.io/component" = "s3" }
  # SeaweedFS's S3 gateway metrics (global.monitoring.enabled: the chart's ServiceMonitor).
  seaweedfs_s3_metrics_port = 9327
  # Services that accept connections and from which pods (by label) on which port.
  platform_policies = {
    mlflow = {
      pods    = local.mlflow_pods
      port    = 5000
      clients = { serving = local.noria_serving, pipeline = local.noria_pipeline }
    }
    postgresql = {
      pods = { "app.kubernetes.io/name" = "postgresql" }
      port = 5432
      # MLflow's backend store; the pipeline pods' shared Optuna studies.
      clients = { mlflow = local.mlflow_pods, pipeline = local.noria_pipeline }
    }
    redis = {
      pods    = { "app.kubernetes.io/name" = "redis" }
      port    = 6379
      clients = { serving = local.noria_serving, pipeline = local.noria_pipeline }
    }
    seaweedfs-s3 = {
      pods    = local.seaweedfs_s3_pods
      port    = 8333
      clients = { mlflow = local.mlflow_pods, serving = local.noria_serving, pipeline = local.noria_pipeline }
    }
  }
}

resource "kubernetes_network_policy_v1" "platform" {
  for_each = local.platform_policies
  metadata {
    name      = "platform-${each.key}"
    namespace = kubernetes_namespace_v1.noria.metadata[0].name
    labels    = local.labels
  }
  spec {
    pod_selector {
      match_labels = each.value.pods
    }
    policy_types = ["Ingress"]
    ingress {
      dynamic "from" {
        for_each = each.value.clients
        content {
          pod_selector {
            match_labels = from.value
          }
        }
      }
      ports {
        port     = each.value.port
        protocol = "TCP"
      }
    }
  }
}

# Prometheus (namespace monitoring, kube-prometheus-stack) scrapes the S3 gateway's metrics port.
resource "kubernetes_network_policy_v1" "seaweedfs_s3_metrics" {
  metadata {
    name      = "platform-seaweedfs-s3-metrics"
    namespace = kubernetes_namespace_v1.noria.metadata[0].name
    labels    = local.labels
  }
  spec {
    pod_selector {
      match_labels = local.seaweedfs_s3_pods
    }
    policy_types = ["Ingress"]
    ingress {
      from {
        namespace_selector {
          match_labels = { "kubernetes.io/metadata.name" = "monitoring" }
        }
      }
      ports {
        port     = local.seaweedfs_s3_metrics_port
        protocol = "TCP"
      }
    }
  }
}
