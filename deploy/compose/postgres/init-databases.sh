#!/usr/bin/env bash
# Runs once, when the PostgreSQL volume is empty: one role and one database per platform
# service (MLflow's tracking + registry, Airflow's metadata, Optuna's shared studies).
# Passwords come from the environment (deploy/compose/.env), never from this file.
set -euo pipefail
create() {
  local name="$1" password="$2"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    --set=name="$name" --set=password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'name', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name') \gexec
SQL
}
create mlflow "$MLFLOW_DB_PASSWORD"
create airflow "$AIRFLOW_DB_PASSWORD"
create optuna "$OPTUNA_DB_PASSWORD"
