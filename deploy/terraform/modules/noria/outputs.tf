output "secret_name" {
  description = "The Secret deploy/k8s references (noria-secrets)."
  value       = kubernetes_secret_v1.noria.metadata[0].name
}

output "api_keys" {
  description = "API keys of the serving API (clients send one as `Authorization: Bearer KEY`)."
  value       = random_password.api_key[*].result
  sensitive   = true
}
