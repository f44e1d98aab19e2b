#!/usr/bin/env bash
# Berth vs Debian's docker.io, side by side in one run.
#
# Both engines run at the same time, each on its own data dir, socket and bridge, with the same
# busybox image. Latency measurements are interleaved (Berth, Docker, Docker, Berth, ...) so that
# background load on the machine hits both engines alike; every timed command must succeed (a
# fast failure must never count as a fast run). Medians are taken over all timed runs.
# Networking: time from `docker run -d -p` to the first HTTP answer through the published port,
# and HTTP throughput through a published port vs straight to the container's address, measured
# by bench/netprobe (a small Go client built at the start; its loops are bounded in time and
# count, and it only talks to 127.0.0.1 and to our containers' addresses on our own bridges).
#
# The measurements run in a private network namespace (unshare --net): the engines' bridges,
# iptables chains, FORWARD policy and ip_forward then never touch the host's, and a dockerd run
# by someone else on this machine cannot collide with ours. Installing packages and building
# happen before, in the host's namespace (they need the network). Cleanup still undoes every
# network change explicitly, so NETNS=0 (run in the host's namespace) leaves the host as found.
#
# Usage (as root, from anywhere):   bash bench/run.sh
# Environment:
#   RUNS=20 WARMUP=2        timed runs / untimed warm-ups per engine for `docker run`
#   PS_RUNS=20              timed `docker ps` calls per engine
#   PS_CONTAINERS=50        running containers while timing `docker ps`
#   SHIM_CONTAINERS=10      running containers while measuring supervisor PSS
#   NET_RUNS=$RUNS          timed `docker run -d -p` + first HTTP 200, per engine
#   LOAD_ROUNDS=7 LOAD_SECONDS=2 LOAD_CONNS=2 LOAD_SIZE=1048576
#                           throughput: rounds of LOAD_SECONDS per engine and path, over
#                           LOAD_CONNS connections, GETs of a LOAD_SIZE-byte file
#   PORT_BASE=20000         published host ports are PORT_BASE, PORT_BASE+1, ... (one per container)
#   POLL=after              first HTTP 200: poll from when `docker run -d` has returned (as a
#                           script would); POLL=during polls from the start, while it runs
#   ENGINES="berth docker"  ENGINES=docker measures the Docker half only (no build needed)
#   SUITES="engine build registry"   which parts to measure: engine (run, network, memory,
#                           ps), build, registry (docker push / pull of a REG_MB MiB layer:
#                           Berth's engine to `berth registry`, Docker's to distribution's)
#   REG_RUNS=3 REG_MB=256   timed pushes and pulls per engine, and the random layer's size
#   BUILD_RUNS=$RUNS        timed builds per engine (--no-cache and cached)
#   BIG_RUNS=5 BIG_MB=200   cached rebuilds with a BIG_MB MiB context (COPY . /ctx)
#   BUILD=1                 run `make -C <root> build` first (BUILD=0: use bin/berth as it is)
#   BERTH=<root>/bin/berth  DOCKER=docker (the client)
#   GO=go                   builds bench/netprobe (else /usr/local/go/bin/go)
#   STRICT=0                STRICT=1: exit 2 when a ratio misses its target
#   KEEP=0                  KEEP=1: keep the work directory (engine logs) for a post-mortem
#   NETNS=1                 NETNS=0: measure in the host's network namespace
#   CMD_TIMEOUT=120         seconds before a hung docker client is killed (the run then fails)
#   DOCKER_EXEC_TMPFS=1     dockerd's --exec-root on a tmpfs (as /run is on most systems);
#                           0 keeps it on WORK's filesystem
#   OUT=<root>/bench/results/latest.txt
# Exit status: 0 measured, 1 setup/engine failure, 2 (STRICT=1 only) a target was missed.
# shellcheck disable=SC2013 # the files read word by word hold pids / paths without spaces
set -euo pipefail
export LC_ALL=C # EPOCHREALTIME and printf must use '.' as the decimal separator

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-20}
WARMUP=${WARMUP:-2}
PS_RUNS=${PS_RUNS:-20}
PS_CONTAINERS=${PS_CONTAINERS:-50}
SHIM_CONTAINERS=${SHIM_CONTAINERS:-10}
NET_RUNS=${NET_RUNS:-$RUNS}
LOAD_ROUNDS=${LOAD_ROUNDS:-7}
LOAD_SECONDS=${LOAD_SECONDS:-2}
LOAD_CONNS=${LOAD_CONNS:-2}
LOAD_SIZE=${LOAD_SIZE:-1048576}
PORT_BASE=${PORT_BASE:-20000}
POLL=${POLL:-after}
NEXT_PORT=$PORT_BASE
GO=${GO:-go}
ENGINES=${ENGINES:-berth docker}
BUILD=${BUILD:-1}
BERTH=${BERTH:-$ROOT/bin/berth}
DOCKER=${DOCKER:-docker}
STRICT=${STRICT:-0}
KEEP=${KEEP:-0}
NETNS=${NETNS:-1}
STAGE=${BENCH_STAGE:-host} # host: prepare, then re-run in a new network namespace; netns: measure
OUT=${OUT:-$ROOT/bench/results/latest.txt}
CMD_TIMEOUT=${CMD_TIMEOUT:-120}
DOCKER_EXEC_TMPFS=${DOCKER_EXEC_TMPFS:-1}
IMAGE=bb:1.0
SUITES=${SUITES:-engine build registry}
REG_RUNS=${REG_RUNS:-3}
REG_MB=${REG_MB:-256}
REG_PORT=${REG_PORT:-15101} # berth registry on REG_PORT, distribution on REG_PORT+1
BUILD_RUNS=${BUILD_RUNS:-$RUNS}
BIG_RUNS=${BIG_RUNS:-5}
BIG_MB=${BIG_MB:-200}
export DOCKER_BUILDKIT=0 # the client has no buildx: both engines get the classic POST /build

# Names and ranges that collide neither with docker0 nor with the walkthroughs (bwalk0,
# 10.199.0.0/24). Docker gets a bridge we create ourselves (dockerd --bridge) instead of
# docker0 + --bip, so a dockerd started by someone else never shares a bridge with ours.
BERTH_BRIDGE=bbench0
BERTH_CIDR=10.197.0.0/24
DOCKER_BRIDGE=bbdock0
DOCKER_ADDR=10.198.0.1/24
DOCKER_PREFIX=10.198.0.                                # its containers' addresses begin so
DOCKER_RULES="DOCKER|$DOCKER_BRIDGE|10\\.198\\.0\\." # iptables rules that are our dockerd's
BERTH_RULES="$BERTH_BRIDGE|10\\.197\\.0\\."          # iptables rules that are our Berth's

