#!/usr/bin/env bash
# ferry's Service proxy against Debian's nginx, reverse-proxying the same backend,
# measured with wrk in the same run. Prints req/s and p99 for each and the ratios
# (targets: throughput >= 0.9x nginx's, p99 <= 1.2x nginx's).
#
#   bash bench/proxy-vs-nginx.sh            # 3 rounds of 10 s per target
#   ROUNDS=5 DURATION=30s CONNECTIONS=64 bash bench/proxy-vs-nginx.sh
#
# nginx and ferry are measured alternately, ROUNDS times each, and the medians are
# compared, so that load from other processes hits both alike. When run as root,
# everything measured (wrk, backend, nginx, proxy) runs at nice -10 for the same
# reason. Everything listens on 127.0.0.1 and stops when the script exits.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-2} # proxy runtime threads and nginx worker processes

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
NICE=()
if [ "$(id -u)" = 0 ]; then NICE=(nice -n -10); fi

echo "building release examples..." >&2
cargo build --release -q -p ferry-runtime --example bench_backend --example bench_proxy
bin=${CARGO_TARGET_DIR:-target}/release/examples

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# A free TCP port on 127.0.0.1 (not listed by ss).
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 20000))
    if ! ss -Htln "sport = :$port" | grep -q .; then
      echo "$port"
      return
    fi
  done
}

wait_port() {
  for _ in $(seq 100); do
    if ss -Htln "sport = :$1" | grep -q .; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  exit 1
}

backend_port=$(free_port)
"${NICE[@]}" "$bin/bench_backend" "127.0.0.1:$backend_port" 2 >/dev/null &
pids+=($!)
wait_port "$backend_port"

proxy_port=$(free_port)
"${NICE[@]}" "$bin/bench_proxy" "127.0.0.1:$proxy_port" "127.0.0.1:$backend_port" "$WORKERS" http >/dev/null &
pids+=($!)
wait_port "$proxy_port"

nginx_port=$(free_port)
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes $WORKERS;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  upstream backend {
    server 127.0.0.1:$backend_port;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
"${NICE[@]}" "$NGINX" -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" &
pids+=($!)
wait_port "$nginx_port"

# wrk's "Requests/sec" and its 99th percentile in milliseconds.
measure() {
  local out
  out=$("${NICE[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$1/")
  if echo "$out" | grep -q "Non-2xx\|Socket errors"; then
    echo "$out" >&2
    echo "errors while measuring port $1" >&2
    exit 1
  fi
  local rps p99
  rps=$(echo "$out" | awk '/Requests\/sec:/ {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {
    v = $2
    if (v ~ /us$/) { sub(/us$/, "", v); v = v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v) }
    else if (v ~ /s$/) { sub(/s$/, "", v); v = v * 1000 }
    print v }')
  echo "$rps $p99"
}

warm() { "${NICE[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "http://127.0.0.1:$1/" >/dev/null; }

echo "warming up..." >&2
warm "$backend_port"
warm "$nginx_port"
warm "$proxy_port"

echo "measuring (wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency), $ROUNDS rounds..." >&2
read -r direct_rps direct_p99 < <(measure "$backend_port")
nginx_rpss=() nginx_p99s=() ferry_rpss=() ferry_p99s=()
for round in $(seq "$ROUNDS"); do
  read -r r p < <(measure "$nginx_port")
  nginx_rpss+=("$r") nginx_p99s+=("$p")
  read -r r p < <(measure "$proxy_port")
  ferry_rpss+=("$r") ferry_p99s+=("$p")
  printf 'round %d: nginx %.0f req/s p99 %.3f ms | ferry %.0f req/s p99 %.3f ms\n' \
    "$round" "${nginx_rpss[-1]}" "${nginx_p99s[-1]}" "${ferry_rpss[-1]}" "${ferry_p99s[-1]}"
done

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
nginx_rps=$(median "${nginx_rpss[@]}") nginx_p99=$(median "${nginx_p99s[@]}")
ferry_rps=$(median "${ferry_rpss[@]}") ferry_p99=$(median "${ferry_p99s[@]}")

echo
printf '%-22s %12s %10s\n' "target (median)" "req/s" "p99 ms"
printf '%-22s %12.0f %10.3f\n' "backend (direct, 1x)" "$direct_rps" "$direct_p99"
printf '%-22s %12.0f %10.3f\n' "nginx" "$nginx_rps" "$nginx_p99"
printf '%-22s %12.0f %10.3f\n' "ferry proxy" "$ferry_rps" "$ferry_p99"
awk -v fr="$ferry_rps" -v nr="$nginx_rps" -v fp="$ferry_p99" -v np="$nginx_p99" 'BEGIN {
  tr = fr / nr; lr = fp / np
  printf "throughput ratio ferry/nginx: %.3f (target >= 0.9) %s\n", tr, (tr >= 0.9 ? "ok" : "MISSED")
  printf "p99 ratio ferry/nginx:        %.3f (target <= 1.2) %s\n", lr, (lr <= 1.2 ? "ok" : "MISSED")
}'
