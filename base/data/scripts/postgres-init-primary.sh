#!/bin/bash
# Runs once, from /docker-entrypoint-initdb.d, when postgres-0 initialises an empty data directory.
# Replicas never run it: their data directory is a pg_basebackup copy of the primary.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v repl_pw="$POSTGRES_REPLICATION_PASSWORD" \
  -v ndp_pw="$NDP_DB_PASSWORD" \
  -v exporter_pw="$POSTGRES_EXPORTER_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'repl_pw';
CREATE ROLE ndp WITH LOGIN PASSWORD :'ndp_pw';
ALTER DATABASE ndp OWNER TO ndp;
ALTER SCHEMA public OWNER TO ndp;
CREATE ROLE postgres_exporter WITH LOGIN PASSWORD :'exporter_pw' CONNECTION LIMIT 3;
GRANT pg_monitor TO postgres_exporter;
SQL

# "host all all all" does not match replication connections.
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