declare -A SOCK=() PID=() LOG=() BRIDGE=([berth]=$BERTH_BRIDGE [docker]=$DOCKER_BRIDGE)
declare -A MED=()   # MED[metric.engine] = median, in the metric's unit
declare -A DETAIL=() # DETAIL[metric.engine] = "n=.. min=.. max=.."
WORK=${BENCH_WORK:-}
# The per-container supervisor processes.
declare -A SHIM_NAME=([berth]=berth-shim [docker]=containerd-shim-runc-v2)

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
# die MESSAGE   fails the run; an engine that died on the way gets its log shown first
die() {
  local e
  for e in berth docker; do
    if [ -n "${PID[$e]:-}" ] && ! alive "${PID[$e]}"; then show_log "$e" "$e (pid ${PID[$e]}) has exited"; fi
  done
  log "error: $*"
  exit 1
}
show_log() {
  log "$2; last lines of ${LOG[$1]} (KEEP=1 keeps it):"
  tail -n 30 "${LOG[$1]}" | sed 's/^/    /' >&2
}
uses() { [[ " $ENGINES " == *" $1 "* ]]; }
suite() { [[ " $SUITES " == *" $1 "* ]]; }
# dk ENGINE ARGS...   the client against ENGINE; the watchdog kills it after CMD_TIMEOUT s
dk() {
  local e=$1
  shift
  set_deadline
  "$DOCKER" -H "unix://${SOCK[$e]}" "$@"
}
set_deadline() { printf '%d\n' $((EPOCHSECONDS + CMD_TIMEOUT)) >"$WORK/deadline"; }
# dkt ENGINE SECONDS ARGS...   the client with a time limit, for cleanup (a hung engine must
# not hang the cleanup)
dkt() { local e=$1 t=$2; shift 2; timeout "$t" "$DOCKER" -H "unix://${SOCK[$e]}" "$@"; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
# other_pids NAME...   processes with one of these exact names that we did not start
other_pids() {
  local n p
  for n in "$@"; do
    for p in $(pgrep -x "$n" || true); do
      [[ " ${PID[*]:-} " == *" $p "* ]] || echo "$p"
    done
  done
}
# other dockerds that manage the iptables we use: they share the DOCKER* chains with ours. None
# in our own network namespace; in the host's, any dockerd without --iptables=false (the e2e
# suite's peer runs with it).
other_iptables_dockerds() {
  local p
  [ "$STAGE" = netns ] && return 0
  for p in $(other_pids dockerd); do
    [[ $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) == *"--iptables=false"* ]] || echo "$p"
  done
}
# other_berth_engines [net]   berth engines we did not start; with "net", only those that share
# our network namespace (and so our iptables, FORWARD policy and ip_forward)
other_berth_engines() {
  local p
  [ "${1:-}" = net ] && [ "$STAGE" = netns ] && return 0
  for p in $(pgrep -f 'berth engine' || true); do
    [ "$p" = "${PID[berth]:-}" ] || [ "$p" = $$ ] || echo "$p"
  done
}

# ---------------------------------------------------------------------------------------------
# Preparation, in the host's network namespace: packages and the build need the network.
prepare() {
  local bb=/bin/busybox
  # (ldd fails on a static binary, so its output is captured rather than piped under pipefail)
  if ! "$bb" --list >/dev/null 2>&1 || [[ $(ldd "$bb" 2>&1 || true) != *"not a dynamic"* ]]; then
    log "installing busybox-static"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null 2>&1 ||
      die "cannot install busybox-static"
  fi
  if uses docker && ! command -v dockerd >/dev/null; then
    log "installing docker.io"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null 2>&1 ||
      die "cannot install docker.io"
  fi
  if uses berth && [ "$BUILD" = 1 ]; then
    log "make -C $ROOT build"
    # A plain top-level build, whatever make flags (-j, variables) `make bench` was given.
    if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$ROOT" build >"$WORK/build.log" 2>&1; then
      tail -n 30 "$WORK/build.log" | sed 's/^/    /' >&2
      die "make build failed"
    fi
  fi
  if uses berth; then [ -x "$BERTH" ] || die "$BERTH not found (make build?)"; fi
  if suite registry && uses docker; then
    # The reference registry, from the Go module proxy (the measurement stage has no network).
    log "building distribution's registry"
    command -v "$GO" >/dev/null || GO=/usr/local/go/bin/go
    if ! (cd "$WORK" && GOBIN="$WORK/dist" GOFLAGS=-mod=mod "$GO" install github.com/distribution/distribution/v3/cmd/registry@latest) >"$WORK/dist.log" 2>&1; then
      tail -n 20 "$WORK/dist.log" | sed 's/^/    /' >&2
      die "cannot build github.com/distribution/distribution/v3/cmd/registry"
    fi
  fi
  # The HTTP client of the networking measurements (stdlib only, so no download).
  command -v "$GO" >/dev/null || GO=/usr/local/go/bin/go
  if ! (cd "$ROOT" && CGO_ENABLED=0 "$GO" build -o "$WORK/netprobe" ./bench/netprobe) >"$WORK/netprobe.log" 2>&1; then
    sed 's/^/    /' "$WORK/netprobe.log" >&2
    die "cannot build bench/netprobe (GO=$GO)"
  fi
  # The stand-in server that times the docker client alone (bench_client_alone).
  if ! (cd "$ROOT" && CGO_ENABLED=0 "$GO" build -o "$WORK/clientonly" ./bench/clientonly) >"$WORK/clientonly.log" 2>&1; then
    sed 's/^/    /' "$WORK/clientonly.log" >&2
    die "cannot build bench/clientonly (GO=$GO)"
  fi
}

# Preflight, where we measure. In the host's namespace (NETNS=0), nobody else's dockerd may
# manage iptables: two dockerds share the DOCKER* chains, starting ours rewrites the other's
# isolation rules, and removing the chains afterwards would break it. So refuse, not disturb.
preflight() {
  local t
  for t in iptables ip ss awk timeout "$DOCKER" "$WORK/netprobe"; do
    command -v "$t" >/dev/null || die "missing tool: $t"
  done
  if uses docker; then
    local others
    others=$(other_iptables_dockerds | tr '\n' ' ')
    [ -z "$others" ] || die "another dockerd is running with iptables on (pid $others); it would share the DOCKER* chains with ours. Stop it, or run ENGINES=berth"
    if [ -S /run/containerd/containerd.sock ]; then
      die "/run/containerd/containerd.sock exists: dockerd would use that system containerd instead of its own child, and its RSS would not be attributable"
    fi
  fi
  for t in $BERTH_BRIDGE $DOCKER_BRIDGE; do
    ! ip link show "$t" >/dev/null 2>&1 || die "interface $t already exists (another benchmark running, or a leftover: ip link del $t)"
  done
  BRIDGES_OURS=1
}

# Snapshot of what the engines may change on the host, so cleanup can put it back.
snapshot_host() {
  iptables -t filter -S >"$WORK/ipt.filter.before"
  iptables -t nat -S >"$WORK/ipt.nat.before"
  FORWARD_POLICY=$(iptables -S FORWARD | awk '$1 == "-P" {print $3; exit}')
  IP_FORWARD=$(cat /proc/sys/net/ipv4/ip_forward)
  if command -v nft >/dev/null; then nft list tables >"$WORK/nft.before" 2>/dev/null || true; fi
  links >"$WORK/links.before"
  cgroup_dirs >"$WORK/cgroups.before"
}
links() { ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | sort; }
# cgroup_dirs   the cgroups at the top of each hierarchy (cgroup v1: /sys/fs/cgroup/H/NAME)
cgroup_dirs() { find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d 2>/dev/null | sort; }

# verify_clean   after the cleanup: says what is still there that was not before (interfaces,
# iptables rules and chains, our nftables table, processes, mounts under WORK)
verify_clean() {
  local left=""
  if [ -f "$WORK/links.before" ]; then
    left+=$(comm -13 "$WORK/links.before" <(links) | sed 's/^/interface /')$'\n'
  fi
  if [ -f "$WORK/ipt.nat.before" ]; then
    left+=$(comm -13 <(sort "$WORK/ipt.filter.before") <(iptables -t filter -S | sort) | sed 's/^/iptables filter: /')$'\n'
    left+=$(comm -13 <(sort "$WORK/ipt.nat.before") <(iptables -t nat -S | sort) | sed 's/^/iptables nat: /')$'\n'
  fi
  if [ -f "$WORK/nft.before" ]; then
    left+=$(comm -13 <(sort "$WORK/nft.before") <(nft list tables 2>/dev/null | sort) | grep -F -- "$BERTH_BRIDGE" | sed 's/^/nftables: /')$'\n'
  fi
  left+=$(leftover_pids | sort -u | sed 's/^/process /')$'\n'
  left+=$(awk -v w="$WORK/" 'index($2, w) == 1 {print "mount " $2}' /proc/mounts)
  left=$(grep . <<<"$left" || true)
  if [ -n "$left" ]; then
    log "warning: the cleanup left behind:"
    printf '%s\n' "$left" | head -n 20 | sed 's/^/    /' >&2
  fi
}

