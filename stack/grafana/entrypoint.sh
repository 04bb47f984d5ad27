#!/bin/sh
# Grafana's admin password for `docker compose up` with no preparation, never weak and
# permanent: GRAFANA_ADMIN_PASSWORD from .env when it is set; otherwise a random one made
# on the first start, kept in Grafana's data volume and printed once in its log
# (`docker compose logs grafana`). Grafana applies the password when it creates its
# database, so it stays the one of the first start until changed in Grafana itself.
# Runs the image's own entrypoint (the arguments) with GF_SECURITY_ADMIN_PASSWORD set.
set -eu
data="${GF_PATHS_DATA:-/var/lib/grafana}"
saved="$data/ccobs-admin-password"
if [ -n "${CCOBS_GRAFANA_ADMIN_PASSWORD:-}" ]; then
  password="$CCOBS_GRAFANA_ADMIN_PASSWORD"
  echo "ccobs: Grafana user admin, password from GRAFANA_ADMIN_PASSWORD (.env)"
elif [ -s "$saved" ]; then
  password="$(cat "$saved")"
  echo "ccobs: Grafana user admin, password generated on the first start: cat $saved in the container"
else
  password="$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 24)"
  (umask 077 && printf '%s' "$password" >"$saved")
  echo "ccobs: Grafana user admin, generated password: $password (kept in $saved;" \
    "set GRAFANA_ADMIN_PASSWORD in .env before the first start to choose your own)"
fi
GF_SECURITY_ADMIN_PASSWORD="$password"
export GF_SECURITY_ADMIN_PASSWORD
unset CCOBS_GRAFANA_ADMIN_PASSWORD
exec "$@"
