#!/bin/sh
# pip inside an image build. The build host's package index and CA bundle come in as
# build secrets (scripts/build-images.sh passes them; nothing host-specific is baked
# into an image layer or committed):
#   pipconf  a pip.conf with the host's http(s) index settings  -> PIP_CONFIG_FILE
#   cacert   the host's CA bundle                               -> PIP_CERT
# Without them (a plain `docker build`), pip uses PyPI and its own CA bundle.
set -eu
if [ -s /run/secrets/pipconf ]; then
  export PIP_CONFIG_FILE=/run/secrets/pipconf
fi
if [ -s /run/secrets/cacert ]; then
  export PIP_CERT=/run/secrets/cacert
fi
exec python -m pip "$@"