# ---------------------------------------------------------------------------------------------
# The image: busybox from Debian's busybox-static, built exactly like the walkthroughs'
# make_busybox_image (lib.sh), imported into each engine from the same tarball.
make_rootfs_tar() {
  local bb=/bin/busybox rootfs="$WORK/rootfs" a
  mkdir -p "$rootfs"/{bin,etc,tmp,www,root}
  cp "$bb" "$rootfs/bin/busybox"
  for a in $("$bb" --list); do [ -e "$rootfs/bin/$a" ] || ln -s busybox "$rootfs/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  echo "hello from busybox" >"$rootfs/www/index.html"
  tar -C "$rootfs" -cf "$WORK/bb.tar" .
}

import_image() {
  dk "$1" import -c 'CMD ["/bin/sh"]' - "$IMAGE" <"$WORK/bb.tar" >/dev/null ||
    die "$1: docker import failed"
}

# ---------------------------------------------------------------------------------------------
# Engines

# wait_ready ENGINE   waits for the API; on failure shows the engine's log and fails
wait_ready() {
  local e=$1 end=$((SECONDS + 60))
  while ((SECONDS < end)); do
    if dk "$e" version >/dev/null 2>&1; then return 0; fi
    alive "${PID[$e]}" || break
    sleep 0.2
  done
  if alive "${PID[$e]}"; then show_log "$e" "$e is running but its API did not answer within 60 s"; fi
  die "$e failed to start"
}

start_berth() {
  mkdir -p "$WORK/b/data" "$WORK/b/run"
  SOCK[berth]=$WORK/b/run/docker.sock
  LOG[berth]=$WORK/berth.log
  log "starting berth engine"
  "$BERTH" engine --data-dir "$WORK/b/data" --run-dir "$WORK/b/run" \
    --bridge "$BERTH_BRIDGE" --bridge-cidr "$BERTH_CIDR" >"${LOG[berth]}" 2>&1 &
  PID[berth]=$!
  wait_ready berth
}

start_docker() {
  ip link add "$DOCKER_BRIDGE" type bridge
  ip addr add "$DOCKER_ADDR" dev "$DOCKER_BRIDGE"
  ip link set "$DOCKER_BRIDGE" up
  mkdir -p "$WORK/d/data" "$WORK/d/exec" "$WORK/d/run"
  # Docker's run-time state (exec root: containerd's state, runc's root) on a tmpfs, as it
  # is under /run on most systems; Berth mounts a tmpfs on its run dir itself when that is
  # on a disk (docs/engine.md), so both engines keep run-time state in memory.
  if [ "$DOCKER_EXEC_TMPFS" = 1 ]; then
    mount -t tmpfs -o mode=0711 tmpfs "$WORK/d/exec" || die "cannot mount a tmpfs on $WORK/d/exec"
  fi
  SOCK[docker]=$WORK/d/run/docker.sock
  LOG[docker]=$WORK/dockerd.log
  log "starting dockerd"
  dockerd --data-root "$WORK/d/data" --exec-root "$WORK/d/exec" --pidfile "$WORK/d/dockerd.pid" \
    -H "unix://${SOCK[docker]}" --bridge "$DOCKER_BRIDGE" >"${LOG[docker]}" 2>&1 &
  PID[docker]=$!
  wait_ready docker
  # dockerd starts its own containerd as a child (we made sure no system containerd exists).
  CONTAINERD_PID=$(pgrep -P "${PID[docker]}" -x containerd | head -n1 || true)
  [ -n "$CONTAINERD_PID" ] || die "dockerd has no containerd child"
}

# A hung engine must not hang the benchmark: every client call (dk) writes a deadline, and this
# watchdog SIGKILLs our docker clients (descendants of this script, by pid) once it has passed.
# The killed call then fails, and the run stops with an error. While all is well it costs one
# `sleep` every 2 s.
start_watchdog() {
  local main=$$
  echo 0 >"$WORK/deadline"
  (
    sp=
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    while :; do
      sleep 2 &
      sp=$!
      wait "$sp"
      read -r dl <"$WORK/deadline" || continue
      if ((dl > 0 && EPOCHSECONDS > dl)); then
        for p in $(pgrep -x "${DOCKER##*/}" || true); do
          if descends_from "$p" "$main"; then
            echo "$(date +%T) killed client pid $p after ${CMD_TIMEOUT} s" >>"$WORK/watchdog.log"
            kill -KILL "$p" 2>/dev/null || true
          fi
        done
      fi
    done
  ) &
  WATCHDOG=$!
}

# descends_from PID ANCESTOR
descends_from() {
  local pid=$1
  while [ -n "$pid" ] && ((pid > 1)); do
    [ "$pid" = "$2" ] && return 0
    pid=$(awk '/^PPid:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  done
  return 1
}

# stop_engine ENGINE   removes its containers (they outlive the engine by design), then stops
# the process we started: SIGTERM, and SIGKILL only if it is still there after 30 s.
stop_engine() {
  local e=$1 pid=${PID[$1]:-} ids i
  [ -n "$pid" ] || return 0
  if alive "$pid"; then
    ids=$(dkt "$e" 30 ps -aq 2>/dev/null || true)
    if [ -n "$ids" ]; then
      # shellcheck disable=SC2086 # one id per word
      dkt "$e" 180 rm -f $ids >/dev/null 2>&1 || log "warning: $e: rm -f of its containers failed"
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do alive "$pid" || break; sleep 0.2; done
    if alive "$pid"; then
      log "warning: $e (pid $pid) ignored SIGTERM for 30 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  # Our dockerd's containerd normally exits with it.
  if [ "$e" = docker ] && alive "${CONTAINERD_PID:-}"; then
    kill -TERM "$CONTAINERD_PID" 2>/dev/null || true
    sleep 1
    alive "$CONTAINERD_PID" && kill -KILL "$CONTAINERD_PID" 2>/dev/null
  fi
}

# leftover_pids   processes that are ours beyond doubt: the supervisors found by bench_shim_pss,
# whatever has its command line under WORK (supervisors, helpers), our dockerd's docker-proxy
# processes (by the container address they forward to), and the containers, whose root mount
# (first line of mountinfo: an overlay or a bind mount) is under WORK.
# Builtins only: this runs over every process, repeatedly.
leftover_pids() {
  local d p e line
  local -a args
  for e in berth docker; do
    [ -s "$WORK/shims.$e" ] || continue
    for p in $(sort -u "$WORK/shims.$e"); do
      if alive "$p" && proc_named "$p" "${SHIM_NAME[$e]}"; then echo "$p"; fi
    done
  done
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = $$ ] && continue
    { read -r line <"$d/mountinfo" && mapfile -d '' args <"$d/cmdline"; } 2>/dev/null || continue
    if [[ $line == *"$WORK/"* ]] || [[ " ${args[*]} " == *"$WORK/"* ]] ||
      [[ ${args[0]:-} == *docker-proxy && " ${args[*]} " == *" -container-ip $DOCKER_PREFIX"* ]]; then echo "$p"; fi
  done
}

# kill_leftovers   once the engines are down, waits 10 s for what they started to exit, then
# kills what is left (and says so: the engine should have cleaned it up)
kill_leftovers() {
  local i left
  for ((i = 0; i < 50; i++)); do
    left=$(leftover_pids | sort -u)
    [ -z "$left" ] && return 0
    sleep 0.2
  done
  log "warning: $(wc -l <<<"$left") processes of this run outlived their engine; killing them:"
  ps -o pid,ppid,args -p "$(paste -sd, <<<"$left")" | cut -c1-160 | head -n 21 | sed 's/^/    /' >&2
  # shellcheck disable=SC2086
  kill -KILL $left 2>/dev/null
  return 0
}

