#!/usr/bin/env bash
# peers-hits.sh: the hit path of cellar, Varnish and nginx measured with an
# external load generator (`make bench-peers`). Each server runs pinned to
# CPU 0 (taskset), with the origin (a static nginx) on the same CPU, and
# wrk -t1 -c64 pinned to CPU 1 replays a hot set of 1000 URLs, every
# request a memory hit after a warm-up, at 1 KiB and at 100 KiB. cellar
# runs at its defaults (access log on, written to a file). The servers are
# measured ROUNDS times, interleaved (the order rotates each round), and the
# table gives the medians with ratios to cellar; the raw runs are printed
# too. On a machine where other work runs, read the ratios of one round
# and the medians, not single numbers.
#
# Installs varnish, nginx-light and wrk from Debian when absent (needs
# root and apt-get). Ports PORT_BASE (origin), PORT_BASE+80/+81 (cellar, its
# admin), +82 (Varnish) and +83 (nginx) must be free; PORT_BASE is 19000
# unless set, so that two runs on one machine can use different ports.
#
# Usage: bench/peers-hits.sh [OUT]   (OUT defaults to a new /tmp directory)
# Environment: ROUNDS (3), DURATION (10s per measurement), WARMUP (3s),
# URLS (1000), BUDGET (256MiB), SERVERS ("cellar varnish nginx"; also
# "cellar-nethttp": cellar with `server: {engine: net/http}`, to compare
# its HTTP/1.x engines in one run; "cellar-poller": cellar with `server:
# {poller: true}`, the default; "cellar-nopoller": with `server: {poller:
# false}`; "cellar-nolog": with `-access-log=false`, as the peers run
# here, to show what the default access log costs). The runs also give each server's CPU
# time per request (user + system, µs), which other load on the machine
# disturbs less than requests/s, and "other CPU %": the share of the
# machine's CPUs that went to anything but the server, the origin and wrk
# during the measurement (other processes, a hypervisor's steal, and the
# kernel's loopback work outside them: a few percent on a quiet machine).
# A run with more than that was disturbed; compare it with care. "wrk CPU
# %" is the load generator's share of its CPU: near 100 it is a bottleneck
# as well, and the latencies it reports include its own backlog (a server
# that answers faster then shows a longer tail).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
peers=$here/testdata/peers
out=${1:-$(mktemp -d /tmp/cellar-hits.XXXXXX)}
mkdir -p "$out"
rounds=${ROUNDS:-3}
duration=${DURATION:-10s}
warmup=${WARMUP:-3s}
urls=${URLS:-1000}
budget=${BUDGET:-256MiB}
servers=(${SERVERS:-cellar varnish nginx})
base_port=${PORT_BASE:-19000}
origin_port=$base_port
cellar_port=$((base_port + 80))
admin_port=$((base_port + 81))
varnish_port=$((base_port + 82))
nginx_port=$((base_port + 83))

need=()
command -v varnishd >/dev/null || need+=(varnish)
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
if ((${#need[@]})); then
	echo "peers-hits.sh: installing ${need[*]}" >&2
	sudo=""
	[[ $(id -u) == 0 ]] || sudo=sudo
	$sudo apt-get update -q >&2
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}" >&2
fi
for tool in go taskset varnishd nginx wrk; do
	command -v "$tool" >/dev/null || { echo "peers-hits.sh: $tool not found" >&2; exit 1; }
done
if (($(nproc) < 2)); then
	echo "peers-hits.sh: needs two CPUs (server on 0, wrk on 1)" >&2
	exit 1
fi
for port in $origin_port $cellar_port $admin_port $varnish_port $nginx_port; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "peers-hits.sh: 127.0.0.1:$port is in use" >&2
		exit 1
	fi
done

# tmpfs when there is one: nginx's cache and the origin's files.
base=/dev/shm
[[ -d $base && -w $base ]] || base=/tmp
work=$(mktemp -d "$base/cellar-hits-work.XXXXXX")
chmod 755 "$work" # nginx workers and Varnish drop root and must reach it
pids=()

stop_all() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	pids=()
}
cleanup() {
	stop_all
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
		sleep 0.1
	done
	echo "peers-hits.sh: nothing listens on 127.0.0.1:$1" >&2
	return 1
}

# rss_kib PID: resident memory of PID and its descendants, in KiB.
rss_kib() {
	local total kid
	total=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true)
	total=${total:-0}
	for kid in $(pgrep -P "$1" || true); do
		total=$((total + $(rss_kib "$kid")))
	done
	echo "$total"
}

