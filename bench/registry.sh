#!/usr/bin/env bash
# berth registry vs the reference registry (github.com/distribution/distribution/v3), side by side.
#
# Builds both (distribution's from the Go module proxy into a temp dir), runs them on 127.0.0.1
# on two ports with plain HTTP and filesystem storage in temp dirs, and times with curl, on a
# random blob of SIZE_MB MiB:
#   upload: a monolithic upload, POST to get a Location, then PUT --data-binary @file with
#           ?digest= (Content-Type application/octet-stream);
#   fetch:  GET of the blob to /dev/null.
# Runs alternate between the registries (B D, D B, ...) so background load hits both alike; the
# blob is deleted from each registry's storage after each run (outside the timed part) so every
# upload writes it anew, and `sync` runs before each upload (also untimed) so that no write-back
# of earlier runs lands inside a timed one. Prints the medians and the ratio berth/distribution
# (lower is better).
# Both registries fsync a blob before acknowledging it (berth starts write-back while the
# upload streams in, so its final fsync is short).
#
# Usage: bash bench/registry.sh
# Environment: RUNS=5 SIZE_MB=256 PORT_BERTH=15500 PORT_DIST=15501 GO=go
#              DIST_BIN=path (use this registry binary instead of building one)
#              OUT=<root>/bench/results/registry.txt
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-5}
SIZE_MB=${SIZE_MB:-256}
PORT_BERTH=${PORT_BERTH:-15500}
PORT_DIST=${PORT_DIST:-15501}
GO=${GO:-go}
OUT=${OUT:-$ROOT/bench/results/registry.txt}

WORK=$(mktemp -d /tmp/regbench.XXXXXX)
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	# Module cache files are read-only; make them removable.
	chmod -R u+w "$WORK" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "registry bench: $*" >&2; exit 1; }

for tool in curl sha256sum "$GO"; do
	command -v "$tool" >/dev/null || die "$tool is not installed"
done

echo "building berth..."
(cd "$ROOT" && "$GO" build -o "$WORK/berth" ./cmd/berth) || die "building berth failed"

if [[ -n ${DIST_BIN:-} ]]; then
	cp "$DIST_BIN" "$WORK/registry"
else
	echo "building github.com/distribution/distribution/v3/cmd/registry@latest from the module proxy..."
	mkdir -p "$WORK/gobin"
	if ! (cd "$WORK" && GOFLAGS=-mod=mod GOBIN="$WORK/gobin" "$GO" install \
		github.com/distribution/distribution/v3/cmd/registry@latest) >"$WORK/dist-build.log" 2>&1; then
		tail -20 "$WORK/dist-build.log" >&2
		die "could not build the reference registry (see above)"
	fi
	mv "$WORK/gobin/registry" "$WORK/registry"
fi

mkdir -p "$WORK/berth-data" "$WORK/dist-data"
cat >"$WORK/dist.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/dist-data
  delete:
    enabled: true
  redirect:
    disable: true
http:
  addr: 127.0.0.1:$PORT_DIST
EOF

"$WORK/berth" registry --addr "127.0.0.1:$PORT_BERTH" --data-dir "$WORK/berth-data" >"$WORK/berth.log" 2>&1 &
PIDS+=($!)
"$WORK/registry" serve "$WORK/dist.yml" >"$WORK/dist.log" 2>&1 &
PIDS+=($!)

wait_up() { # name port log
	local i
	for ((i = 0; i < 100; i++)); do
		curl -sf -o /dev/null "http://127.0.0.1:$2/v2/" && return 0
		sleep 0.1
	done
	tail -20 "$3" >&2
	die "$1 did not answer on 127.0.0.1:$2"
}
wait_up berth "$PORT_BERTH" "$WORK/berth.log"
wait_up distribution "$PORT_DIST" "$WORK/dist.log"