# iptables_undo RULE_REGEX CHAIN_REGEX   deletes, in filter and nat, what was added since the
# snapshot: chains whose names match CHAIN_REGEX (flushed, then deleted) and rules that match
# RULE_REGEX. Chains matching CHAIN_REGEX that existed before get their old rules back.
# Everything else (other people's rules) is left alone.
iptables_undo() {
  local rules=$1 chains=$2 t c r
  for t in filter nat; do
    local before="$WORK/ipt.$t.before" new_chains old_chains
    new_chains=$(comm -13 <(grep '^-N ' "$before" | sort) <(iptables -t "$t" -S | grep '^-N ' | sort) |
      awk '{print $2}' | grep -E "$chains" || true)
    old_chains=$(grep '^-N ' "$before" | awk '{print $2}' | grep -E "$chains" || true)
    for c in $new_chains $old_chains; do iptables -t "$t" -F "$c" 2>/dev/null || true; done
    # Added rules, newest last in -S order; delete them one by one (duplicates included).
    comm -13 <(sort "$before") <(iptables -t "$t" -S | sort) | grep '^-A ' | grep -E -- "$rules" |
      while read -r r; do eval "iptables -t $t ${r/#-A/-D}" 2>/dev/null || true; done
    for c in $new_chains; do iptables -t "$t" -X "$c" 2>/dev/null || log "warning: cannot delete chain $t/$c"; done
    for c in $old_chains; do
      grep -E "^-A $c " "$before" | while read -r r; do eval "iptables -t $t $r" 2>/dev/null || true; done
    done
  done
}

# Puts the host back: engines, iptables, FORWARD policy, ip_forward, bridges, mounts, WORK.
cleanup() {
  local rc=$? others m
  set +e
  trap - EXIT INT TERM
  [ -n "$WORK" ] || exit "$rc"
  log "cleaning up"
  if [ -n "${WATCHDOG:-}" ]; then
    kill -TERM "$WATCHDOG" 2>/dev/null
    wait "$WATCHDOG" 2>/dev/null
  fi
  if alive "${ALONE_PID:-}"; then
    kill "$ALONE_PID"
    wait "$ALONE_PID" 2>/dev/null
  fi
  stop_registry berth
  stop_registry docker
  stop_engine berth
  stop_engine docker
  kill_leftovers
  if [ -n "${PID[docker]:-}" ]; then
    others=$(other_iptables_dockerds | tr '\n' ' ')
    if [ -z "$others" ]; then
      iptables_undo "$DOCKER_RULES" '^DOCKER'
    else
      # Someone started a dockerd meanwhile: the DOCKER* chains are theirs too now.
      log "warning: another dockerd appeared (pid $others): removing only rules for $DOCKER_BRIDGE"
      iptables_undo "$DOCKER_BRIDGE|10\\.198\\.0\\." '^$'
    fi
  fi
  if [ -n "${PID[berth]:-}" ]; then
    # Berth should remove its own rules when it stops; whatever it left is reported and removed.
    if comm -13 <(cat "$WORK"/ipt.*.before | sort) <({ iptables -t filter -S; iptables -t nat -S; } | sort) |
      grep -E -- "$BERTH_RULES" >"$WORK/berth-leftover-rules"; then
      log "warning: berth left iptables rules behind:"; sed 's/^/    /' "$WORK/berth-leftover-rules" >&2
    fi
    if [ -z "$(other_berth_engines net)" ]; then
      iptables_undo "$BERTH_RULES" '^(BERTH|berth)'
    else
      iptables_undo "$BERTH_RULES" '^$'
    fi
    # Berth keeps its rules in an nftables table named after its bridge (berth_<bridge>), and
    # keeps it when it stops (its containers keep running); it is ours to delete.
    if [ -f "$WORK/nft.before" ] && comm -13 <(sort "$WORK/nft.before") <(nft list tables 2>/dev/null | sort) |
      grep -F -- "$BERTH_BRIDGE" >"$WORK/nft.leftover"; then
      while read -r _ family table; do nft delete table "$family" "$table"; done <"$WORK/nft.leftover"
    fi
  fi
  # dockerd turns on ip_forward and sets the FORWARD policy to DROP; only undo that when no
  # other engine still relies on it.
  if [ -z "$(other_iptables_dockerds)" ] && [ -z "$(other_berth_engines net)" ]; then
    [ -n "${FORWARD_POLICY:-}" ] && iptables -P FORWARD "$FORWARD_POLICY"
    [ -n "${IP_FORWARD:-}" ] && echo "$IP_FORWARD" >/proc/sys/net/ipv4/ip_forward
  fi
  # (Only once preflight has seen that these names were free: otherwise they are someone else's.)
  if [ "${BRIDGES_OURS:-0}" = 1 ]; then
    ip link del "$BERTH_BRIDGE" 2>/dev/null
    ip link del "$DOCKER_BRIDGE" 2>/dev/null
  fi
  # dockerd and its containerd leave their (empty) cgroup parents, /docker and /k8s.io in
  # every hierarchy; what the engines made and left empty goes.
  if [ -f "$WORK/cgroups.before" ]; then
    comm -13 "$WORK/cgroups.before" <(cgroup_dirs) | while read -r d; do
      find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
  fi
  # Mounts under WORK (overlay rootfs, netns, shm) go before the directory does.
  for m in $(awk -v w="$WORK/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done
  verify_clean
  if [ "$KEEP" = 1 ]; then
    log "work directory kept: $WORK"
  else
    rm -rf --one-file-system "$WORK" 2>/dev/null || log "warning: could not remove $WORK"
  fi
  exit "$rc"
}

# ---------------------------------------------------------------------------------------------
# Measurements

# note_others   remembers engines that are not ours running now: their work competes for the
# CPUs, so the report flags the run as possibly noisy
note_others() {
  { other_pids dockerd; other_berth_engines; } >>"$WORK/others" || true
}

# timed_failed ENGINE WHAT   a timed command failed: shows its stderr (WORK/last.err), what the
# watchdog did and the engine's state, then fails the run
timed_failed() {
  local e=$1
  log "$e: $2 failed:"
  sed 's/^/    /' "$WORK/last.err" >&2
  if [ -s "$WORK/watchdog.log" ]; then sed 's/^/    watchdog: /' "$WORK/watchdog.log" >&2; fi
  if alive "${PID[$e]:-}"; then
    log "$e: docker ps -a now:"
    dkt "$e" 10 ps -a 2>&1 | head -n 6 | sed 's/^/    /' >&2
    show_log "$e" "$e is still running"
  fi
  die "a timed command failed"
}

# timed ENGINE ARGS...   runs the client once against ENGINE; LAST_US = wall time in µs.
# EPOCHREALTIME needs no fork, so nothing but the client is inside the interval.
timed() {
  local e=$1 t0 t1
  shift
  t0=${EPOCHREALTIME/./}
  dk "$e" "$@" >/dev/null 2>"$WORK/last.err" || timed_failed "$e" "docker $*"
  t1=${EPOCHREALTIME/./}
  LAST_US=$((t1 - t0))
}

# interleaved METRIC WARMUP RUNS MEASURE ARGS...   runs `MEASURE ENGINE ARGS...` (timed, or
# another function that sets LAST_US, and may set LAST_AUX, a second figure in µs) on every
# engine, alternating which engine goes first; the warm-up rounds are not recorded. Samples go
# to WORK/samples/METRIC.ENGINE (and METRIC_aux.ENGINE).
interleaved() {
  local metric=$1 warm=$2 runs=$3 measure=$4 i e
  shift 4
  local -a order
  for ((i = 0; i < warm + runs; i++)); do
    read -ra order <<<"$ENGINES"
    if ((i % 2)); then mapfile -t order < <(printf '%s\n' "${order[@]}" | tac); fi
    for e in "${order[@]}"; do
      LAST_AUX=
      "$measure" "$e" "$@"
      if ((i >= warm)); then
        echo "$LAST_US" >>"$WORK/samples/$metric.$e"
        if [ -n "$LAST_AUX" ]; then echo "$LAST_AUX" >>"$WORK/samples/${metric}_aux.$e"; fi
      fi
    done
  done
}

# stats FILE DIVISOR   "median min max n" of the numbers in FILE, each divided by DIVISOR.
# Median of an even count is the mean of the two middle values.
stats() {
  sort -n "$1" | awk -v d="$2" '{a[NR] = $1 / d}
    END {
      if (NR == 0) exit 1
      m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
      printf "%.4f %.4f %.4f %d\n", m, a[1], a[NR], NR
    }'
}

# record METRIC ENGINE FILE DIVISOR FORMAT
record() {
  local med min max n
  read -r med min max n < <(stats "$3" "$4")
  MED[$1.$2]=$med
  DETAIL[$1.$2]=$(printf "median $5  min $5  max $5  (n=%d)" "$med" "$min" "$max" "$n")
}

bench_latency() {
  local metric=$1 e
  shift
  note_others
  log "timing: docker $* ($WARMUP warm-ups + $RUNS runs per engine, interleaved)"
  interleaved "$metric" "$WARMUP" "$RUNS" timed "$@"
  for e in $ENGINES; do record "$metric" "$e" "$WORK/samples/$metric.$e" 1000 '%.1f ms'; done
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
pss_kb() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }

# engine_rss_kb ENGINE   Berth: the `berth engine` process. Docker: dockerd + its containerd.
engine_rss_kb() {
  case $1 in
    berth) rss_kb "${PID[berth]}" ;;
    docker) echo $(($(rss_kb "${PID[docker]}") + $(rss_kb "$CONTAINERD_PID"))) ;;
  esac
}

