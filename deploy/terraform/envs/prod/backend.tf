# Remote state in the cluster itself (a Secret in namespace terraform-state, locked with a
# Lease), so the platform needs no cloud account. Create the namespace once, then init:
#   kubectl create namespace terraform-state
#   terraform init -backend-config="config_context=<kube context of prod>"
terraform {
  backend "kubernetes" {
    secret_suffix = "noria-prod"
    namespace     = "terraform-state"
    config_path   = "~/.kube/config"
  }
}