# cpu_ticks PID: user and system CPU time of PID and its descendants, in
# clock ticks.
cpu_ticks() {
	local total kid
	total=$(awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || true)
	total=${total:-0}
	for kid in $(pgrep -P "$1" || true); do
		total=$((total + $(cpu_ticks "$kid")))
	done
	echo "$total"
}

# busy_ticks: the CPU time the whole machine spent (every CPU; interrupts
# and the time a hypervisor took from it included), in clock ticks.
busy_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

echo "peers-hits.sh: building cellar" >&2
(cd "$root" && go build -o "$work/cellar" ./cmd/cellar)

# The origin: a static nginx serving 1000 files of each size with a long
# shared lifetime, pinned to CPU 0 with the server under test.
mkdir -p "$work/origin/tmp" "$work/origin/www/1k" "$work/origin/www/100k"
head -c 768 /dev/urandom | base64 -w0 >"$work/origin/one"        # 1024 bytes
head -c 76800 /dev/urandom | base64 -w0 >"$work/origin/hundred"  # 102400 bytes
for ((i = 0; i < urls; i++)); do
	ln "$work/origin/one" "$work/origin/www/1k/$i"
	ln "$work/origin/hundred" "$work/origin/www/100k/$i"
done
cat >"$work/origin/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid nginx.pid;
error_log error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    server {
        listen 127.0.0.1:$origin_port;
        root $work/origin/www;
        add_header Cache-Control "public, max-age=3600";
    }
}
EOF
taskset -c 0 nginx -p "$work/origin/" -c "$work/origin/nginx.conf" -e "$work/origin/error.log" >"$out/origin.log" 2>&1 &
origin_pid=$!
await $origin_port

# The load: a Lua script that walks the hot set and reports requests/s,
# p99 and errors as one line. The requests are formatted once, in init:
# formatting one per request cost wrk CPU it needs to keep up with the
# servers at 1 KiB.
cat >"$work/hot.lua" <<EOF
local reqs = {}
local n = 0
init = function(args)
    for i = 0, $urls - 1 do
        reqs[i] = wrk.format("GET", wrk.path .. i)
    end
end
request = function()
    n = n + 1
    return reqs[n % $urls]
end
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT %.0f %.3f %d %.3f %.3f\n",
        summary.requests / (summary.duration / 1e6),
        latency:percentile(99) / 1000,
        e.connect + e.read + e.write + e.timeout + e.status,
        latency:percentile(50) / 1000, latency:percentile(90) / 1000))
end
EOF