wait_no_containers() {
  local e=$1 end=$((SECONDS + 60))
  while ((SECONDS < end)); do
    [ -z "$(dk "$e" ps -aq)" ] && return 0
    sleep 0.2
  done
  die "$e: containers still present after 60 s: $(dk "$e" ps -a | tail -n +2 | head -5)"
}

# Idle RSS: no containers, after the warm-ups and the run benchmarks; 5 samples 1 s apart.
bench_idle_rss() {
  local e i
  note_others
  for e in $ENGINES; do wait_no_containers "$e"; done
  log "sampling idle engine RSS (5 samples, 1 s apart)"
  sleep 2
  for ((i = 0; i < 5; i++)); do
    for e in $ENGINES; do engine_rss_kb "$e" >>"$WORK/samples/idle_rss.$e"; done
    sleep 1
  done
  for e in $ENGINES; do record idle_rss "$e" "$WORK/samples/idle_rss.$e" 1024 '%.1f MiB'; done
}

# proc_named PID NAME   by /proc/PID/comm (kernel truncates to 15 chars), exe or argv[0]
proc_named() {
  local pid=$1 name=$2 comm exe argv0
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [ "$comm" = "${name:0:15}" ] && return 0
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  [ "${exe##*/}" = "$name" ] && return 0
  argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n1)
  [ "${argv0##*/}" = "$name" ]
}

# supervisor_of PID NAME   the nearest ancestor of a container's init process called NAME (not
# the process itself: berth-shim is also the container's init until it execs the command)
supervisor_of() {
  local name=$2 pid
  pid=$(awk '/^PPid:/ {print $2}' "/proc/$1/status" 2>/dev/null || true)
  while [ -n "$pid" ] && ((pid > 1)); do
    if proc_named "$pid" "$name"; then echo "$pid"; return 0; fi
    pid=$(awk '/^PPid:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  done
  return 1
}

# start_sleepers ENGINE COUNT   tops the engine up to COUNT running `sleep 3600` containers
start_sleepers() {
  local e=$1 want=$2 have
  have=$(dk "$e" ps -q | wc -l)
  while ((have < want)); do
    dk "$e" run -d "$IMAGE" sleep 3600 >/dev/null || die "$e: docker run -d failed"
    have=$((have + 1))
  done
  have=$(dk "$e" ps -q | wc -l)
  ((have == want)) || die "$e: $have containers running, wanted $want"
}

# Per-container supervisor PSS: find each container's supervisor through the process tree
# (State.Pid -> ancestors), sum their Pss (smaps_rollup) and divide by the container count.
bench_shim_pss() {
  local e name pid shim total count found pids
  note_others
  log "measuring supervisor PSS with $SHIM_CONTAINERS running containers"
  for e in $ENGINES; do start_sleepers "$e" "$SHIM_CONTAINERS"; done
  sleep 2 # let the supervisors settle after start-up
  for e in $ENGINES; do
    name=${SHIM_NAME[$e]}
    # shellcheck disable=SC2046 # one id per word
    pids=$(dk "$e" inspect -f '{{.State.Pid}}' $(dk "$e" ps -q))
    : >"$WORK/shims.$e"
    for pid in $pids; do
      if shim=$(supervisor_of "$pid" "$name"); then
        echo "$shim" >>"$WORK/shims.$e"
      else
        log "warning: $e: no $name above container process $pid"
      fi
    done
    # found = containers whose supervisor was found; count = distinct supervisors
    found=$(wc -l <"$WORK/shims.$e")
    count=$(sort -u "$WORK/shims.$e" | wc -l)
    if ((count == 0)); then
      log "warning: $e: no $name processes found; supervisor PSS not measured"
      continue
    fi
    total=0
    for shim in $(sort -u "$WORK/shims.$e"); do total=$((total + $(pss_kb "$shim"))); done
    echo "$total" >"$WORK/samples/shim_pss.$e"
    record shim_pss "$e" "$WORK/samples/shim_pss.$e" $((1024 * found)) '%.2f MiB'
    DETAIL[shim_pss.$e]=$(printf 'total %.1f MiB Pss over %d %s processes for %d of %d containers' \
      "$(awk -v t="$total" 'BEGIN {print t / 1024}')" "$count" "$name" "$found" "$SHIM_CONTAINERS")
  done
}

bench_ps() {
  local e
  note_others
  log "starting sleepers up to $PS_CONTAINERS per engine"
  for e in $ENGINES; do start_sleepers "$e" "$PS_CONTAINERS"; done
  log "timing: docker ps with $PS_CONTAINERS running ($WARMUP warm-ups + $PS_RUNS runs per engine, interleaved)"
  interleaved ps "$WARMUP" "$PS_RUNS" timed ps
  for e in $ENGINES; do record ps "$e" "$WORK/samples/ps.$e" 1000 '%.1f ms'; done
}

# ---------------------------------------------------------------------------------------------
# Networking: published ports. Berth forwards them with nftables DNAT in the kernel; Docker
# 20.10 runs a docker-proxy process per port, which carries all traffic to 127.0.0.1 (its
# iptables DNAT rules skip the loopback range).

# next_port   sets PORT to a host port not used before in this run, so that nothing of an
# earlier container (a connection in TIME_WAIT, a conntrack entry) can meet the new one, and
# that no socket uses now (always true in our own namespace; checked for NETNS=0)
next_port() {
  while :; do
    PORT=$NEXT_PORT
    NEXT_PORT=$((NEXT_PORT + 1))
    ((PORT < 32768)) || die "no free port left between PORT_BASE=$PORT_BASE and 32767"
    [ -n "$(ss -Htan "( sport = :$PORT or dport = :$PORT )")" ] || return 0
  done
}

# time_first200 ENGINE   `docker run -d -p PORT:80 bb httpd` on a fresh port. LAST_US = µs from
# just before the client starts to the first 200 (with the page's text) from
# http://127.0.0.1:PORT/. netprobe runs the client and polls, with a new attempt every 2 ms,
# from when the client has returned (POLL=after, like `docker run -d ... && until curl ...`)
# or from the start (POLL=during). LAST_AUX = µs until `docker run -d` returned. Both must
# succeed (30 s at most). The container is removed after, outside the timed part.
#
# Why not poll from the start by default: what a client sees while `docker run` is still at
# work depends on when it knocks. Docker's docker-proxy listens before the container has its
# address, and a connection then makes the kernel resolve the container's address too early:
# that resolution fails, is retried after 1 s, and every connection up to then waits for it,
# so Docker would measure ~1.1 s because we polled. (Berth: see bench/README.md.)
time_first200() {
  local e=$1 out first cmd id during=
  [ "$POLL" = during ] && during=-during
  next_port
  set_deadline
  # shellcheck disable=SC2086 # $during: no word or one
  if ! out=$("$WORK/netprobe" first200 $during -url "http://127.0.0.1:$PORT/" -want "hello from busybox" -timeout 30s -- \
    "$DOCKER" -H "unix://${SOCK[$e]}" run -d -p "$PORT:80" "$IMAGE" httpd -f -p 80 -h /www 2>"$WORK/last.err"); then
    timed_failed "$e" "docker run -d -p $PORT:80 $IMAGE httpd + GET http://127.0.0.1:$PORT/"
  fi
  read -r first cmd id <<<"$out"
  LAST_US=$first LAST_AUX=$cmd
  dk "$e" rm -f "$id" >/dev/null 2>"$WORK/last.err" || timed_failed "$e" "docker rm -f $id"
}

bench_first200() {
  local e
  note_others
  log "timing: docker run -d -p PORT:80 $IMAGE httpd until the first HTTP 200 on 127.0.0.1:PORT, polling $POLL it ($WARMUP warm-ups + $NET_RUNS runs per engine, interleaved)"
  interleaved first200 "$WARMUP" "$NET_RUNS" time_first200
  for e in $ENGINES; do
    record first200 "$e" "$WORK/samples/first200.$e" 1000 '%.1f ms'
    DETAIL[first200.$e]+=$(printf '; docker run -d itself returned after %.1f ms (median)' \
      "$(stats "$WORK/samples/first200_aux.$e" 1000 | cut -d' ' -f1)")
  done
}

# start_server ENGINE PATH   one httpd with a published port, serving /www/big (LOAD_SIZE random
# bytes, written by `docker exec`); sets URL[ENGINE.PATH] to its published port on
# 127.0.0.1 (PATH published) or to its own address (PATH direct)
declare -A URL=() SERVER=()
start_server() {
  local e=$1 path=$2 id ip
  next_port
  id=$(dk "$e" run -d -p "$PORT:80" "$IMAGE" httpd -f -p 80 -h /www) || die "$e: docker run -d -p $PORT:80 httpd failed"
  SERVER[$e.$path]=$id
  dk "$e" exec "$id" sh -c "head -c $LOAD_SIZE /dev/urandom >/www/big" 2>"$WORK/last.err" ||
    timed_failed "$e" "docker exec $id sh -c 'head -c $LOAD_SIZE /dev/urandom >/www/big'"
  ip=$(dk "$e" inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$id") ||
    die "$e: docker inspect $id failed"
  # The load goes to the container's address only through the bridge we made for this engine.
  [[ $(ip route get "$ip" 2>&1) == *" dev ${BRIDGE[$e]} "* ]] ||
    die "$e: container address '$ip' is not routed through ${BRIDGE[$e]}: $(ip route get "$ip" 2>&1)"
  case $path in
    published) URL[$e.$path]=http://127.0.0.1:$PORT/big ;;
    direct) URL[$e.$path]=http://$ip:80/big ;;
  esac
  # Wait for httpd (the file is there already).
  "$WORK/netprobe" first200 -url "http://$ip:80/" -timeout 30s -- true >/dev/null ||
    die "$e: httpd in $id does not answer on http://$ip:80/"
}

