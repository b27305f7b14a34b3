#!/usr/bin/env bash
# A shared MLflow tracking server: runs and the model registry in PostgreSQL, artifacts in S3-compatible storage,
# proxied by the server (clients need no bucket credentials). Point the platform at it with `mlflow.tracking_uri`.
# Run it on a VM or as a Deployment (the user-code image has mlflow, psycopg2 and boto3):
#   MLFLOW_BACKEND_STORE_URI=postgresql+psycopg2://mlflow:$PASSWORD@postgres.example.internal:5432/mlflow \
#   MLFLOW_ARTIFACTS_DESTINATION=s3://whisper-assets/mlflow  AWS_ENDPOINT_URL=...  deploy/mlflow-server.sh
# (`postgresql+psycopg2`: SQLAlchemy 2.1 reads a bare `postgresql://` as psycopg 3, which is not installed.)
# test_team_scale.py starts this script against a throwaway PostgreSQL and an S3 server.
set -euo pipefail
exec "${MLFLOW:-mlflow}" server \
  --backend-store-uri "${MLFLOW_BACKEND_STORE_URI:?a postgresql+psycopg2:// URL}" \
  --artifacts-destination "${MLFLOW_ARTIFACTS_DESTINATION:?an s3:// URI}" \
  --host "${MLFLOW_HOST:-0.0.0.0}" \
  --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-2}"
