#!/bin/bash
# masakari-up.sh: Masakari (Debian's masakari-api and masakari-engine) beside a stack stack-up.sh
# brought up: its database in the stack's PostgreSQL, its messages on the stack's RabbitMQ, its user,
# service (instance-ha) and endpoints in the stack's keystone, one segment (recovery_method auto)
# holding every compute of $COMPUTES. Every wait and interval is Masakari's default; the config
# sets only where things are. PIDs go to $BASE/run (masakari-api, masakari-engine): stack-down.sh
# stops them first. Logs: $BASE/log/masakari-*.log.
# Environment: what stack-up.sh had (BASE, PORT_*, COMPUTES) and PORT_MASAKARI (the API's port).
# Prints "MASAKARI_SEGMENT=<uuid>" on success.
#
# Two Debian packaging bugs of masakari 14.0.2-2 on bookworm are worked around without touching
# installed files:
#  E1 python3-taskflow ships no alembic files, so "masakari-manage db sync" stops at migration 6:
#     sync with [taskflow] hidden, then create taskflow's three tables from its SQLAlchemy model.
#  E2 python3-oslo.messaging 14.0.3 rebuilds the context without read_deleted before every
#     notification and masakari's RequestContext refuses None (HTTP 500 on every API write, engine
#     status updates fail): both daemons start through a wrapper that maps None to 'no'.
set -euo pipefail
BASE=${BASE:?BASE must be set}
PORT_MASAKARI=${PORT_MASAKARI:?PORT_MASAKARI must be set}
PY=/usr/bin/python3
M=$BASE/masakari
T_START=$(date +%s%N)
say() { local d=$(( ($(date +%s%N) - T_START) / 100000000 )); echo "[masakari +$((d / 10)).$((d % 10))s] $*"; }
die() { say "ERROR: $*" >&2; exit 1; }
for f in /usr/bin/masakari-manage /etc/masakari/api-paste.ini; do
  [ -e "$f" ] || die "missing $f: install the packages in integration/deps/detection.txt (masakari-api, masakari-engine)"
done
$PY -c 'import masakari.cmd.api, masakari.cmd.engine, taskflow' 2>/dev/null || die "python3-masakari does not import"
for p in masakari-api masakari-engine; do
  [ -f $BASE/run/$p.pid ] && kill -0 "$(cat $BASE/run/$p.pid)" 2>/dev/null && die "$p already runs"
done
mkdir -p $M/etc $M/bin $M/lock
cp /etc/masakari/api-paste.ini $M/etc/

DB=postgresql+psycopg2://masakari:masakari@127.0.0.1:$PORT_PG/masakari
psql -h 127.0.0.1 -p $PORT_PG -U postgres -q -c "CREATE ROLE masakari LOGIN PASSWORD 'masakari'" \
  -c "CREATE DATABASE masakari OWNER masakari" >$BASE/log/masakari-db.log 2>&1 || die "database: $(tail -3 $BASE/log/masakari-db.log)"

cat > $M/etc/masakari.conf <<EOF
[DEFAULT]
transport_url = rabbit://guest:guest@127.0.0.1:$PORT_AMQP/
auth_strategy = keystone
masakari_api_listen = 127.0.0.1
masakari_api_listen_port = $PORT_MASAKARI
masakari_api_workers = 1
host = masakari1
os_privileged_user_name = masakari
os_privileged_user_password = masakari
os_privileged_user_tenant = service
os_privileged_user_auth_url = http://127.0.0.1:$PORT_KEYSTONE/v3
os_user_domain_name = Default
os_project_domain_name = Default
os_region_name = RegionOne
nova_catalog_admin_info = compute:nova:publicURL
# every wait and interval of the host-failure flow is the default of masakari 14.0.2
[wsgi]
api_paste_config = $M/etc/api-paste.ini
[database]
connection = $DB
[taskflow]
connection = $DB
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:$PORT_KEYSTONE/v3
auth_url = http://127.0.0.1:$PORT_KEYSTONE/v3
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = masakari
password = masakari
region_name = RegionOne
[oslo_concurrency]
lock_path = $M/lock
EOF

# E1
sed 's|^\[taskflow\]|[taskflow_off]|' $M/etc/masakari.conf > $M/etc/masakari-sync.conf
masakari-manage --config-file $M/etc/masakari-sync.conf db sync >$BASE/log/masakari-manage.log 2>&1 ||
  die "db sync: $(tail -3 $BASE/log/masakari-manage.log)"
cat > $M/bin/taskflow-tables.py <<'EOF'
import sys, sqlalchemy as sa
from taskflow.persistence.backends.sqlalchemy import tables
md = sa.MetaData(); tables.fetch(md); md.create_all(sa.create_engine(sys.argv[1]))
EOF
$PY $M/bin/taskflow-tables.py "$DB" >>$BASE/log/masakari-manage.log 2>&1 || die "taskflow tables: $(tail -3 $BASE/log/masakari-manage.log)"
say "database synced"