echo "making a ${SIZE_MB} MiB random blob..."
head -c $((SIZE_MB << 20)) /dev/urandom >"$WORK/blob"
DIGEST=sha256:$(sha256sum "$WORK/blob" | cut -d' ' -f1)
sync # the new file's write-back must not land inside a timed run
HEX=${DIGEST#sha256:}

port_of() { if [[ $1 == berth ]]; then echo "$PORT_BERTH"; else echo "$PORT_DIST"; fi; }

# upload REG REPO: POST for a Location, then PUT the blob there. Echoes the seconds taken.
upload() {
	local base="http://127.0.0.1:$(port_of "$1")" loc t0 t1 code
	t0=$EPOCHREALTIME
	loc=$(curl -sf -X POST -o /dev/null -D - "$base/v2/$2/blobs/uploads/" | tr -d '\r' |
		awk 'tolower($1) == "location:" { print $2 }')
	[[ -n $loc ]] || die "$1: POST gave no Location"
	[[ $loc == /* ]] && loc=$base$loc
	if [[ $loc == *\?* ]]; then loc="$loc&digest=$DIGEST"; else loc="$loc?digest=$DIGEST"; fi
	code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' \
		--data-binary @"$WORK/blob" "$loc")
	t1=$EPOCHREALTIME
	[[ $code == 201 ]] || die "$1: upload answered $code"
	echo "$t0 $t1" | awk '{ printf "%.4f\n", $2 - $1 }'
}

# fetch REG REPO: GET the blob. Echoes the seconds taken.
fetch() {
	local t0 t1 code
	t0=$EPOCHREALTIME
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(port_of "$1")/v2/$2/blobs/$DIGEST")
	t1=$EPOCHREALTIME
	[[ $code == 200 ]] || die "$1: fetch answered $code"
	echo "$t0 $t1" | awk '{ printf "%.4f\n", $2 - $1 }'
}

# forget REG: delete the blob from the registry's storage so the next upload writes it anew.
forget() {
	if [[ $1 == berth ]]; then
		rm -f "$WORK/berth-data/blobs/sha256/${HEX:0:2}/$HEX"
	else
		rm -rf "$WORK/dist-data/docker/registry/v2/blobs/sha256/${HEX:0:2}/$HEX"
	fi
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A UP FETCH
echo "timing $RUNS uploads and fetches per registry, interleaved..."
for ((i = 1; i <= RUNS; i++)); do
	if ((i % 2)); then order="berth dist"; else order="dist berth"; fi
	for reg in $order; do
		repo="bench/run$i"
		sync # start every upload with no dirty data of earlier runs waiting to be written
		UP[$reg]+="$(upload "$reg" "$repo") "
		FETCH[$reg]+="$(fetch "$reg" "$repo") "
		forget "$reg"
	done
done

mb=$SIZE_MB
report() {
	local bu du bf df
	bu=$(tr ' ' '\n' <<<"${UP[berth]}" | grep . | median)
	du=$(tr ' ' '\n' <<<"${UP[dist]}" | grep . | median)
	bf=$(tr ' ' '\n' <<<"${FETCH[berth]}" | grep . | median)
	df=$(tr ' ' '\n' <<<"${FETCH[dist]}" | grep . | median)
	echo "# berth registry vs distribution $("$WORK/registry" --version 2>/dev/null | awk '{print $NF}')"
	echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# ${mb} MiB random blob, curl over 127.0.0.1, plain HTTP, medians of $RUNS interleaved runs"
	printf '%-28s %10s %14s %8s\n' metric berth distribution ratio
	awk -v b="$bu" -v d="$du" -v mb="$mb" 'BEGIN { printf "%-28s %9.3fs %13.3fs %8.2f\n", "upload (POST + PUT)", b, d, b / d;
		printf "%-28s %6.0f MiB/s %9.0f MiB/s\n", "  throughput", mb / b, mb / d }'
	awk -v b="$bf" -v d="$df" -v mb="$mb" 'BEGIN { printf "%-28s %9.3fs %13.3fs %8.2f\n", "fetch (GET)", b, d, b / d;
		printf "%-28s %6.0f MiB/s %9.0f MiB/s\n", "  throughput", mb / b, mb / d }'
	echo "# runs (s): berth upload ${UP[berth]}| dist upload ${UP[dist]}"
	echo "#           berth fetch ${FETCH[berth]}| dist fetch ${FETCH[dist]}"
}
mkdir -p "$(dirname "$OUT")"
report | tee "$OUT"
