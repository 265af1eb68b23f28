#!/bin/sh
# The image's entrypoint: reads the secrets named by BIGMODEL_API_KEY_FILE and CBM_REDIS_PASSWORD_FILE
# (Docker secrets are files under /run/secrets) into the environment, then runs concurrent_bigmodel with
# the arguments given. The key and the password never reach argv. Variables already set (Kubernetes
# fills them from a Secret) are kept when no *_FILE is given.
set -eu
if [ -n "${BIGMODEL_API_KEY_FILE:-}" ]; then
  BIGMODEL_API_KEY=$(cat "$BIGMODEL_API_KEY_FILE")
  export BIGMODEL_API_KEY
fi
if [ -n "${CBM_REDIS_PASSWORD_FILE:-}" ]; then
  CBM_REDIS_PASSWORD=$(cat "$CBM_REDIS_PASSWORD_FILE")
  export CBM_REDIS_PASSWORD
fi
exec concurrent_bigmodel "$@"
