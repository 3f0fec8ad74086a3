#!/usr/bin/env bash
# A single-node SLURM cluster (with accounting) on this machine, for trying a dora grid locally and
# for CI. Debian 12 (slurm-wlm 22.05), run as root; there is no systemd, so every daemon is started
# by hand and stopped by its pid file.
#
#   scripts/slurm/cluster.sh start    install what is missing, write the configuration, start munged,
#                                     mariadbd, slurmdbd, slurmctld and slurmd, wait until the node is
#                                     idle and sacct answers
#   scripts/slurm/cluster.sh stop     cancel the cluster's jobs, stop exactly the daemons it started
#   scripts/slurm/cluster.sh status   which daemons run; sinfo
#   scripts/slurm/cluster.sh env      the line to eval so that sbatch/sinfo/sacct (and submitit, dora)
#                                     talk to this cluster: export SLURM_CONF=...
#
# Everything lives in one state folder, $SEPCLEAN_SLURM_DIR (default /var/lib/sepclean-slurm): the
# configuration (etc/slurm.conf, etc/slurmdbd.conf), its own munge key and socket, its own MariaDB
# data directory (TCP on 127.0.0.1 only), logs, pid files and slurmctld's state. Nothing is written
# to /etc: the slurm commands find the configuration through SLURM_CONF, slurmdbd finds
# slurmdbd.conf beside it. Accounting is not optional: submitit reads job states with sacct, and
# without slurmdbd every state stays UNKNOWN.
#
# Settings: SEPCLEAN_SLURM_PARTITION (default "local"), SEPCLEAN_SLURM_CLUSTER (default "sepclean"),
# SEPCLEAN_SLURM_PORTS (slurmctld, slurmd, slurmdbd, mariadb; default "6817 6818 6819 3307").
# SEPCLEAN_APT_LOCK_WAIT: seconds start waits for another apt/dpkg process's locks (default 600).
set -euo pipefail

STATE=${SEPCLEAN_SLURM_DIR:-/var/lib/sepclean-slurm}
PARTITION=${SEPCLEAN_SLURM_PARTITION:-local}
CLUSTER=${SEPCLEAN_SLURM_CLUSTER:-sepclean}
read -r CTLD_PORT SLURMD_PORT DBD_PORT DB_PORT <<<"${SEPCLEAN_SLURM_PORTS:-6817 6818 6819 3307}"
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
ACCOUNT=sepclean

ETC=$STATE/etc
MUNGE=$STATE/munge      # owned by munge: key, socket, pid, log, seed
DB=$STATE/mariadb       # owned by mysql: data directory, socket, pid, log
SLURM=$STATE/slurm      # owned by slurm: slurmctld's state, slurmdbd's and slurmctld's pid and log
SLURMD=$STATE/slurmd    # slurmd runs as root: spool, pid, log
export SLURM_CONF=$ETC/slurm.conf
MUNGE_SOCKET=$MUNGE/munge.socket
DB_SOCKET=$DB/mariadbd.sock

# name  pid file  executable (checked before any signal, so a reused pid is never killed)
DAEMONS=(
  "munged $MUNGE/munged.pid /usr/sbin/munged"
  "mariadbd $DB/mariadbd.pid /usr/sbin/mariadbd"
  "slurmdbd $SLURM/slurmdbd.pid /usr/sbin/slurmdbd"
  "slurmctld $SLURM/slurmctld.pid /usr/sbin/slurmctld"
  "slurmd $SLURMD/slurmd.pid /usr/sbin/slurmd"
)

