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
alive() { # a zombie (nobody reaped it yet) counts as gone; no forks: this runs in tight loops
  [ -n "$1" ] || return 1
  local l; { read -r l < /proc/$1/stat; } 2>/dev/null || return 1
  l=${l##*) }; case ${l%% *} in Z|X) return 1;; esac
  return 0
}
skip() { case $1 in */epmd.pid|*/postgres.pid|*/watchdog.pid) return 0;; esac; return 1; }
getpid() { P=; { read -r P < "$RUN/$1.pid"; } 2>/dev/null; }   # sets P
stop() { # stop <seconds> <name...>: SIGTERM (after SIGCONT: a frozen process cannot act on it), wait, SIGKILL
  local t=$1 f i left; shift
  for f in "$@"; do getpid $f; alive "$P" && kill -CONT "$P" && kill -TERM "$P" && echo "TERM $f ($P)"; done
  for i in $(seq 1 $((t * 10))); do
    left=0; for f in "$@"; do getpid $f; alive "$P" && left=1; done
    [ $left = 0 ] && return 0; sleep 0.1
  done
  for f in "$@"; do getpid $f; alive "$P" && { echo "KILL $f ($P)"; kill -KILL "$P"; }; done
  return 0
}
# computes first, while RabbitMQ still answers (a nova-compute cut off from its broker retries
# instead of stopping), then their libvirtds, then API / service processes, broker and database
names() { local f; for f in "$RUN"/$1.pid; do [ -f "$f" ] && basename "$f" .pid; done; }
stop 10 $(names 'nova-compute-*')
stop 10 $(names 'masakari-*')
stop 5 $(names 'libvirtd-*')
stop 20 nova-conductor nova-scheduler nova-api glance-api placement keystone neutron-stub rabbit
for f in "$RUN"/*.pid; do skip "$f" && continue; p=$(cat "$f" 2>/dev/null); alive "$p" && { echo "KILL $(basename $f .pid) ($p)"; kill -KILL "$p"; }; done
p=$(cat "$RUN/epmd.pid" 2>/dev/null) && alive "$p" && kill -TERM "$p" && echo "TERM epmd ($p)"
if [ -f "$BASE/pg/postmaster.pid" ]; then
  runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$BASE/pg" -m fast -w stop
fi
for f in "$RUN"/*.pid; do case $f in */watchdog.pid) ;; *) rm -f "$f";; esac; done
echo "stopped"
