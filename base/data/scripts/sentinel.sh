#!/bin/sh
# Sentinel rewrites its config file, so it is generated into an emptyDir at every start. A
# restarted Sentinel monitors the master its peers agree on, not necessarily redis-0.
set -eu

master="$(redis-cli -h redis-sentinel -p 26379 --no-auth-warning -a "$REDIS_PASSWORD" \
  sentinel get-master-addr-by-name healthflow 2>/dev/null | head -n 1 || true)"
master="${master:-redis-0.redis.hf-data.svc.cluster.local}"

cat > /sentinel/sentinel.conf <<CONF
port 26379
dir /sentinel
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip ${HOSTNAME}.redis.hf-data.svc.cluster.local
requirepass ${REDIS_PASSWORD}
sentinel sentinel-pass ${REDIS_PASSWORD}
sentinel monitor healthflow ${master} 6379 ${SENTINEL_QUORUM}
sentinel auth-pass healthflow ${REDIS_PASSWORD}
sentinel down-after-milliseconds healthflow 5000
sentinel failover-timeout healthflow 60000
sentinel parallel-syncs healthflow 1
CONF
exec redis-sentinel /sentinel/sentinel.conf
