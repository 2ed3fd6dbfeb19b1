#!/bin/bash
# stack-up.sh: a real OpenStack control plane from Debian's packages for fenced's integration tests:
#   PostgreSQL (private cluster) + RabbitMQ + keystone + placement + glance + nova-api
#   + nova-conductor + nova-scheduler + one nova-compute per host of $COMPUTES (fake driver)
#   + optionally a libvirtd (test driver, unix socket only) per compute, started and stopped with it
#   + a small neutron stand-in (Nova asks neutron for ports even with "networks": "none").
# Everything binds to 127.0.0.1 on the ports given in the environment and lives under $BASE;
# every PID is in $BASE/run. Stop with stack-down.sh (same BASE). $BASE/bin/compute-ctl starts,
# stops, kills, freezes and thaws a compute (nova-compute and its libvirtd) by hand.
# Environment: BASE (required), PORT_PG PORT_AMQP PORT_DIST PORT_EPMD PORT_KEYSTONE PORT_PLACEMENT
# PORT_GLANCE PORT_NEUTRON PORT_NOVA (defaults are the usual OpenStack ports),
# COMPUTES (default "cn1 cn2"), REPORT_INTERVAL / SERVICE_DOWN_TIME (seconds; default 5 / 20),
# LIBVIRTD (1: a libvirtd per compute, socket $BASE/lv/HOST/sock/libvirt-sock; default 0).
set -euo pipefail
BASE=${BASE:?BASE must be set}
PORT_PG=${PORT_PG:-5433} PORT_AMQP=${PORT_AMQP:-5672} PORT_DIST=${PORT_DIST:-25672} PORT_EPMD=${PORT_EPMD:-4369}
PORT_KEYSTONE=${PORT_KEYSTONE:-5000} PORT_PLACEMENT=${PORT_PLACEMENT:-8778} PORT_GLANCE=${PORT_GLANCE:-9292}
PORT_NEUTRON=${PORT_NEUTRON:-9696} PORT_NOVA=${PORT_NOVA:-8774}
export ERL_EPMD_PORT=$PORT_EPMD
COMPUTES=${COMPUTES:-cn1 cn2} REPORT_INTERVAL=${REPORT_INTERVAL:-5} SERVICE_DOWN_TIME=${SERVICE_DOWN_TIME:-20} LIBVIRTD=${LIBVIRTD:-0}
NCOMP=$(echo $COMPUTES | wc -w)
for h in $COMPUTES; do [[ $h =~ ^[a-z][a-z0-9-]*$ ]] || { echo "bad compute name $h"; exit 2; }; done
FAKE_DRIVER=${FAKE_DRIVER:-fenced_fake.MediumLMFakeDriver}   # or fake.FakeLiveMigrateDriver / fake.MediumFakeDriver
case "$BASE" in /*/*) ;; *) echo "BASE must be an absolute path at least two levels deep (it is rm -rf'd)"; exit 2;; esac
PY=/usr/bin/python3          # NOT "python3": pyenv's shim is first on PATH here and lacks Debian's modules
export DEBIAN_FRONTEND=noninteractive
T_START=$(date +%s%N)
secs() { local d=$(( ($(date +%s%N) - $1) / 100000000 )); echo "$((d / 10)).$((d % 10))"; }  # tenths of a second since $1
el() { secs $T_START; }
say() { echo "[+$(el)s] $*"; }
die() { echo "[+$(el)s] ERROR: $*" >&2; exit 1; }
wait_for() { # wait_for <what> <seconds> <command...>
  local what=$1 t=$2; shift 2
  local end=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -lt $end ] || die "timeout waiting for $what"; sleep 0.2; done
}
tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

###############################################################################
# 0. packages: installed by integration/install-deps.sh from integration/deps/openstack.txt
for f in /usr/bin/uwsgi /usr/lib/rabbitmq/bin/rabbitmq-server /usr/lib/postgresql/15/bin/initdb /usr/bin/keystone-wsgi-public /usr/bin/placement-api; do
  [ -e "$f" ] || die "missing $f: install the packages in integration/deps/openstack.txt"
done
$PY -c 'import nova, glance, keystone, placement' 2>/dev/null || die "missing python3-nova/-glance/-keystone/-placement"
T_PKG=$(date +%s%N)

###############################################################################
# 1. layout
for p in $BASE/run/*.pid; do [ -f "$p" ] && kill -0 "$(cat $p)" 2>/dev/null && die "stack in $BASE is running; run stack-down.sh first"; done
rm -rf "$BASE"; mkdir -p $BASE/{bin,lib,run,log,rabbit,etc/keystone,etc/placement,etc/glance,etc/nova,glance/images,glance/staging,glance/tasks}
for h in $COMPUTES; do mkdir -p $BASE/nova/$h; done
if [ "$LIBVIRTD" = 1 ]; then
  [ -x /usr/sbin/libvirtd ] || die "missing /usr/sbin/libvirtd: install the packages in integration/deps/libvirt.txt"
  [ ${#BASE} -lt 80 ] || die "BASE too long for a unix socket path under it: $BASE"
  for h in $COMPUTES; do
    # an empty driver directory: only the test driver built into libvirt.so, so several daemons
    # share the machine without fighting over the /run/libvirt/<driver> locks of the others
    mkdir -p $BASE/lv/$h/sock $BASE/lv/$h/drivers
    cat > $BASE/lv/$h/libvirtd.conf <<EOF
unix_sock_dir = "$BASE/lv/$h/sock"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
auth_unix_rw = "none"
auth_unix_ro = "none"
listen_tls = 0
listen_tcp = 0
log_level = 3
log_outputs = "3:file:$BASE/log/libvirtd-$h.log"
EOF
  done
fi
cd "$BASE"
for port in $PORT_PG $PORT_AMQP $PORT_EPMD $PORT_DIST $PORT_KEYSTONE $PORT_PLACEMENT $PORT_GLANCE $PORT_NEUTRON $PORT_NOVA; do tcp_open $port && die "port $port already in use"; done

###############################################################################
# 2. PostgreSQL (preinstalled on the image) and RabbitMQ, in parallel
say "starting postgres + rabbitmq"
install -d -o postgres -g postgres $BASE/pg $BASE/run/pgsock
( runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D $BASE/pg -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >$BASE/log/initdb.log 2>&1
  cat >> $BASE/pg/postgresql.conf <<EOF
listen_addresses = '127.0.0.1'
port = $PORT_PG
unix_socket_directories = '$BASE/run/pgsock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
EOF
  runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D $BASE/pg -l $BASE/pg/postgres.log -w start >/dev/null
  head -1 $BASE/pg/postmaster.pid > $BASE/run/postgres.pid
  PSQL="psql -h 127.0.0.1 -p $PORT_PG -U postgres -q"
  $PSQL -c "CREATE ROLE os LOGIN PASSWORD 'os'"
  for d in keystone placement glance nova_api nova nova_cell0; do $PSQL -c "CREATE DATABASE $d OWNER os"; done
) &
PG_JOB=$!

echo '[].' > rabbit/enabled_plugins
cat > rabbit/rabbitmq.conf <<EOF
listeners.tcp.1 = 127.0.0.1:$PORT_AMQP
loopback_users.guest = true
EOF
setsid epmd -address 127.0.0.1 -port $PORT_EPMD >$BASE/log/epmd.log 2>&1 & echo $! > run/epmd.pid
( export HOME=$BASE/rabbit RABBITMQ_HOME=/usr/lib/rabbitmq RABBITMQ_CONF_ENV_FILE=/dev/null \
    RABBITMQ_NODENAME=rabbit@localhost RABBITMQ_MNESIA_BASE=$BASE/rabbit/mnesia RABBITMQ_LOG_BASE=$BASE/log/rabbit \
    RABBITMQ_ENABLED_PLUGINS_FILE=$BASE/rabbit/enabled_plugins RABBITMQ_CONFIG_FILE=$BASE/rabbit/rabbitmq \
    RABBITMQ_DIST_PORT=$PORT_DIST ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_PID_FILE=$BASE/run/rabbit.pid \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
  exec setsid /usr/lib/rabbitmq/bin/rabbitmq-server >$BASE/log/rabbit-stdout.log 2>&1 ) &
RABBIT_JOB=$!

###############################################################################
# 3. config files
AUTH="auth_url = http://127.0.0.1:$PORT_KEYSTONE/v3
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
password = service"
DB=postgresql+psycopg2://os:os@127.0.0.1:$PORT_PG

cat > etc/keystone/keystone.conf <<EOF
[DEFAULT]
log_file = $BASE/log/keystone.log
[database]
connection = $DB/keystone
[token]
provider = fernet
[fernet_tokens]
key_repository = $BASE/etc/keystone/fernet-keys
[fernet_receipts]
# default /etc/keystone/fernet-keys; fernet_setup writes it too
key_repository = $BASE/etc/keystone/fernet-keys
[credential]
key_repository = $BASE/etc/keystone/credential-keys
[identity]
password_hash_rounds = 4
[cache]
enabled = true
backend = dogpile.cache.memory
EOF

cat > etc/placement/placement.conf <<EOF
[DEFAULT]
log_file = $BASE/log/placement.log
[placement_database]
connection = $DB/placement
[api]
auth_strategy = keystone
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:$PORT_KEYSTONE/v3
$AUTH
username = placement
EOF

cat > etc/glance/glance-api.conf <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $PORT_GLANCE
workers = 1
log_file = $BASE/log/glance-api.log
enabled_backends = file:file
[database]
connection = $DB/glance
[paste_deploy]
flavor = keystone
config_file = $BASE/etc/glance/glance-api-paste.ini
[glance_store]
default_backend = file
[file]
filesystem_store_datadir = $BASE/glance/images/
[os_glance_staging_store]
filesystem_store_datadir = $BASE/glance/staging/
[os_glance_tasks_store]
filesystem_store_datadir = $BASE/glance/tasks/
[oslo_concurrency]
lock_path = $BASE/glance/locks
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:$PORT_KEYSTONE/v3
$AUTH
username = glance
EOF
cat > etc/glance/glance-api-paste.ini <<'EOF'
[pipeline:glance-api-keystone]
pipeline = healthcheck http_proxy_to_wsgi versionnegotiation authtoken context rootapp
[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app
[app:apiversions]
paste.app_factory = glance.api.versions:create_resource
[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory
[filter:healthcheck]
paste.filter_factory = oslo_middleware:Healthcheck.factory
[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory
[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory
[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
delay_auth_decision = true
[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware:HTTPProxyToWSGI.factory
EOF

# nova.conf: shared by every nova process; nova-db.conf: only api/conductor/scheduler/manage
# (a compute that can see [api_database] logs "No DB access allowed in nova-compute")
cat > etc/nova/nova.conf <<EOF
[DEFAULT]
transport_url = rabbit://guest:guest@127.0.0.1:$PORT_AMQP/
my_ip = 127.0.0.1
state_path = $BASE/nova
compute_driver = $FAKE_DRIVER
# heartbeat every $REPORT_INTERVAL s, 'down' after $SERVICE_DOWN_TIME s (Nova defaults: 10 / 60)
report_interval = $REPORT_INTERVAL
service_down_time = $SERVICE_DOWN_TIME
[api]
auth_strategy = keystone
[conductor]
workers = 1
[scheduler]
workers = 1
[oslo_concurrency]
lock_path = $BASE/nova/locks
[vnc]
enabled = false
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:$PORT_KEYSTONE/v3
$AUTH
username = nova
[placement]
region_name = RegionOne
$AUTH
username = placement
[glance]
region_name = RegionOne
[neutron]
region_name = RegionOne
$AUTH
username = neutron
EOF
cat > etc/nova/nova-db.conf <<EOF
[api_database]
connection = $DB/nova_api
[database]
connection = $DB/nova
EOF
for h in $COMPUTES; do cat > etc/nova/nova-$h.conf <<EOF
[DEFAULT]
host = $h
state_path = $BASE/nova/$h
instances_path = $BASE/nova/$h/instances
[oslo_concurrency]
lock_path = $BASE/nova/$h/locks
EOF
done
cat > etc/nova/api-paste.ini <<'EOF'
[composite:osapi_compute]
use = call:nova.api.openstack.urlmap:urlmap_factory
/: oscomputeversions
/v2.1: oscomputeversion_v2
/v2.1/+: openstack_compute_api_v21
[composite:openstack_compute_api_v21]
use = call:nova.api.auth:pipeline_factory_v21
keystone = healthcheck http_proxy_to_wsgi compute_req_id faultwrap request_log sizelimit authtoken keystonecontext osapi_compute_app_v21
[filter:healthcheck]
paste.filter_factory = oslo_middleware:Healthcheck.factory
[filter:request_log]
paste.filter_factory = nova.api.openstack.requestlog:RequestLog.factory
[filter:compute_req_id]
paste.filter_factory = nova.api.compute_req_id:ComputeReqIdMiddleware.factory
[filter:faultwrap]
paste.filter_factory = nova.api.openstack:FaultWrapper.factory
[filter:sizelimit]
paste.filter_factory = oslo_middleware:RequestBodySizeLimiter.factory
[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware.http_proxy_to_wsgi:HTTPProxyToWSGI.factory
[app:osapi_compute_app_v21]
paste.app_factory = nova.api.openstack.compute:APIRouterV21.factory
[pipeline:oscomputeversions]
pipeline = faultwrap request_log http_proxy_to_wsgi oscomputeversionapp
[pipeline:oscomputeversion_v2]
pipeline = compute_req_id faultwrap request_log http_proxy_to_wsgi oscomputeversionapp_v2
[app:oscomputeversionapp]
paste.app_factory = nova.api.openstack.compute.versions:Versions.factory
[app:oscomputeversionapp_v2]
paste.app_factory = nova.api.openstack.compute.versions:VersionsV2.factory
[filter:keystonecontext]
paste.filter_factory = nova.api.auth:NovaKeystoneContext.factory
[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
EOF

###############################################################################
# 4. entry points: Debian ships nova-compute/-conductor/-scheduler/glance-api binaries only in the
#    service packages (whose postinsts want debconf/dbconfig/systemd), so call the modules directly.
for pair in glance-api:glance.cmd.api glance-manage:glance.cmd.manage nova-conductor:nova.cmd.conductor \
            nova-scheduler:nova.cmd.scheduler nova-manage:nova.cmd.manage; do
  printf '#!%s\nimport sys\nfrom %s import main\nsys.argv[0] = "%s"\nsys.exit(main())\n' $PY "${pair#*:}" "${pair%%:*}" > bin/${pair%%:*}
done
cat > bin/nova-compute <<EOF
#!$PY
import sys
import nova.cmd.compute          # eventlet monkey-patching happens here
import fenced_fake                 # registers nova.virt.fenced_fake (nova only loads drivers from nova.virt.*)
sys.argv[0] = "nova-compute"
sys.exit(nova.cmd.compute.main())
EOF
cat > lib/fenced_fake.py <<'EOF'
"""MediumFakeDriver (10 vCPU / 8192 MB / 1028 GB per host) that, like the in-tree
FakeLiveMigrateDriver, forgets a guest on the source host after a live migration.
Plain FakeDriver keeps it in memory, so a later evacuation back onto that host fails
with InstanceExists."""
import sys
from nova.virt import fake


class MediumLMFakeDriver(fake.MediumFakeDriver):
    def post_live_migration(self, context, instance, block_device_info,
                            migrate_data=None):
        self.destroy(context, instance, network_info=None,
                     block_device_info=block_device_info)


sys.modules['nova.virt.fenced_fake'] = sys.modules[__name__]
EOF
cat > bin/nova-api-wsgi <<EOF
#!$PY
# what Debian's /usr/bin/nova-api-wsgi (nova-common) does; the module itself has no "application"
from nova.api.openstack.compute.wsgi import init_application
application = init_application()
EOF
cat > bin/neutron-stub <<EOF
#!$PY
# Stand-in for neutron-server: Nova lists ports (and extensions) for every server even when it was
# booted with "networks": "none"; no ports exist, so every collection is empty.
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse
KEYS = {'extensions': 'extensions', 'ports': 'ports', 'networks': 'networks', 'subnets': 'subnets',
        'security-groups': 'security_groups', 'floatingips': 'floatingips'}
class H(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        p = urlparse(self.path).path.rstrip('/')
        if p == '':
            return self._send(200, {'versions': [{'id': 'v2.0', 'status': 'CURRENT', 'links': []}]})
        key = KEYS.get(p.split('/')[-1])
        if key:
            return self._send(200, {key: []})
        self._send(404, {'NeutronError': {'type': 'NotFound', 'message': 'stub: ' + p, 'detail': ''}})
    def do_POST(self):
        self._send(404, {'NeutronError': {'type': 'NotFound', 'message': 'stub', 'detail': ''}})
    do_PUT = do_DELETE = do_POST
    def log_message(self, fmt, *args):
        sys.stderr.write('%s %s\n' % (self.command, self.path)); sys.stderr.flush()
ThreadingHTTPServer(('127.0.0.1', $PORT_NEUTRON), H).serve_forever()
EOF
chmod +x bin/*

# start helpers
bg() { # bg <name> <cmd...>: start detached, record PID
  local n=$1; shift
  setsid "$@" >>$BASE/log/$n.stdout 2>&1 < /dev/null & echo $! > $BASE/run/$n.pid
}
# uwsgi http-socket closes every connection without saying so; clients that pool connections
# (keystoneauth under eventlet) then fail with RemoteDisconnected -> force "Connection: close".
uw() { # uw <name> <port> <wsgi-file> <processes> <threads> [--env K=V ...]
  local n=$1 port=$2 file=$3 procs=$4 threads=$5; shift 5
  setsid uwsgi --plugins python3 --http-socket 127.0.0.1:$port --wsgi-file $file \
    --master --processes $procs --threads $threads --enable-threads --lazy-apps --die-on-term --no-orphans \
    --buffer-size 65535 --add-header 'Connection: close' --pidfile $BASE/run/$n.pid --logto $BASE/log/$n-uwsgi.log \
    "$@" </dev/null >/dev/null 2>&1 &
}
cat > bin/compute-ctl <<EOF
#!/bin/bash
# compute-ctl ACTION HOST: what an integration test (or the BMC simulator's power hook) calls to act
# on a hypervisor: nova-compute of HOST and, when the stack runs them, its libvirtd.
#   start    start what is not running (libvirtd first, once it answers nova-compute)
#   stop     SIGTERM nova-compute (SIGKILL after 10 s), then libvirtd
#   kill     SIGKILL both (a power loss)
#   freeze   SIGSTOP both (a host that stops executing)      thaw   SIGCONT both
#   power    HOST On|Off: On = start, Off = kill (for fenced lab bmc --power-hook)
#   status   "nova-compute PID STATE" and "libvirtd PID STATE" (STATE: running, stopped, dead)
set -e
BASE=$BASE LIBVIRTD=$LIBVIRTD
EOF
cat >> bin/compute-ctl <<'EOF'
usage() { echo "usage: $0 start|stop|kill|freeze|thaw|status HOST | power HOST On|Off" >&2; exit 2; }
[ $# -ge 2 ] || usage
act=$1 h=$2
[ -f $BASE/etc/nova/nova-$h.conf ] || { echo "no compute $h in $BASE" >&2; exit 2; }
NPID=$BASE/run/nova-compute-$h.pid LPID=$BASE/run/libvirtd-$h.pid
pid() { cat "$1" 2>/dev/null || true; }
pstate() { # sets S to the process state letter of PID $1 ("" when there is no such process)
  S=; [ -n "$1" ] && { read -r S < /proc/$1/stat; } 2>/dev/null; S=${S##*) }; S=${S%% *}
}
state() { # running | stopped | dead (a zombie is dead)
  pstate "$1"; case $S in Z|X|"") echo dead;; T|t) echo stopped;; *) echo running;; esac
}
alive() { pstate "$1"; case $S in Z|X|"") return 1;; esac; return 0; }
sig() { local f p; for f in "$@"; do p=$(pid $f); if alive "$p"; then kill -$SIG $p; fi; done; return 0; }
gone() { local t=$1 i f left; shift; for i in $(seq 1 $((t * 10))); do
  left=0; for f in "$@"; do if alive "$(pid $f)"; then left=1; fi; done; [ $left = 0 ] && return 0; sleep 0.1; done; return 1; }
lv_uri() { echo "test+unix:///default?socket=$BASE/lv/$h/sock/libvirt-sock"; }
start_libvirtd() {
  [ "$LIBVIRTD" = 1 ] || return 0
  alive "$(pid $LPID)" && return 0
  LIBVIRT_DRIVER_DIR=$BASE/lv/$h/drivers setsid /usr/sbin/libvirtd -f $BASE/lv/$h/libvirtd.conf -p $BASE/lv/$h/libvirtd.pid \
    >>$BASE/log/libvirtd-$h.stdout 2>&1 </dev/null & echo $! > $LPID
  for i in $(seq 1 100); do
    virsh -c "$(lv_uri)" version >/dev/null 2>&1 && return 0
    alive "$(pid $LPID)" || { echo "libvirtd of $h died: $(tail -3 $BASE/log/libvirtd-$h.stdout)" >&2; exit 1; }
    sleep 0.1
  done
  echo "libvirtd of $h does not answer at $(lv_uri)" >&2; exit 1
}
start_nova() {
  alive "$(pid $NPID)" && return 0
  cd $BASE; PYTHONPATH=$BASE/lib setsid bin/nova-compute --config-file etc/nova/nova.conf --config-file etc/nova/nova-$h.conf \
    --log-file log/nova-compute-$h.log >>log/nova-compute-$h.stdout 2>&1 </dev/null & echo $! > $NPID
}
case $act in
  start)  start_libvirtd; start_nova ;;
  stop)   SIG=CONT sig $NPID $LPID; SIG=TERM sig $NPID; gone 10 $NPID || SIG=KILL sig $NPID
          SIG=TERM sig $LPID; gone 10 $LPID || SIG=KILL sig $LPID; gone 5 $NPID $LPID ;;
  kill)   SIG=KILL sig $NPID $LPID; gone 10 $NPID $LPID ;;
  freeze) SIG=STOP sig $NPID $LPID ;;
  thaw)   SIG=CONT sig $NPID $LPID ;;
  power)  case ${3:-} in
            On)  start_libvirtd; start_nova ;;
            Off) SIG=KILL sig $NPID $LPID; gone 10 $NPID $LPID ;;
            *)   usage ;;
          esac ;;
  status) echo "nova-compute $(pid $NPID) $(state "$(pid $NPID)")"
          if [ "$LIBVIRTD" = 1 ]; then echo "libvirtd $(pid $LPID) $(state "$(pid $LPID)")"; fi ;;
  *) usage ;;
esac
EOF
chmod +x bin/compute-ctl

###############################################################################
# 5. schema (all four services in parallel once postgres is up)
wait $PG_JOB || die "postgres setup failed (see $BASE/log/initdb.log, $BASE/pg/postgres.log)"
say "postgres up; syncing schemas"
KM="keystone-manage --config-file etc/keystone/keystone.conf"
( $KM db_sync && $KM fernet_setup --keystone-user root --keystone-group root &&
  $KM credential_setup --keystone-user root --keystone-group root &&
  $KM bootstrap --bootstrap-password admin --bootstrap-region-id RegionOne \
    --bootstrap-admin-url http://127.0.0.1:$PORT_KEYSTONE/v3/ --bootstrap-internal-url http://127.0.0.1:$PORT_KEYSTONE/v3/ \
    --bootstrap-public-url http://127.0.0.1:$PORT_KEYSTONE/v3/ ) >log/keystone-manage.log 2>&1 & J1=$!
placement-manage --config-file etc/placement/placement.conf db sync >log/placement-manage.log 2>&1 & J2=$!
bin/glance-manage --config-file etc/glance/glance-api.conf db_sync >log/glance-manage.log 2>&1 & J3=$!
NM="bin/nova-manage --config-file etc/nova/nova.conf --config-file etc/nova/nova-db.conf"
( $NM api_db sync && $NM cell_v2 map_cell0 --database_connection $DB/nova_cell0 &&
  $NM cell_v2 create_cell --name cell1 && $NM db sync ) >log/nova-manage.log 2>&1 & J4=$!
wait $J1 || die "keystone-manage failed: $(tail -5 log/keystone-manage.log)"
say "keystone schema+bootstrap done"
uw keystone $PORT_KEYSTONE /usr/bin/keystone-wsgi-public 1 4 --env OS_KEYSTONE_CONFIG_FILES=$BASE/etc/keystone/keystone.conf
wait $J2 || die "placement db sync failed"
wait $J3 || die "glance db_sync failed"
wait $J4 || die "nova-manage failed: $(tail -5 log/nova-manage.log)"
say "all schemas synced"

###############################################################################
# 6. services
rabbit_ready() { tcp_open $PORT_AMQP && return 0; kill -0 $RABBIT_JOB 2>/dev/null || exit 1; return 1; }  # rabbit died: stop now (see log/rabbit-stdout.log)
wait_for rabbitmq 180 rabbit_ready
say "rabbitmq up"
uw placement $PORT_PLACEMENT /usr/bin/placement-api 1 4 --env OS_PLACEMENT_CONFIG_DIR=$BASE/etc/placement
# paste config must be the FIRST file in OS_NOVA_CONFIG_FILES (nova passes conf_files[0] to paste)
uw nova-api $PORT_NOVA $BASE/bin/nova-api-wsgi 2 1 --env OS_NOVA_CONFIG_DIR=$BASE/etc/nova \
   --env 'OS_NOVA_CONFIG_FILES=api-paste.ini;nova.conf;nova-db.conf'
bg glance-api bin/glance-api --config-file etc/glance/glance-api.conf
bg neutron-stub bin/neutron-stub

# keystone catalog: service users + endpoints (one python process instead of ~25 CLI calls)
wait_for keystone 180 curl -sf http://127.0.0.1:$PORT_KEYSTONE/v3
say "keystone up"
cat > bin/ks-setup.py <<EOF
from keystoneauth1.identity import v3
from keystoneauth1 import session
from keystoneclient.v3 import client
ks = client.Client(session=session.Session(auth=v3.Password(
    auth_url='http://127.0.0.1:$PORT_KEYSTONE/v3', username='admin', password='admin', project_name='admin',
    user_domain_name='Default', project_domain_name='Default')))
proj = ks.projects.create('service', 'default')
admin = ks.roles.list(name='admin')[0]
service = ks.roles.create('service')
for u in ('nova', 'placement', 'glance', 'neutron'):
    user = ks.users.create(u, domain='default', password='service')
    ks.roles.grant(admin, user=user, project=proj)
    ks.roles.grant(service, user=user, project=proj)
for name, typ, url in (('nova', 'compute', 'http://127.0.0.1:$PORT_NOVA/v2.1'),
                       ('placement', 'placement', 'http://127.0.0.1:$PORT_PLACEMENT'),
                       ('glance', 'image', 'http://127.0.0.1:$PORT_GLANCE'),
                       ('neutron', 'network', 'http://127.0.0.1:$PORT_NEUTRON')):
    svc = ks.services.create(name, type=typ)
    for iface in ('public', 'internal', 'admin'):
        ks.endpoints.create(svc, url, interface=iface, region='RegionOne')
EOF
$PY bin/ks-setup.py >log/ks-setup.log 2>&1 || die "keystone catalog setup failed: $(tail -3 log/ks-setup.log)"
say "keystone catalog ready"
# conductor/scheduler/computes need the placement endpoint in the catalog at start-up
# (nova-scheduler exits with EndpointNotFound otherwise; computes retry only every 60 s)
bg nova-conductor bin/nova-conductor --config-file etc/nova/nova.conf --config-file etc/nova/nova-db.conf --log-file log/nova-conductor.log
bg nova-scheduler bin/nova-scheduler --config-file etc/nova/nova.conf --config-file etc/nova/nova-db.conf --log-file log/nova-scheduler.log
for h in $COMPUTES; do bin/compute-ctl start $h; done

cat > openrc <<EOF
export OS_AUTH_URL=http://127.0.0.1:$PORT_KEYSTONE/v3 OS_USERNAME=admin OS_PASSWORD=admin OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_IDENTITY_API_VERSION=3 OS_REGION_NAME=RegionOne
export FENCED_CTL=$BASE/bin/compute-ctl
EOF
TOKEN=$(curl -si -X POST http://127.0.0.1:$PORT_KEYSTONE/v3/auth/tokens -H 'Content-Type: application/json' -d \
  '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"name":"Default"},"password":"admin"}}},"scope":{"project":{"name":"admin","domain":{"name":"Default"}}}}}' \
  | awk -F': ' 'tolower($1)=="x-subject-token"{print $2}' | tr -d '\r')
[ -n "$TOKEN" ] || die "no keystone token"

# image (1 MiB of zeros; the fake driver never reads it, but nova-api validates imageRef against glance)
wait_for glance-api 180 curl -sf http://127.0.0.1:$PORT_GLANCE/healthcheck
IMG=$(curl -sf -X POST http://127.0.0.1:$PORT_GLANCE/v2/images -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' \
  -d '{"name":"tiny","disk_format":"raw","container_format":"bare","visibility":"public"}' | $PY -c 'import json,sys; print(json.load(sys.stdin)["id"])')
head -c 1048576 /dev/zero | curl -sf -X PUT http://127.0.0.1:$PORT_GLANCE/v2/images/$IMG/file -H "X-Auth-Token: $TOKEN" \
  -H 'Content-Type: application/octet-stream' --data-binary @- || die "image upload failed"
echo "export FENCED_IMAGE_ID=$IMG" >> openrc
say "glance image $IMG"

# nova-api up, computes registered, hosts mapped into cell1, flavor
wait_for nova-api 240 curl -sf http://127.0.0.1:$PORT_NOVA/
say "nova-api up"
NOVA() { curl -sf -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' -H 'OpenStack-API-Version: compute 2.93' "$@"; }
services_up() { [ "$(NOVA "http://127.0.0.1:$PORT_NOVA/v2.1/os-services" | grep -o '"state": "up"' | wc -l)" = $((NCOMP + 2)) ]; }
wait_for "conductor, scheduler, $NCOMP computes up" 300 services_up
rps_n() { [ "$(curl -sf -H "X-Auth-Token: $TOKEN" http://127.0.0.1:$PORT_PLACEMENT/resource_providers | grep -o '"generation"' | wc -l)" = $NCOMP ]; }
wait_for "$NCOMP resource providers in placement" 180 rps_n
$NM cell_v2 discover_hosts >>log/nova-manage.log 2>&1
hypervisors_n() { [ "$(NOVA http://127.0.0.1:$PORT_NOVA/v2.1/os-hypervisors | grep -o '"state": "up"' | wc -l)" = $NCOMP ]; }
wait_for "$NCOMP hypervisors" 180 hypervisors_n
NOVA -X POST http://127.0.0.1:$PORT_NOVA/v2.1/flavors -d '{"flavor":{"name":"m1.tiny","id":"1","vcpus":1,"ram":512,"disk":1}}' >/dev/null
say "READY: nova-compute $COMPUTES up$([ "$LIBVIRTD" = 1 ] && echo ' (each with a libvirtd)'), hypervisors mapped, flavor m1.tiny, image tiny"

echo "bring-up after the package step: $(secs $T_PKG)s; total incl. package step: $(secs $T_START)s"
echo "source $BASE/openrc   # OS_* for the openstack CLI / gophercloud, FENCED_IMAGE_ID, FENCED_CTL"