# Throughput of 1 MiB GETs, through the published port (127.0.0.1:PORT) and straight to the
# container (IP:80), per engine. Each path gets its own container (both started alike, with
# -p): busybox httpd closes every connection, and when one Berth container got both the
# masqueraded connections of the published path and direct ones (both from the bridge's
# address, sharing its port space), some SYNs waited 1 s for their retransmission; with one
# container per path, none did. A round fetches for LOAD_SECONDS from each
# engine and path in turn, alternating the order of engines and paths; a first round of 1 s is
# a warm-up. Every answer must be a 200 of LOAD_SIZE bytes. The published/direct ratio is
# taken per round (the two fetches of a round are seconds apart); its median is reported.
bench_throughput() {
  local e r path out secs mbps max slow
  local -a engines paths
  note_others
  log "throughput: GET of $LOAD_SIZE bytes over $LOAD_CONNS connections, $LOAD_ROUNDS rounds of ${LOAD_SECONDS}s per engine and path (127.0.0.1:published, container IP:80)"
  for e in $ENGINES; do
    start_server "$e" published
    start_server "$e" direct
  done
  for ((r = 0; r <= LOAD_ROUNDS; r++)); do
    read -ra engines <<<"$ENGINES"
    paths=(published direct)
    if ((r % 2)); then mapfile -t engines < <(printf '%s\n' "${engines[@]}" | tac); fi
    if ((r / 2 % 2)); then paths=(direct published); fi
    secs=$LOAD_SECONDS
    ((r > 0)) || secs=1
    for e in "${engines[@]}"; do
      for path in "${paths[@]}"; do
        out=$("$WORK/netprobe" load -url "${URL[$e.$path]}" -size "$LOAD_SIZE" -conns "$LOAD_CONNS" \
          -duration "${secs}s" -max-requests 200000 2>"$WORK/last.err") ||
          timed_failed "$e" "GET ${URL[$e.$path]} ($path)"
        read -r _ _ _ mbps max slow <<<"$out"
        if ((r > 0)); then
          echo "$mbps" >>"$WORK/samples/tput_$path.$e"
          echo "$max" >>"$WORK/samples/tput_${path}_max.$e"
          echo "$slow" >>"$WORK/samples/tput_${path}_slow.$e"
        fi
      done
    done
  done
  for e in $ENGINES; do
    for path in published direct; do
      record "tput_$path" "$e" "$WORK/samples/tput_$path.$e" 1 '%.0f MiB/s'
      # Requests that took over 200 ms (a lost SYN costs 1 s) and the slowest one.
      DETAIL[tput_$path.$e]+=$(printf '; slowest request %.0f ms, %d over 200 ms' \
        "$(sort -n "$WORK/samples/tput_${path}_max.$e" | tail -n1)" \
        "$(awk '{n += $1} END {print n}' "$WORK/samples/tput_${path}_slow.$e")")
    done
    paste "$WORK/samples/tput_published.$e" "$WORK/samples/tput_direct.$e" |
      awk '{printf "%.4f\n", $1 / $2}' >"$WORK/samples/tput_ratio.$e"
    record tput_ratio "$e" "$WORK/samples/tput_ratio.$e" 1 '%.3f'
    DETAIL[tput_ratio.$e]+="; per round: $(paste -sd' ' "$WORK/samples/tput_ratio.$e")"
    dk "$e" rm -f "${SERVER[$e.published]}" "${SERVER[$e.direct]}" >/dev/null ||
      die "$e: docker rm -f of the servers failed"
  done
}

# ---------------------------------------------------------------------------------------------
# docker build: the issue's three-step Dockerfile from the busybox image, built with --no-cache
# and then fully cached; and a cached rebuild of a context of BIG_MB MiB of random data that the
# Dockerfile copies whole (COPY . /ctx), so both engines must take in and check every byte.

bench_build() {
  local small=$WORK/build-small big=$WORK/build-big e i
  mkdir -p "$small" "$big"
  printf 'hello\n' >"$small/file.txt"
  printf 'FROM %s\nRUN echo built > /built\nCOPY file.txt /file.txt\nCMD ["cat", "/built"]\n' "$IMAGE" >"$small/Dockerfile"
  for ((i = 0; i < BIG_MB / 4; i++)); do head -c 4194304 /dev/urandom >"$big/blob$i"; done
  printf 'FROM %s\nCOPY . /ctx\nCMD ["ls", "/ctx"]\n' "$IMAGE" >"$big/Dockerfile"
  note_others
  log "timing: docker build --no-cache ($WARMUP warm-ups + $BUILD_RUNS runs per engine, interleaved)"
  interleaved build_nocache "$WARMUP" "$BUILD_RUNS" timed build --no-cache -t bbuild:1 "$small"
  log "timing: docker build, cached"
  interleaved build_cached "$WARMUP" "$BUILD_RUNS" timed build -t bbuild:1 "$small"
  log "timing: docker build, $BIG_MB MiB context, cached (1 warm-up builds it + $BIG_RUNS runs)"
  interleaved build_big 1 "$BIG_RUNS" timed build -t bbig:1 "$big"
  for e in $ENGINES; do
    [ "$(dk "$e" run --rm bbuild:1)" = built ] || die "$e: the built image does not run as built"
    record build_nocache "$e" "$WORK/samples/build_nocache.$e" 1000 '%.1f ms'
    record build_cached "$e" "$WORK/samples/build_cached.$e" 1000 '%.1f ms'
    record build_big "$e" "$WORK/samples/build_big.$e" 1000 '%.1f ms'
  done
}