say() { echo "cluster.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

# Whether a pid runs (a zombie, exited and waiting for init to reap it, does not).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# The pid in a daemon's pid file when that process is alive and is that daemon, else nothing.
running_pid() {
  local pidfile=$1 exe=$2 pid
  [[ -s $pidfile ]] || return 0
  pid=$(tr -dc 0-9 <"$pidfile")
  [[ -n $pid ]] && alive "$pid" || return 0
  [[ $(readlink -f "/proc/$pid/exe" 2>/dev/null) == "$(readlink -f "$exe")" ]] && echo "$pid"
  return 0
}

daemon_pid() {  # by name
  local entry name pidfile exe
  for entry in "${DAEMONS[@]}"; do
    read -r name pidfile exe <<<"$entry"
    [[ $name == "$1" ]] && { running_pid "$pidfile" "$exe"; return 0; }
  done
}

# Poll a command until it succeeds; fail naming what did not come up and where its log is.
wait_for() {
  local what=$1 seconds=$2 log=$3; shift 3
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      say "error: $what did not come up within ${seconds}s; the end of $log:"
      tail -n 20 "$log" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.2
  done
}

APT_LOCK_WAIT=${SEPCLEAN_APT_LOCK_WAIT:-600}  # seconds

# apt-get, waiting up to $APT_LOCK_WAIT s while another apt or dpkg process holds a lock it needs.
# DPkg::Lock::Timeout covers dpkg's frontend lock only; apt-get update takes the package lists' lock
# and install the archives' lock first, and fail at once on those (apt 2.6), so they are retried.
apt_get() {
  local deadline=$((SECONDS + APT_LOCK_WAIT)) out said=
  while true; do
    if out=$(apt-get -o DPkg::Lock::Timeout="$APT_LOCK_WAIT" "$@" 2>&1); then return 0; fi
    if ! grep -qE "Could not get lock|Unable to acquire the dpkg frontend lock" <<<"$out" \
        || ((SECONDS >= deadline)); then
      printf '%s\n' "$out" >&2
      return 1
    fi
    [[ -n $said ]] || say "waiting (up to ${APT_LOCK_WAIT}s) for another apt/dpkg process: $(grep -m1 -E 'lock' <<<"$out")"
    said=1
    sleep 2
  done
}

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends "${missing[@]}"
}