# start NAME: starts the server NAME pinned to CPU 0; sets pid and port.
start() {
	case $1 in
	cellar | cellar-nethttp | cellar-poller | cellar-nopoller | cellar-nolog)
		port=$cellar_port
		mkdir -p "$work/cellar-data"
		rm -rf "${work:?}/cellar-data/"*
		local config=()
		# Each start writes a new log, as its data directory starts empty:
		# appended over the rounds, the log took about 200 MiB of this
		# tmpfs a round.
		rm -f "$work/cellar-access.log"
		local log=(-access-log-path "$work/cellar-access.log")
		if [[ $1 == cellar-nethttp ]]; then
			printf 'server:\n  engine: net/http\n' >"$work/nethttp.yaml"
			config=(-config "$work/nethttp.yaml")
		elif [[ $1 == cellar-poller ]]; then
			printf 'server:\n  poller: true\n' >"$work/poller.yaml"
			config=(-config "$work/poller.yaml")
		elif [[ $1 == cellar-nopoller ]]; then
			printf 'server:\n  poller: false\n' >"$work/nopoller.yaml"
			config=(-config "$work/nopoller.yaml")
		elif [[ $1 == cellar-nolog ]]; then
			log=(-access-log=false)
		fi
		# Defaults, access log included (to a file, as in production).
		taskset -c 0 "$work/cellar" serve "${config[@]}" -origin http://127.0.0.1:$origin_port -listen 127.0.0.1:$cellar_port \
			-admin 127.0.0.1:$admin_port -data-dir "$work/cellar-data" -memory "$budget" -disk "$budget" \
			"${log[@]}" 2>>"$out/cellar.log" &
		;;
	varnish)
		port=$varnish_port
		local mb=$(($(numfmt --from=iec "${budget%iB}") >> 20))
		sed -e "s/\"19000\"/\"$origin_port\"/" "$peers/varnish.vcl" >"$work/varnish.vcl"
		taskset -c 0 varnishd -F -n "$work/varnish" -a 127.0.0.1:$varnish_port -T none -f "$work/varnish.vcl" \
			-s "malloc,${mb}m" >>"$out/varnish.log" 2>&1 &
		;;
	nginx)
		port=$nginx_port
		local mb=$(($(numfmt --from=iec "${budget%iB}") >> 20))
		rm -rf "$work/nginx"
		mkdir -p "$work/nginx/tmp"
		sed -e "s/max_size=256m/max_size=${mb}m/" -e "s/^worker_processes .*/worker_processes 1;/" \
			-e "s/127\.0\.0\.1:19000;/127.0.0.1:$origin_port;/" -e "s/127\.0\.0\.1:19083;/127.0.0.1:$nginx_port;/" \
			"$peers/nginx.conf" >"$work/nginx/nginx.conf"
		taskset -c 0 nginx -p "$work/nginx/" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" \
			>>"$out/nginx.log" 2>&1 &
		;;
	esac
	pid=$!
	pids=("$origin_pid" "$pid")
	await "$port"
}

# hitcheck PORT PATH: the response's cache field says hit.
hitcheck() {
	local h
	h=$(curl -s -o /dev/null -D - "http://127.0.0.1:$1$2" | tr -d '\r')
	grep -qiE '^(cache-status: .*hit|x-cache: HIT|x-cache-status: HIT)' <<<"$h" || {
		echo "peers-hits.sh: $2 on port $1 is not a hit:" >&2
		echo "$h" >&2
		return 1
	}
}