# E2
cat > $M/bin/ctxfix.py <<'EOF'
from masakari import context as _c
_orig_init = _c.RequestContext.__init__
def _init(self, *args, **kwargs):
    if kwargs.get('read_deleted', 'no') is None:
        kwargs['read_deleted'] = 'no'
    _orig_init(self, *args, **kwargs)
_c.RequestContext.__init__ = _init
EOF
for s in api engine; do cat > $M/bin/masakari-$s <<EOF
#!$PY
import sys
import masakari.cmd.$s as m    # eventlet monkey-patching happens in masakari.cmd
sys.path.insert(0, '$M/bin')
import ctxfix                  # noqa: F401
sys.argv[0] = 'masakari-$s'
sys.exit(m.main())
EOF
done
chmod +x $M/bin/masakari-*

# keystone: user, roles, service and endpoints
cat > $M/bin/ks-masakari.py <<EOF
from keystoneauth1.identity import v3
from keystoneauth1 import session
from keystoneclient.v3 import client
ks = client.Client(session=session.Session(auth=v3.Password(
    auth_url='http://127.0.0.1:$PORT_KEYSTONE/v3', username='admin', password='admin', project_name='admin',
    user_domain_name='Default', project_domain_name='Default')))
proj = ks.projects.list(name='service')[0]
user = ks.users.create('masakari', domain='default', password='masakari')
for r in ('admin', 'service'):
    ks.roles.grant(ks.roles.list(name=r)[0], user=user, project=proj)
svc = ks.services.create('masakari', type='instance-ha', description='masakari high availability')
for iface in ('public', 'internal', 'admin'):
    ks.endpoints.create(svc, 'http://127.0.0.1:$PORT_MASAKARI/v1/%(tenant_id)s', interface=iface, region='RegionOne')
EOF
$PY $M/bin/ks-masakari.py >$BASE/log/masakari-keystone.log 2>&1 || die "keystone: $(tail -3 $BASE/log/masakari-keystone.log)"
say "keystone user, service and endpoints"

cd $BASE
for s in api engine; do
  setsid $M/bin/masakari-$s --config-file $M/etc/masakari.conf --log-file $BASE/log/masakari-$s.log \
    >>$BASE/log/masakari-$s.stdout 2>&1 </dev/null & echo $! > $BASE/run/masakari-$s.pid
done
end=$(( $(date +%s) + 120 ))
until curl -sf http://127.0.0.1:$PORT_MASAKARI/ >/dev/null 2>&1; do
  kill -0 "$(cat $BASE/run/masakari-api.pid)" 2>/dev/null || die "masakari-api died: $(tail -5 $BASE/log/masakari-api.stdout $BASE/log/masakari-api.log 2>/dev/null)"
  [ "$(date +%s)" -lt $end ] || die "masakari-api does not answer on $PORT_MASAKARI"
  sleep 0.2
done
say "masakari-api answers on 127.0.0.1:$PORT_MASAKARI"

# the segment and its hosts (names are Nova's compute hosts; masakari checks them against os-services)
TOKEN_JSON=$(curl -si -X POST http://127.0.0.1:$PORT_KEYSTONE/v3/auth/tokens -H 'Content-Type: application/json' -d \
  '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"name":"Default"},"password":"admin"}}},"scope":{"project":{"name":"admin","domain":{"name":"Default"}}}}}')
TOKEN=$(echo "$TOKEN_JSON" | awk -F': ' 'tolower($1)=="x-subject-token"{print $2}' | tr -d '\r')
PROJECT=$(echo "$TOKEN_JSON" | sed -n '/^{/,$p' | $PY -c 'import json,sys; print(json.load(sys.stdin)["token"]["project"]["id"])')
[ -n "$TOKEN" ] && [ -n "$PROJECT" ] || die "no keystone token"
MK() { curl -sf -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' -H 'OpenStack-API-Version: instance-ha 1.1' "$@"; }
SEG=$(MK -X POST http://127.0.0.1:$PORT_MASAKARI/v1/$PROJECT/segments \
  -d '{"segment":{"name":"seg1","recovery_method":"auto","service_type":"COMPUTE"}}' |
  $PY -c 'import json,sys; print(json.load(sys.stdin)["segment"]["uuid"])') || die "segment create: $(tail -5 $BASE/log/masakari-api.log)"
for h in $COMPUTES; do
  MK -X POST http://127.0.0.1:$PORT_MASAKARI/v1/$PROJECT/segments/$SEG/hosts \
    -d "{\"host\":{\"name\":\"$h\",\"type\":\"COMPUTE\",\"control_attributes\":\"SSH\"}}" >/dev/null ||
    die "segment host $h: $(tail -5 $BASE/log/masakari-api.log)"
done
say "segment seg1 ($SEG) with hosts $COMPUTES"
echo "MASAKARI_SEGMENT=$SEG"
