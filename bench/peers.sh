#!/usr/bin/env bash
# peers.sh: cellar, Varnish and nginx as caching reverse proxies in front of
# the same origin, on the same workload, one after the other, on this
# machine (loopback only). Each proxy starts with an empty cache and a
# 256 MiB budget, the workload is replayed through it by `cellar bench
# http` (which also starts the origin on 127.0.0.1:19000 and counts what
# reaches it), and the proxy is stopped. A first run without a proxy gives
# the origin's own speed. Prints a table with ratios to cellar, and writes
# the JSON reports and a latency plot to $OUT.
#
# Needs: go, varnishd, nginx, jq. Ports 19000 (origin), 19080/19081 (cellar,
# its admin), 19082 (Varnish), 19083 (nginx) must be free; the Varnish and
# nginx ports are also written in testdata/peers/.
#
# Usage: bench/peers.sh [OUT]   (OUT defaults to a new /tmp directory)
# Environment: REQUESTS (200000), OBJECTS (20000), CONCURRENCY (32),
# DURATION (55s, the bound of each run), SEED (7), BUDGET (256MiB).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
peers=$here/testdata/peers
out=${1:-$(mktemp -d /tmp/cellar-peers.XXXXXX)}
mkdir -p "$out"
requests=${REQUESTS:-200000}
objects=${OBJECTS:-20000}
concurrency=${CONCURRENCY:-32}
duration=${DURATION:-55s}
seed=${SEED:-7}
budget=${BUDGET:-256MiB}

for tool in go varnishd nginx jq; do
	command -v "$tool" >/dev/null || { echo "peers.sh: $tool not found" >&2; exit 1; }
done
for port in 19000 19080 19081 19082 19083; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "peers.sh: 127.0.0.1:$port is in use" >&2
		exit 1
	fi
done

work=$(mktemp -d /tmp/cellar-peers-work.XXXXXX)
chmod 755 "$work" # nginx workers and Varnish drop root and must reach it
pid=""

# stop ends the proxy this script started last, and waits for it.
stop() {
	if [[ -n $pid ]]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		pid=""
	fi
}
cleanup() {
	stop
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# await waits up to 20 s for 127.0.0.1:$1 to accept connections.
await() {
	for _ in $(seq 200); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "peers.sh: the proxy for port $1 exited" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "peers.sh: nothing listens on 127.0.0.1:$1" >&2
	return 1
}

(cd "$root" && go build -o "$work/cellar" ./cmd/cellar)
workload=(-origin-listen 127.0.0.1:19000 -cache-control "public, max-age=3600"
	-zipf 0.9 -objects "$objects" -size-median 4KiB -size-sigma 0.5
	-requests "$requests" -concurrency "$concurrency" -duration "$duration" -seed "$seed")

# run NAME PORT [extra flags]: replay the workload through 127.0.0.1:PORT
# (no proxy when PORT is empty).
run() {
	local name=$1 port=$2
	shift 2
	local target=()
	[[ -n $port ]] && target=(-proxy "http://127.0.0.1:$port")
	echo "peers.sh: $name" >&2
	# Warm up threads and connections on other URLs (/warm/KEY), so that the
	# workload starts from an empty cache but not from a cold process.
	"$work/cellar" bench http "${target[@]}" -origin-listen 127.0.0.1:19000 -path-prefix /warm/ \
		-objects 100 -requests 2000 -concurrency "$concurrency" >/dev/null 2>&1
	"$work/cellar" bench http "${target[@]}" "${workload[@]}" -label "$name" -json "$@" >"$out/$name.json"
}

run origin ""

mkdir -p "$work/cellar-data"
"$work/cellar" serve -origin http://127.0.0.1:19000 -listen 127.0.0.1:19080 -admin 127.0.0.1:19081 \
	-data-dir "$work/cellar-data" -memory "$budget" -disk "$budget" -access-log=false 2>"$out/cellar.log" &
pid=$!
await 19080
run cellar 19080
stop

mb=$(( $(numfmt --from=iec "${budget%iB}") >> 20 ))
varnishd -F -n "$work/varnish" -a 127.0.0.1:19082 -T none -f "$peers/varnish.vcl" \
	-s "malloc,${mb}m" >"$out/varnish.log" 2>&1 &
pid=$!
await 19082
run varnish 19082
stop

mkdir -p "$work/nginx/tmp"
sed "s/max_size=256m/max_size=${mb}m/" "$peers/nginx.conf" >"$work/nginx/nginx.conf"
nginx -p "$work/nginx/" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" >"$out/nginx.log" 2>&1 &
pid=$!
await 19083
run nginx 19083 -plot "$out/latency.svg" -plot-with "$out/origin.json,$out/cellar.json,$out/varnish.json"
stop

# The table: absolute numbers, then ratios to cellar measured in this run.
echo
echo "workload: Zipf 0.9, $objects objects (median 4KiB), $requests requests, concurrency $concurrency, seed $seed, budget $budget"
echo
echo "| target | requests | errors | origin offload | hit ratio (header) | requests/s | p50 ms | p99 ms | throughput / cellar | p50 / cellar | p99 / cellar |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
jq -rs '
	(map(select(.label == "cellar"))[0]) as $c
	| .[] | [.label, .requests, .errors,
		"\(100 * .origin_offload * 100 | round / 100)%",
		(if .cache_status_responses > 0 then "\(100 * .hit_ratio * 100 | round / 100)%" else "n/a" end),
		(.requests_per_second | round),
		(.p50_ms * 1000 | round / 1000), (.p99_ms * 1000 | round / 1000),
		(.requests_per_second / $c.requests_per_second * 100 | round / 100),
		(.p50_ms / $c.p50_ms * 100 | round / 100),
		(.p99_ms / $c.p99_ms * 100 | round / 100)]
	| "| " + (map(tostring) | join(" | ")) + " |"' \
	"$out/origin.json" "$out/cellar.json" "$out/varnish.json" "$out/nginx.json"
echo
echo "reports and latency.svg in $out" >&2
