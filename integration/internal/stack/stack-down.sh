#!/bin/bash
# stack-down.sh: stop everything stack-up.sh started, by the PIDs it recorded under $BASE/run.
#   stack-down.sh                 stop now
#   stack-down.sh --after PID     wait until process PID is gone, then stop (a watchdog the test
#                                 harness starts, so a killed or timed-out test leaves no daemons)
BASE=${BASE:?BASE must be set}
if [ "${1:-}" = --after ]; then
  while kill -0 "$2" 2>/dev/null; do sleep 1; done
fi
RUN=$BASE/run
[ -d "$RUN" ] || { echo "nothing to stop in $BASE"; exit 0; }
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
# API / service processes first, broker and database last
for f in nova-compute-cn1 nova-compute-cn2 nova-conductor nova-scheduler nova-api glance-api placement keystone neutron-stub rabbit; do
  p=$(cat "$RUN/$f.pid" 2>/dev/null) || continue
  alive "$p" && kill -TERM "$p" && echo "TERM $f ($p)"
done
for i in $(seq 1 100); do
  left=0
  for f in "$RUN"/*.pid; do p=$(cat "$f" 2>/dev/null); case $f in */epmd.pid|*/postgres.pid|*/watchdog.pid) continue;; esac; alive "$p" && left=1; done
  [ $left = 0 ] && break; sleep 0.2
done
for f in "$RUN"/*.pid; do case $f in */epmd.pid|*/postgres.pid|*/watchdog.pid) continue;; esac; p=$(cat "$f" 2>/dev/null); alive "$p" && { echo "KILL $(basename $f .pid) ($p)"; kill -KILL "$p"; }; done
p=$(cat "$RUN/epmd.pid" 2>/dev/null) && alive "$p" && kill -TERM "$p" && echo "TERM epmd ($p)"
if [ -f "$BASE/pg/postmaster.pid" ]; then
  runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$BASE/pg" -m fast -w stop
fi
for f in "$RUN"/*.pid; do case $f in */watchdog.pid) ;; *) rm -f "$f";; esac; done
echo "stopped"