write_configuration() {
  local node cpu_line password
  mkdir -p "$ETC" "$MUNGE" "$DB" "$SLURM/state" "$SLURMD/spool"
  chmod 755 "$STATE" "$ETC"
  chown munge:munge "$MUNGE"; chmod 755 "$MUNGE"  # munged wants its socket folder searchable by all
  chown mysql:mysql "$DB"; chmod 750 "$DB"
  chown -R slurm:slurm "$SLURM"

  # The node as slurmd sees it: "NodeName=vm CPUs=2 Boards=1 ... RealMemory=24152".
  cpu_line=$(slurmd -C | head -n 1)
  node=${cpu_line%% *}; node=${node#NodeName=}
  [[ -f $ETC/db.password ]] || (umask 077; head -c 18 /dev/urandom | base64 | tr -dc A-Za-z0-9 >"$ETC/db.password")
  password=$(cat "$ETC/db.password")

  cat >"$ETC/slurm.conf" <<EOF
# Written by scripts/slurm/cluster.sh; rewritten on every start.
ClusterName=$CLUSTER
SlurmctldHost=$node(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$SLURM/state
SlurmdSpoolDir=$SLURMD/spool
SlurmctldPidFile=$SLURM/slurmctld.pid
SlurmctldLogFile=$SLURM/slurmctld.log
SlurmdPidFile=$SLURMD/slurmd.pid
SlurmdLogFile=$SLURMD/slurmd.log
# No cgroups (none in a container without systemd), no switch, no mail.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# A job asking for more than the node has is refused at submission instead of pending forever.
EnforcePartLimits=ALL
ReturnToService=2
# Accounting through slurmdbd: submitit reads job states with sacct.
JobAcctGatherType=jobacct_gather/linux
# Each job step's peak memory (sacct MaxRSS; benchmarks/bench_linear_slurm.py), sampled every second.
JobAcctGatherFrequency=task=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# With munge, the "password" for slurmdbd connections is the munge socket they use (the default is
# /run/munge's, not AuthInfo's).
AccountingStoragePass=$MUNGE_SOCKET
JobCompType=jobcomp/none
$cpu_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF

  # slurmdbd refuses a configuration file that is not its user's alone.
  install -m 600 -o slurm -g slurm /dev/stdin "$ETC/slurmdbd.conf" <<EOF
# Written by scripts/slurm/cluster.sh; rewritten on every start.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=slurm
PidFile=$SLURM/slurmdbd.pid
LogFile=$SLURM/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$password
StorageLoc=slurm_acct_db
EOF
}

start_munged() {
  [[ -n $(daemon_pid munged) ]] && return 0
  if [[ ! -f $MUNGE/munge.key ]]; then
    runuser -u munge -- mungekey --create --keyfile="$MUNGE/munge.key"
  fi
  runuser -u munge -- /usr/sbin/munged --key-file="$MUNGE/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$MUNGE/munged.pid" --log-file="$MUNGE/munged.log" --seed-file="$MUNGE/munged.seed"
  wait_for munged 10 "$MUNGE/munged.log" bash -c "munge -n -S '$MUNGE_SOCKET' | unmunge -S '$MUNGE_SOCKET'"
}

mariadb_sql() { mariadb --no-defaults --socket="$DB_SOCKET" -u root -e "$1"; }

start_mariadbd() {
  if [[ -z $(daemon_pid mariadbd) ]]; then
    if [[ ! -d $DB/data/mysql ]]; then
      mariadb-install-db --no-defaults --user=mysql --datadir="$DB/data" --auth-root-authentication-method=socket \
        --skip-test-db >"$DB/install.log" 2>&1 || { tail -n 20 "$DB/install.log" >&2; die "mariadb-install-db failed"; }
    fi
    # mariadbd does not fork: detach it into its own session.
    setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DB/data" --socket="$DB_SOCKET" \
      --pid-file="$DB/mariadbd.pid" --log-error="$DB/mariadbd.log" --bind-address=127.0.0.1 \
      --port="$DB_PORT" --skip-name-resolve --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
    wait_for mariadbd 30 "$DB/mariadbd.log" mariadb-admin --no-defaults --socket="$DB_SOCKET" -u root ping
  fi
  mariadb_sql "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1';
    ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$(cat "$ETC/db.password")';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

start_slurm() {
  if [[ -z $(daemon_pid slurmdbd) ]]; then
    /usr/sbin/slurmdbd
    wait_for slurmdbd 30 "$SLURM/slurmdbd.log" sacctmgr -n list cluster
  fi
  # The cluster, an account and root in it (slurmctld also registers the cluster itself).
  [[ -n $(sacctmgr -n -P list cluster "$CLUSTER" format=cluster) ]] || sacctmgr -i add cluster "$CLUSTER" >/dev/null
  [[ -n $(sacctmgr -n -P list account "$ACCOUNT" format=account) ]] ||
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description=sepclean organization=sepclean >/dev/null
  [[ -n $(sacctmgr -n -P list assoc cluster="$CLUSTER" account="$ACCOUNT" user=root format=user) ]] ||
    sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
  if [[ -z $(daemon_pid slurmctld) ]]; then
    /usr/sbin/slurmctld
    wait_for slurmctld 30 "$SLURM/slurmctld.log" scontrol ping
  fi
  if [[ -z $(daemon_pid slurmd) ]]; then
    /usr/sbin/slurmd
  fi
  wait_for "slurmd (the node idle in sinfo)" 60 "$SLURMD/slurmd.log" \
    bash -c "sinfo -h -p '$PARTITION' -o %T | grep -qx idle"
  wait_for "sacct" 30 "$SLURM/slurmdbd.log" sacct -n -X
}

start() {
  ((EUID == 0)) || die "start needs root: slurmd runs jobs as their users and munged as the munge user"
  install_packages
  write_configuration
  start_munged
  start_mariadbd
  start_slurm
  say "up: partition $PARTITION on $(hostname -s); to use it: export SLURM_CONF=$SLURM_CONF"
}

# Wait for a pid to exit; after `seconds`, SIGKILL it.
reap() {
  local pid=$1 seconds=$2 deadline
  deadline=$((SECONDS + seconds))
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
  if alive "$pid"; then
    say "pid $pid did not stop within ${seconds}s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.1; done
  fi
}

# Wait up to `seconds` for the partition's queue to empty.
drain() {
  local deadline=$((SECONDS + $1))
  until [[ -z $(squeue -h -p "$PARTITION" -o %i 2>/dev/null) ]]; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

stop() {
  local entry name pidfile exe pid i
  ((EUID == 0)) || die "stop needs root"
  # Jobs first: their slurmstepd processes are not slurmd's children once started. A cancelled
  # job's steps get SIGKILL only KillWait (30 s) after SIGTERM, which submitit's jobs ignore; so
  # signal them (TERM, 5 s, then KILL) and cancel what is left.
  if [[ -n $(daemon_pid slurmctld) ]]; then
    scancel --partition="$PARTITION" --full --signal=TERM 2>/dev/null || true
    drain 5 || scancel --partition="$PARTITION" --full --signal=KILL 2>/dev/null || true
    drain 5 || scancel --partition="$PARTITION" 2>/dev/null || true
    drain 60 || say "jobs still in the queue: $(squeue -h -p "$PARTITION" -o %i | tr '\n' ' ')"
  fi
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    read -r name pidfile exe <<<"${DAEMONS[i]}"
    pid=$(running_pid "$pidfile" "$exe")
    [[ -n $pid ]] || continue
    kill -TERM "$pid"
    reap "$pid" 30
    say "stopped $name ($pid)"
  done
}

status() {
  local entry name pidfile exe pid up=0
  for entry in "${DAEMONS[@]}"; do
    read -r name pidfile exe <<<"$entry"
    pid=$(running_pid "$pidfile" "$exe")
    if [[ -n $pid ]]; then echo "$name: running ($pid)"; up=$((up + 1)); else echo "$name: stopped"; fi
  done
  ((up)) && sinfo 2>/dev/null || true
  ((up == ${#DAEMONS[@]}))
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$SLURM_CONF" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