# ---------------------------------------------------------------------------------------------
# docker push and pull of an image with one REG_MB MiB layer of random data (gzip cannot shrink
# it, so compression costs its full price). Berth's engine talks to `berth registry`, Docker's to
# distribution's reference registry; both plain HTTP on 127.0.0.1 (insecure by default for both
# engines). Every push goes to an emptied registry, every pull to an engine without the image.

declare -A REG_PID=() REG_ADDR=()

start_registry() {
  local e=$1 port dir i
  [ "$e" = berth ] && port=$REG_PORT || port=$((REG_PORT + 1))
  dir=$WORK/reg-$e
  rm -rf "$dir" && mkdir -p "$dir/data"
  REG_ADDR[$e]=127.0.0.1:$port
  if [ "$e" = berth ]; then
    "$BERTH" registry --addr "${REG_ADDR[$e]}" --data-dir "$dir/data" >>"$WORK/registry-$e.log" 2>&1 &
  else
    printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n' \
      "$dir/data" "${REG_ADDR[$e]}" >"$dir/config.yml"
    "$WORK/dist/registry" serve "$dir/config.yml" >>"$WORK/registry-$e.log" 2>&1 &
  fi
  REG_PID[$e]=$!
  for ((i = 0; i < 100; i++)); do
    curl -s -o /dev/null "http://${REG_ADDR[$e]}/v2/" && return 0
    sleep 0.1
  done
  tail -n 20 "$WORK/registry-$e.log" >&2
  die "$e's registry did not start"
}

stop_registry() {
  local e=$1
  [ -n "${REG_PID[$e]:-}" ] || return 0
  kill -TERM "${REG_PID[$e]}" 2>/dev/null || true
  wait "${REG_PID[$e]}" 2>/dev/null || true
  REG_PID[$e]=
}

# timed_push ENGINE: a push of the big image to a freshly emptied registry
timed_push() {
  local e=$1
  stop_registry "$e"
  start_registry "$e"
  timed "$e" push "${REG_ADDR[$e]}/big:1"
}

# timed_pull ENGINE: a pull of the big image into an engine that does not have it
timed_pull() {
  local e=$1
  dk "$e" rmi -f "${REG_ADDR[$e]}/big:1" >/dev/null 2>&1 || true
  dk "$e" image prune -f >/dev/null 2>&1 || true
  timed "$e" pull "${REG_ADDR[$e]}/big:1"
}

bench_registry() {
  local ctx=$WORK/reg-ctx e
  mkdir -p "$ctx"
  head -c $((REG_MB << 20)) /dev/urandom >"$ctx/big"
  printf 'FROM %s\nCOPY big /big\n' "$IMAGE" >"$ctx/Dockerfile"
  for e in $ENGINES; do
    start_registry "$e"
    dk "$e" build -q -t "${REG_ADDR[$e]}/big:1" "$ctx" >/dev/null || die "$e: building the $REG_MB MiB image failed"
  done
  note_others
  log "timing: docker push of a $REG_MB MiB layer ($REG_RUNS runs per engine, interleaved)"
  interleaved push 0 "$REG_RUNS" timed_push
  log "timing: docker pull of a $REG_MB MiB layer ($REG_RUNS runs per engine, interleaved)"
  interleaved pull 0 "$REG_RUNS" timed_pull
  for e in $ENGINES; do
    [ "$(dk "$e" run --rm "${REG_ADDR[$e]}/big:1" sh -c 'wc -c < /big')" = $((REG_MB << 20)) ] ||
      die "$e: the pulled image does not hold the layer"
    record push "$e" "$WORK/samples/push.$e" 1000 '%.1f ms'
    record pull "$e" "$WORK/samples/pull.$e" 1000 '%.1f ms'
    stop_registry "$e"
  done
}

# ---------------------------------------------------------------------------------------------
# Report

SIZE=$(awk -v s="$LOAD_SIZE" 'BEGIN {if (s % 1048576 == 0) printf "%d MiB", s / 1048576; else printf "%d KiB", s / 1024}')
METRICS=()
suite engine && METRICS+=(run run_none first200 ps idle_rss shim_pss tput_published tput_direct tput_ratio)
suite build && METRICS+=(build_nocache build_cached build_big)
suite registry && METRICS+=(push pull)
declare -A LABEL=(
  [run]="docker run --rm bb true"
  [run_none]="docker run --rm --network none bb true"
  [first200]="docker run -d -p + httpd, to first HTTP 200"
  [ps]="docker ps, $PS_CONTAINERS running"
  [idle_rss]="engine idle RSS"
  [shim_pss]="supervisor PSS per container ($SHIM_CONTAINERS running)"
  [tput_published]="GET $SIZE via 127.0.0.1:published port"
  [tput_direct]="GET $SIZE straight to container IP:80"
  [tput_ratio]="throughput published / direct"
  [build_nocache]="docker build --no-cache (RUN, COPY, CMD)"
  [build_cached]="docker build, every step cached"
  [build_big]="docker build, $BIG_MB MiB context, cached"
  [push]="docker push, one $REG_MB MiB random layer"
  [pull]="docker pull, one $REG_MB MiB random layer"
)
declare -A UNIT=([run]=ms [run_none]=ms [first200]=ms [ps]=ms [idle_rss]=MiB [shim_pss]=MiB
  [tput_published]=MiB/s [tput_direct]=MiB/s [tput_ratio]="" [build_nocache]=ms [build_cached]=ms [build_big]=ms [push]=ms [pull]=ms)
declare -A FMT=([shim_pss]=%.2f [tput_published]=%.0f [tput_direct]=%.0f [tput_ratio]=%.3f) # default %.1f
# TARGET: "<=X" is on the ratio berth / docker; ">=X" on Berth's own value (higher is better).
# No target: the row is for reference.
declare -A TARGET=([run]="<=0.20" [run_none]="<=0.15" [first200]="<=0.30" [ps]="<=0.80"
  [idle_rss]="<=0.40" [shim_pss]="<=0.50" [tput_ratio]=">=0.90"
  [build_nocache]="<=0.45" [build_cached]="<=0.60" [build_big]="<=0.50" [push]="<=0.50" [pull]="<=0.60")
MISSED=0

