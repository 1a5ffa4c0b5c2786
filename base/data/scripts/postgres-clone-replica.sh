#!/bin/bash
# Init container: every ordinal but 0 starts as a streaming replica of postgres-0. An existing
# data directory is left alone (a restarted replica resumes streaming from where it stopped).
set -euo pipefail

ordinal="${HOSTNAME##*-}"
if [ "$ordinal" = "0" ] || [ -s "$PGDATA/PG_VERSION" ]; then
  exit 0
fi

primary="postgres-0.postgres.hf-data.svc.cluster.local"
until pg_isready --host="$primary" --port=5432 --timeout=3; do
  echo "waiting for the primary $primary"
  sleep 2
done

# -R writes standby.signal and primary_conninfo, so the main container starts as a hot standby.
PGPASSWORD="$POSTGRES_REPLICATION_PASSWORD" pg_basebackup \
  --host="$primary" --username=replicator --pgdata="$PGDATA" \
  --wal-method=stream --checkpoint=fast --write-recovery-conf --progress
