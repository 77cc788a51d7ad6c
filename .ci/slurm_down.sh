#!/usr/bin/env bash
# Stop the cluster started by .ci/slurm_up.sh STATE_DIR: cancel its jobs, then stop the daemons
# it started by the PIDs it recorded (slurmd, slurmctld, then munged if it started one).
#
#   .ci/slurm_down.sh STATE_DIR
#
# Safe to run twice and after a half-finished slurm_up.sh.
set -uo pipefail

STATE=${1:?usage: slurm_down.sh STATE_DIR}
MARK="# written by wtal .ci/slurm_up.sh"
CONF=/etc/slurm/slurm.conf
export PATH="$PATH:/usr/sbin"

stop() {  # stop PIDFILE: SIGTERM, wait up to 10 s, then SIGKILL
  local file=$1 pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  case "$pid" in '' | *[!0-9]*) return 0 ;; esac
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$file"
  return 0
}

# Jobs first: slurmstepd and the job's processes outlive slurmd if it is stopped under them.
if [ -s "$STATE/run/slurmctld.pid" ] && kill -0 "$(cat "$STATE/run/slurmctld.pid")" 2>/dev/null; then
  timeout 10 scancel --full --signal=KILL --state=RUNNING,PENDING --user=root 2>/dev/null
  timeout 10 scancel --user=root 2>/dev/null
  for _ in $(seq 1 50); do
    [ -z "$(timeout 5 squeue -h -t PENDING,RUNNING,COMPLETING -o %i 2>/dev/null)" ] && break
    sleep 0.2
  done
fi

stop "$STATE/run/slurmd.pid"
stop "$STATE/run/slurmctld.pid"
stop "$STATE/run/munged.pid"

if [ -e "$CONF" ] && grep -qF "$MARK for $STATE;" "$CONF"; then
  rm -f "$CONF"
fi
exit 0