results=$out/runs.txt
: >"$results"
echo "| round | server | size | requests/s | p50 / p90 / p99 ms | errors | RSS MiB | CPU µs/request | wrk CPU % | other CPU % |" >"$out/runs.md"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |" >>"$out/runs.md"
for ((round = 1; round <= rounds; round++)); do
	order=("${servers[@]:$(((round - 1) % ${#servers[@]}))}" "${servers[@]:0:$(((round - 1) % ${#servers[@]}))}")
	for name in "${order[@]}"; do
		echo "peers-hits.sh: round $round: $name" >&2
		start "$name"
		for size in 1k 100k; do
			# Warm up until the whole hot set is stored (a loaded machine
			# may not cover it in one warm-up).
			for try in 1 2 3 4 5 6; do
				taskset -c 1 wrk -t1 -c64 -d"$warmup" -s "$work/hot.lua" "http://127.0.0.1:$port/$size/" >/dev/null
				hitcheck "$port" "/$size/0" 2>/dev/null && hitcheck "$port" "/$size/$((urls / 2))" 2>/dev/null &&
					hitcheck "$port" "/$size/$((urls - 1))" 2>/dev/null && break
				((try < 6)) || hitcheck "$port" "/$size/$((urls - 1))"
			done
			cpu0=$(cpu_ticks "$pid")
			org0=$(cpu_ticks "$origin_pid")
			busy0=$(busy_ticks)
			# The subshell prints wrk's line, then the CPU time of the
			# children it waited for (wrk): fields 16 and 17 of its stat.
			out2=$(
				taskset -c 1 wrk -t1 -c64 -d"$duration" -s "$work/hot.lua" "http://127.0.0.1:$port/$size/" | grep '^RESULT'
				read -r -a st <"/proc/$BASHPID/stat"
				echo "LOADGEN $((st[15] + st[16]))"
			)
			busy1=$(busy_ticks)
			cpu1=$(cpu_ticks "$pid")
			org1=$(cpu_ticks "$origin_pid")
			line=$(grep '^RESULT' <<<"$out2")
			wrkt=$(awk '/^LOADGEN/ {print $2}' <<<"$out2")
			read -r _ rps p99 errs p50 p90 <<<"$line"
			# What else ran: the machine's CPU time beyond the server's,
			# the origin's and wrk's, as a share of all its CPUs (the
			# kernel's work for loopback traffic outside those processes
			# included, so a quiet machine shows a few percent).
			other=$(awk -v b="$((busy1 - busy0 - (cpu1 - cpu0) - (org1 - org0) - ${wrkt:-0}))" \
				-v hz="$(getconf CLK_TCK)" -v n="$(nproc)" -v d="${duration%s}" \
				'BEGIN {v = b / (hz * n * d) * 100; if (v < 0) v = 0; printf "%.1f", v}')
			# wrk's share of its CPU: near 100, the load generator is a
			# bottleneck too, and its latencies include its own backlog.
			wrkcpu=$(awk -v t="${wrkt:-0}" -v hz="$(getconf CLK_TCK)" -v d="${duration%s}" 'BEGIN {printf "%.0f", t / (hz * d) * 100}')
			rss=$(($(rss_kib "$pid") / 1024))
			cpu=$(awk -v t="$((cpu1 - cpu0))" -v hz="$(getconf CLK_TCK)" -v r="$rps" -v d="${duration%s}" \
				'BEGIN {if (r > 0) printf "%.2f", t / hz * 1e6 / (r * d); else print "n/a"}')
			echo "$name $size $rps $p99 $errs $rss $round $cpu $other $wrkcpu $p50 $p90" >>"$results"
			echo "| $round | $name | $size | $rps | $p50 / $p90 / $p99 | $errs | $rss | $cpu | $wrkcpu | $other |" >>"$out/runs.md"
		done
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		pids=("$origin_pid")
	done
done

# median NAME SIZE FIELD: the median over the rounds (field 3 requests/s,
# 4 p99, 6 RSS, 11 p50).
median() {
	awk -v n="$1" -v s="$2" -v f="$3" '$1 == n && $2 == s {print $f}' "$results" | sort -g |
		awk '{v[NR] = $1} END {if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }

echo
echo "Hits from memory: $urls hot URLs, wrk -t1 -c64 on CPU 1, each server and the origin on CPU 0,"
echo "$duration per measurement after a $warmup warm-up, medians of $rounds interleaved rounds; cellar at its defaults."
echo
echo "| server | 1 KiB req/s | 1 KiB p50 / p99 ms | 100 KiB req/s | 100 KiB p50 / p99 ms | RSS MiB (after 100 KiB) | req/s vs cellar (1 KiB / 100 KiB) | p99 vs cellar (1 KiB / 100 KiB) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
c1=$(median cellar 1k 3)
c100=$(median cellar 100k 3)
p1=$(median cellar 1k 4)
p100=$(median cellar 100k 4)
for name in "${servers[@]}"; do
	r1=$(median "$name" 1k 3)
	r100=$(median "$name" 100k 3)
	q1=$(median "$name" 1k 4)
	q100=$(median "$name" 100k 4)
	echo "| $name | $r1 | $(median "$name" 1k 11) / $q1 | $r100 | $(median "$name" 100k 11) / $q100 | $(median "$name" 100k 6) | $(ratio "$r1" "$c1") / $(ratio "$r100" "$c100") | $(ratio "$q1" "$p1") / $(ratio "$q100" "$p100") |"
done
echo
echo "Every run (wrk CPU %: the load generator's share of its CPU; other CPU %: the machine's CPU time beyond the server's, the origin's and wrk's, as a share of all CPUs):"
echo
cat "$out/runs.md"
echo "logs in $out" >&2
