#!/bin/sh
# Entry point of the txproxy image.
#
# The admin endpoint shows who is connected and what SQL they run, so the
# image serves it on all interfaces only when a bearer token protects it
# (TXPROXY_ADMIN_TOKEN or TXPROXY_ADMIN_TOKEN_FILE); without one it listens
# on the container's loopback only, out of reach from outside. TXPROXY_HTTP,
# when set, always decides (docs/admin-api.md).
set -eu
if [ -z "${TXPROXY_HTTP:-}" ]; then
  if [ -n "${TXPROXY_ADMIN_TOKEN:-}" ] || [ -n "${TXPROXY_ADMIN_TOKEN_FILE:-}" ]; then
    TXPROXY_HTTP=0.0.0.0:9930
  else
    TXPROXY_HTTP=127.0.0.1:9930
  fi
  export TXPROXY_HTTP
fi
exec node "$(dirname "$0")/../dist/src/main.js" "$@"
