#!/bin/sh
# Start Redis as a replica of whatever master Sentinel knows about; only when no Sentinel knows
# one yet (first start of the cluster) does redis-0 start as the master. This keeps a restarted
# former master from coming back as a second master after a failover.
set -eu

self="${HOSTNAME}.redis.hf-data.svc.cluster.local"
master="$(redis-cli -h redis-sentinel -p 26379 --no-auth-warning -a "$REDIS_PASSWORD" \
  sentinel get-master-addr-by-name healthflow 2>/dev/null | head -n 1 || true)"
if [ -z "$master" ] && [ "${HOSTNAME##*-}" != "0" ]; then
  master="redis-0.redis.hf-data.svc.cluster.local"
fi

set -- /etc/redis/redis.conf --requirepass "$REDIS_PASSWORD" --masterauth "$REDIS_PASSWORD" \
  --replica-announce-ip "$self" --maxmemory "$REDIS_MAXMEMORY"
if [ -n "$master" ] && [ "$master" != "$self" ]; then
  set -- "$@" --replicaof "$master" 6379
else
  # A lone master must accept writes (min-replicas-to-write is for the replicated case).
  set -- "$@" --min-replicas-to-write 0
fi
exec redis-server "$@"
