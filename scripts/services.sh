#!/usr/bin/env bash
# Make sure Redis and PostgreSQL answer on 127.0.0.1 (what the tests and the service use).
# Starts them when installed but stopped; installs them from Debian's packages when missing.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
have() { command -v "$1" >/dev/null 2>&1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

need=()
{ have redis-server || [ -x /usr/bin/redis-server ]; } || need+=(redis-server)
{ ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; } || need+=(postgresql)
have jq || need+=(jq)        # the docs' runnable curl walk-throughs
have curl || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]} (Debian packages)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need[@]}" >/dev/null
  fresh_pg=1
fi

if ! port_open 6379; then
  echo "==> starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/sprout.log
fi

if ! port_open 5432; then
  echo "==> starting PostgreSQL"
  version=$(ls /etc/postgresql | sort -n | tail -1)
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
    || as_root pg_ctlcluster "$version" main start
fi
if [ "${fresh_pg:-0}" = 1 ]; then
  # A fresh cluster allows no password login: give the test role the password the tests use.
  as_root su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\""
fi

for i in $(seq 1 30); do
  port_open 6379 && port_open 5432 && exit 0
  sleep 1
done
echo "error: Redis (6379) or PostgreSQL (5432) did not come up on 127.0.0.1" >&2
exit 1
