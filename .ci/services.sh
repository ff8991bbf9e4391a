#!/usr/bin/env bash
# Make sure Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432, trust auth, database
# "test") run on this machine; install them from Debian's packages if they are missing.
set -uo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
apt_ready=0
apt_install() {
  if [ "$apt_ready" -eq 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; apt_ready=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}

if ! port_open 6379; then
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  for _ in $(seq 1 50); do port_open 6379 && break; sleep 0.1; done
fi
port_open 6379 && echo "redis: up on 127.0.0.1:6379" || echo "redis: NOT running (tests needing it will fail)"

if ! port_open 5432; then
  if ! ls /etc/postgresql >/dev/null 2>&1; then
    apt_install postgresql
  fi
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$version" ]; then
    conf="/etc/postgresql/$version/main"
    # trust on loopback for the test database, as on the developers' machines
    if [ -f "$conf/pg_hba.conf" ] && ! grep -q "portal-ci" "$conf/pg_hba.conf"; then
      sed -i '1i host all all 127.0.0.1/32 trust # portal-ci\nhost all all ::1/128 trust # portal-ci\nlocal all all trust # portal-ci' "$conf/pg_hba.conf"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || pg_ctlcluster "$version" main start || true
    for _ in $(seq 1 100); do port_open 5432 && break; sleep 0.1; done
  fi
fi
if port_open 5432; then
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null 2>&1 || true
  echo "postgres: up on 127.0.0.1:5432"
else
  echo "postgres: NOT running (tests needing it will fail)"
fi
exit 0
