#!/bin/bash
# Init container: a unique server_id per ordinal (GTID replication needs one), plus the shared
# replication settings and the buffer pool size of this environment.
set -euo pipefail

ordinal="${HOSTNAME##*-}"
cp /scripts/replication.cnf /etc/mysql/conf.d/replication.cnf
printf '[mysqld]\nserver_id=%d\nreport_host=%s.mysql.hf-data.svc.cluster.local\ninnodb_buffer_pool_size=%s\n' \
  "$((100 + ordinal))" "$HOSTNAME" "$MYSQL_INNODB_BUFFER_POOL_SIZE" > /etc/mysql/conf.d/instance.cnf
