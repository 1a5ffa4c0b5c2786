#!/bin/bash
# Runs once, from /docker-entrypoint-initdb.d, when a MySQL pod initialises an empty data dir.
# mysql-0 is the source: it creates the replication and exporter users. Every other ordinal
# becomes a GTID replica of mysql-0 and takes the schema and users from it.
set -euo pipefail

ordinal="${HOSTNAME##*-}"
mysql_root() { mysql --protocol=socket --user=root --password="$MYSQL_ROOT_PASSWORD" "$@"; }

if [ "$ordinal" = "0" ]; then
  mysql_root <<SQL
CREATE USER 'replicator'@'%' IDENTIFIED BY '${MYSQL_REPLICATION_PASSWORD}';
GRANT REPLICATION SLAVE ON *.* TO 'replicator'@'%';
CREATE USER 'exporter'@'%' IDENTIFIED BY '${MYSQL_EXPORTER_PASSWORD}' WITH MAX_USER_CONNECTIONS 3;
GRANT PROCESS, REPLICATION CLIENT, SELECT ON *.* TO 'exporter'@'%';
SQL
else
  # The entrypoint created the application user and database locally; drop them and forget the
  # local GTIDs so that everything arrives from the source instead.
  mysql_root <<SQL
DROP USER IF EXISTS '${MYSQL_USER}'@'%';
DROP DATABASE IF EXISTS \`${MYSQL_DATABASE}\`;
RESET BINARY LOGS AND GTIDS;
CHANGE REPLICATION SOURCE TO
  SOURCE_HOST='mysql-0.mysql.hf-data.svc.cluster.local',
  SOURCE_PORT=3306,
  SOURCE_USER='replicator',
  SOURCE_PASSWORD='${MYSQL_REPLICATION_PASSWORD}',
  SOURCE_AUTO_POSITION=1,
  GET_SOURCE_PUBLIC_KEY=1;
SET PERSIST super_read_only = ON;
SQL
fi
