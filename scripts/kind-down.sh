#!/usr/bin/env bash
# Delete the kind cluster of `make kind-up` (everything in it goes with it).
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
CLUSTER=${KIND_CLUSTER:-creditrisk}
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind delete cluster --name "$CLUSTER"
else
  echo "no kind cluster named $CLUSTER"
fi