report() {
  local m b d ratio verdict fmt e target
  {
    echo "Berth vs Docker benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "host: $(nproc) CPUs, kernel $(uname -r); client: docker $("$DOCKER" version -f '{{.Client.Version}}' 2>/dev/null)"
    uses docker && echo "docker: $(dk docker version -f '{{.Server.Version}}' 2>/dev/null), storage $(dk docker info -f '{{.Driver}}' 2>/dev/null), containerd $(dk docker info -f '{{.ContainerdCommit.ID}}' 2>/dev/null)"
    uses docker && echo "docker run-time state (--exec-root): $([ "$DOCKER_EXEC_TMPFS" = 1 ] && echo tmpfs || echo "on $(stat -f -c %T "$WORK")"); berth's run dir: $(stat -f -c %T "$WORK/b/run" 2>/dev/null || echo '?')"
    uses berth && echo "berth: $(dk berth version -f '{{.Server.Version}}' 2>/dev/null) ($BERTH)"
    echo "load average: $LOAD_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
    if [ -s "$WORK/others" ]; then
      echo "NOTE: engines not started by this run were running during it (pids $(sort -un "$WORK/others" | paste -sd' ')): expect noise"
    fi
    echo "network: $([ "$STAGE" = netns ] && echo "private namespace (unshare --net)" || echo "host namespace")"
    echo "runs: $WARMUP warm-ups + $RUNS timed per engine (docker run), $NET_RUNS (docker run -d -p), $PS_RUNS (docker ps); medians; engines interleaved"
    echo "first HTTP 200: timed from just before docker run -d; polled every 2 ms $POLL it (POLL=$POLL)"
    echo "throughput: $LOAD_ROUNDS rounds of ${LOAD_SECONDS}s per engine and path after a 1 s warm-up, $LOAD_CONNS connections; medians"
    echo "ratio = berth / docker (lower is better for time and memory); verdict: ok when ratio <= target;"
    echo "  a target '>=' is on Berth's own value (published / direct throughput: higher is better)"
    echo
    printf '%-46s %11s %11s %7s %7s  %s\n' metric berth docker ratio target verdict
    printf '%-46s %11s %11s %7s %7s  %s\n' ------ ----- ------ ----- ------ -------
    for m in "${METRICS[@]}"; do
      b=${MED[$m.berth]:-} d=${MED[$m.docker]:-} ratio=- verdict=- target=${TARGET[$m]:-}
      fmt=${FMT[$m]:-%.1f}
      if [ -n "$b" ] && [ -n "$d" ] && [ "$m" != tput_ratio ]; then
        ratio=$(awk -v b="$b" -v d="$d" 'BEGIN {printf "%.3f", b / d}')
      fi
      case $target in
        "<="*) [ "$ratio" = - ] || verdict=$(awk -v r="$ratio" -v t="${target#<=}" 'BEGIN {print (r <= t) ? "ok" : "MISS"}') ;;
        ">="*) [ -z "$b" ] || verdict=$(awk -v v="$b" -v t="${target#>=}" 'BEGIN {print (v >= t) ? "ok" : "MISS"}') ;;
      esac
      [ "$verdict" = MISS ] && MISSED=1
      [ -n "$b" ] && b=$(printf "$fmt %s" "$b" "${UNIT[$m]}") || b=-
      [ -n "$d" ] && d=$(printf "$fmt %s" "$d" "${UNIT[$m]}") || d=-
      printf '%-46s %11s %11s %7s %7s  %s\n' "${LABEL[$m]}" "${b% }" "${d% }" "$ratio" "${target:--}" "$verdict"
    done
    echo
    echo "details:"
    for m in "${METRICS[@]}"; do
      for e in $ENGINES; do
        if [ -n "${DETAIL[$m.$e]:-}" ]; then printf '  %-9s %-7s %s\n' "$m" "$e" "${DETAIL[$m.$e]}"; fi
      done
    done
    echo "  engine idle RSS is: berth = the 'berth engine' process; docker = dockerd + its containerd"
    echo "  published ports: berth forwards with nftables DNAT in the kernel, and connects clients of"
    echo "  127.0.0.1:PORT straight to the container (eBPF connect4, docs/networking.md); docker 20.10 sends traffic to"
    echo "  127.0.0.1 through its userland docker-proxy (one process per port), which is what the first200"
    echo "  and throughput rows measure for it"
    if [ -n "${MED[cli.docker]:-}" ]; then
      # shellcheck disable=SC2016 # literal backquotes
      printf '  client floor: `docker --version` takes %.1f ms (median); it is inside every timed command\n' "${MED[cli.docker]}"
    fi
    if [ -n "${MED[alone.run_none]:-}" ] && [ -n "${MED[alone.ps]:-}" ]; then
      printf '  client alone (bench/clientonly answers every request at once): docker run --rm --network none %.1f ms,\n' "${MED[alone.run_none]}"
      printf '  docker ps %.1f ms (the same %d containers listed); no engine can make a command faster than that' "${MED[alone.ps]}" "$PS_CONTAINERS"
      if [ -n "${MED[run_none.docker]:-}" ] && [ -n "${MED[ps.docker]:-}" ]; then
        awk -v a="${MED[alone.run_none]}" -v d="${MED[run_none.docker]}" -v b="${MED[alone.ps]}" -v e="${MED[ps.docker]}" \
          'BEGIN {printf ":\n  the lowest ratios possible against Docker here are %.3f (run --network none) and %.3f (ps)\n", a / d, b / e}'
      else
        echo
      fi
    fi
  } >"$OUT.tmp" # a group, not a pipeline: MISSED must survive it
  cat "$OUT.tmp"
  mv "$OUT.tmp" "$OUT"
  log "written to $OUT"
}

# The client's own start-up cost, part of every timed command for both engines: context for
# how low a latency ratio can possibly go.
bench_client_floor() {
  local i t0 t1
  for ((i = 0; i < RUNS; i++)); do
    t0=${EPOCHREALTIME/./}
    "$DOCKER" --version >/dev/null
    t1=${EPOCHREALTIME/./}
    echo $((t1 - t0)) >>"$WORK/samples/cli"
  done
  record cli docker "$WORK/samples/cli" 1000 '%.1f ms'
}

# The docker client alone: bench/clientonly answers every request `docker run --rm` and
# `docker ps` make at once (the list is the engine's own: the same containers), so these
# times are the client's own work, which is inside both engines' times. Nothing an engine
# does can take a command below it: X alone / Docker's X is the lowest ratio possible.
bench_client_alone() {
  local i end
  SOCK[alone]=$WORK/alone.sock
  "$WORK/clientonly" -sock "${SOCK[alone]}" -list-from "${SOCK[berth]:-${SOCK[docker]}}" >"$WORK/clientonly.log" 2>&1 &
  ALONE_PID=$!
  end=$((SECONDS + 10))
  until [ -S "${SOCK[alone]}" ]; do
    ((SECONDS < end)) && alive "$ALONE_PID" || die "bench/clientonly did not start: $(tail -n 3 "$WORK/clientonly.log")"
    sleep 0.05
  done
  log "timing: the docker client alone (bench/clientonly answers at once)"
  for ((i = 0; i < WARMUP + RUNS; i++)); do
    timed alone run --rm --network none "$IMAGE" true
    if ((i >= WARMUP)); then echo "$LAST_US" >>"$WORK/samples/alone_run"; fi
  done
  for ((i = 0; i < WARMUP + PS_RUNS; i++)); do
    timed alone ps
    if ((i >= WARMUP)); then echo "$LAST_US" >>"$WORK/samples/alone_ps"; fi
  done
  kill "$ALONE_PID"
  wait "$ALONE_PID" 2>/dev/null
  ALONE_PID=
  record alone run_none "$WORK/samples/alone_run" 1000 '%.1f ms'
  record alone ps "$WORK/samples/alone_ps" 1000 '%.1f ms'
}

main() {
  local e
  [ "$(id -u)" = 0 ] || die "must run as root (engines, bridges, iptables)"
  [ -n "$ENGINES" ] || die "ENGINES is empty"
  for e in $ENGINES; do
    case $e in berth | docker) ;; *) die "unknown engine '$e' (berth, docker)" ;; esac
  done
  if [ "$STAGE" = host ]; then
    # A short path: unix socket paths must stay below 108 bytes.
    WORK=$(mktemp -d /tmp/bb.XXXXXX)
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    prepare
    if [ "$NETNS" = 1 ]; then
      unshare --net true 2>/dev/null || die "unshare --net does not work here; NETNS=0 measures in the host's namespace"
      trap - EXIT INT TERM # the next stage owns WORK and cleans it up
      exec unshare --net env BENCH_STAGE=netns BENCH_WORK="$WORK" "$BASH" "${BASH_SOURCE[0]}" "$@"
    fi
  else
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    ip link set lo up
  fi
  preflight
  mkdir -p "$WORK/samples" "$(dirname "$OUT")"
  start_watchdog
  snapshot_host
  LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
  make_rootfs_tar
  if uses docker; then start_docker; fi
  if uses berth; then start_berth; fi
  for e in $ENGINES; do import_image "$e"; done

  bench_client_floor
  if suite engine; then
    bench_latency run run --rm "$IMAGE" true
    bench_latency run_none run --rm --network none "$IMAGE" true
    bench_first200
    bench_idle_rss
    bench_throughput
    bench_shim_pss
    bench_ps
    bench_client_alone
  fi
  if suite build; then bench_build; fi
  if suite registry; then bench_registry; fi
  report
  if [ "$STRICT" = 1 ] && [ "$MISSED" = 1 ]; then
    log "a target was missed"
    exit 2
  fi
}

main "$@"
