output "address" {
  description = "host:port of the server inside the cluster."
  value       = "${kubernetes_service_v1.this.metadata[0].name}:${var.port}"
}
