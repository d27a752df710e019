#!/usr/bin/env bash
# Install (Debian package) and start a PostgreSQL server on loopback for the store tests,
# then print the admin URL the tests use (a role that may create one database per test).
# Idempotent: a server that is already installed or running is reused.
set -euo pipefail

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | grep -q "^$version main"; then
    pg_createcluster "$version" main >&2
fi
pg_ctlcluster "$version" main start >/dev/null 2>&1 || true  # already running is fine
for _ in $(seq 30); do
    pg_isready -q -h 127.0.0.1 && break
    sleep 1
done
pg_isready -q -h 127.0.0.1

# A throwaway CI role; the tests never print it (they check that URLs are redacted).
password=nas-ci-secret
su postgres -c "psql -q -v ON_ERROR_STOP=1" >&2 <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nas_ci') THEN
    CREATE ROLE nas_ci LOGIN CREATEDB PASSWORD '$password';
  END IF;
END \$\$;
SQL
su postgres -c "psql -q -tc \"SELECT 1 FROM pg_database WHERE datname = 'nas_ci'\"" | grep -q 1 \
    || su postgres -c "createdb -O nas_ci nas_ci" >&2
echo "postgresql+psycopg2://nas_ci:$password@127.0.0.1:5432/nas_ci"
