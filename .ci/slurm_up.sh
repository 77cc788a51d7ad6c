#!/usr/bin/env bash
# Start a throwaway single-node SLURM cluster (munged, slurmctld, slurmd) on 127.0.0.1.
#
#   .ci/slurm_up.sh STATE_DIR
#
# For tests/pipeline/test_slurm.py: Debian 12, as root, no systemd, no cgroups, no accounting.
# Every daemon this script starts writes its PID to STATE_DIR/run/<name>.pid, and only those
# are stopped by .ci/slurm_down.sh STATE_DIR. State, spool and logs live under STATE_DIR.
#
# Exit status: 0 the cluster is up and has run a job; 77 it cannot run on this machine (not
# root, no apt, packages not installable, a SLURM cluster already configured or running here),
# the reason on the last line of stderr; anything else: a real failure (see the logs).
#
# Facts this depends on (each one cost a failed run to find):
# - slurm.conf must be /etc/slurm/slurm.conf: the Snakemake jobstep plugin strips SLURM_*
#   variables (SLURM_CONF too) before its inner srun, which then finds no configuration.
# - The hostname is not "localhost": the node is declared NodeName=localhost
#   NodeAddr=127.0.0.1 and slurmd is started with -N localhost.
# - No accounting: sacct fails, so the workflow profile must query job status with squeue.
# - proctrack/linuxproc and task/affinity need no cgroups.
set -euo pipefail

STATE=${1:?usage: slurm_up.sh STATE_DIR}
MARK="# written by wtal .ci/slurm_up.sh"
CONF=/etc/slurm/slurm.conf
export DEBIAN_FRONTEND=noninteractive

skip() { echo "SKIP: $*" >&2; exit 77; }

wait_for() {  # wait_for SECONDS COMMAND...: poll every 0.2 s until COMMAND succeeds
  local seconds=$1; shift
  local i
  for ((i = 0; i < seconds * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "timed out after ${seconds}s waiting for: $*" >&2
  return 1
}

[ "$(id -u)" = 0 ] || skip "not root (a local SLURM cluster needs root to start its daemons)"

mkdir -p "$STATE"
APTLOG="$STATE/apt.log"

# 1. packages --------------------------------------------------------------------------------
need_install=0
for bin in munged slurmctld slurmd sbatch squeue scontrol srun; do
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need_install=1
done
if [ "$need_install" = 1 ]; then
  command -v apt-get >/dev/null 2>&1 || skip "no apt-get to install munge and slurm"
  timeout -k 10 180 apt-get update -qq >"$APTLOG" 2>&1 \
    || skip "apt-get update failed (no package mirror reachable?): $(tail -n 1 "$APTLOG")"
  timeout -k 10 600 apt-get install -y -qq --no-install-recommends \
      munge slurmctld slurmd slurm-client >>"$APTLOG" 2>&1 \
    || skip "cannot install munge slurmctld slurmd slurm-client: $(tail -n 1 "$APTLOG")"
fi
export PATH="$PATH:/usr/sbin"

# 2. never touch somebody else's cluster; stop our own left over by a killed test run ------------
if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  skip "$CONF exists and was not written by this script (a real cluster is configured here)"
fi
if [ -e "$CONF" ]; then
  old=$(head -n 1 "$CONF" | sed -n 's/.* for \(.*\); removed by .*/\1/p')
  if [ -n "$old" ] && [ -d "$old/run" ]; then
    echo "stopping the cluster a killed run left in $old" >&2
    bash "$(dirname "$0")/slurm_down.sh" "$old"
  fi
fi
if timeout 5 scontrol ping 2>/dev/null | grep -q "is UP"; then
  skip "a slurmctld already answers on this machine"
fi

rm -rf "$STATE"/{ctld,spool,run,log}
mkdir -p "$STATE"/{ctld,spool,run,log}

# 3. munge: reuse a working munged, else start one (and record its PID) -------------------------
if ! timeout 5 sh -c 'munge -n | unmunge' >/dev/null 2>&1; then
  if [ ! -s /etc/munge/munge.key ]; then
    install -d -o munge -g munge -m 0700 /etc/munge
    runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
  fi
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  wait_for 10 sh -c 'munge -n | unmunge'
  cp /run/munge/munged.pid "$STATE/run/munged.pid"
fi

# 4. slurm.conf at the compiled-in path --------------------------------------------------------
real_mb=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
mem_mb=$((real_mb * 9 / 10))
mkdir -p /etc/slurm
cat >"$CONF" <<EOF
$MARK for $STATE; removed by .ci/slurm_down.sh
ClusterName=wtalci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
MinJobAge=300
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

# 5. daemons -------------------------------------------------------------------------------------
/usr/sbin/slurmctld
wait_for 30 sh -c 'scontrol ping | grep -q "is UP"'
/usr/sbin/slurmd -N localhost
wait_for 60 sh -c '[ "$(sinfo -h -n localhost -o %T)" = idle ]'

# 6. smoke test: a job runs through the controller ------------------------------------------------
timeout -k 5 60 srun -N1 -n1 -t 1 true
echo "SLURM up: $(sinfo -h -o '%P %D %T %c CPUs %m MB')"
