# Infrastructure health, monitored with alerts (maturity item 40): kube-prometheus-stack.
# Prometheus picks up every ServiceMonitor and PrometheusRule in the cluster (deploy/k8s has
# Noria's), Alertmanager routes the alerts with deploy/alertmanager/alertmanager.yml to its
# webhook receivers, Grafana shows the dashboards in ConfigMaps labelled grafana_dashboard=1
# (the sidecar loads them from every namespace).
locals {
  labels = merge(var.labels, { environment = var.environment })
  # The routes and receivers, as the compose stack and the tests use them; each receiver reads
  # its URL from a file of the Secret below, mounted by the operator under /etc/alertmanager/secrets/.
  alertmanager_config = yamldecode(file("${path.module}/../../../alertmanager/alertmanager.yml"))
  webhooks_secret     = "noria-alert-webhooks"
}

resource "kubernetes_namespace_v1" "monitoring" {
  metadata {
    name   = var.namespace
    labels = local.labels
  }
}

resource "random_password" "grafana_admin" {
  length  = 24
  special = false
}

resource "kubernetes_secret_v1" "grafana_admin" {
  metadata {
    name      = "grafana-admin"
    namespace = kubernetes_namespace_v1.monitoring.metadata[0].name
    labels    = local.labels
  }
  data = {
    "admin-user"     = "admin"
    "admin-password" = random_password.grafana_admin.result
  }
}

resource "kubernetes_secret_v1" "alert_webhooks" {
  metadata {
    name      = local.webhooks_secret
    namespace = kubernetes_namespace_v1.monitoring.metadata[0].name
    labels    = local.labels
  }
  data = var.alert_webhook_urls
}

resource "helm_release" "kube_prometheus_stack" {
  name       = "kube-prometheus-stack"
  namespace  = kubernetes_namespace_v1.monitoring.metadata[0].name
  repository = "https://prometheus-community.github.io/helm-charts"
  chart      = "kube-prometheus-stack"
  version    = var.chart_version
  atomic     = true
  timeout    = 900
  values = [yamlencode({
    commonLabels = local.labels
    prometheus = {
      prometheusSpec = {
        retention                               = var.prometheus_retention
        serviceMonitorSelectorNilUsesHelmValues = false
        podMonitorSelectorNilUsesHelmValues     = false
        ruleSelectorNilUsesHelmValues           = false
        podMetadata                             = { labels = local.labels }
        storageSpec = {
          volumeClaimTemplate = {
            spec = {
              storageClassName = var.storage_class
              accessModes      = ["ReadWriteOnce"]
              resources        = { requests = { storage = var.prometheus_storage } }
            }
          }
        }
      }
    }
    alertmanager = {
      config = local.alertmanager_config
      alertmanagerSpec = {
        podMetadata = { labels = local.labels }
        secrets     = [kubernetes_secret_v1.alert_webhooks.metadata[0].name]
      }
    }
    grafana = {
      podLabels = local.labels
      admin = {
        existingSecret = kubernetes_secret_v1.grafana_admin.metadata[0].name
        userKey        = "admin-user"
        passwordKey    = "admin-password"
      }
      sidecar = { dashboards = { enabled = true, label = "grafana_dashboard", searchNamespace = "ALL" } }
      ingress = {
        enabled          = true
        ingressClassName = "nginx"
        annotations      = { "cert-manager.io/cluster-issuer" = "letsencrypt" }
        hosts            = [var.grafana_hostname]
        tls              = [{ secretName = "grafana-tls", hosts = [var.grafana_hostname] }]
      }
    }
  })]
}
