#!/usr/bin/env bash
# Who pays for a loopback download: server *and* client CPU-seconds per GiB, glint (splice)
# against nginx (sendfile + tcp_nopush), 1 GiB from the page cache, curl as the client,
# alternating, 5 rounds of 2 downloads. On loopback the TCP receive processing runs in
# whichever process's context pushes the data, so server-only figures can shift cost to or
# from the client.
#
# Usage: scripts/bench_download_split.sh GLINT_DATA_DIR NGINX_DIR
#   GLINT_DATA_DIR: a glint data dir whose first listed image is the 1 GiB test image;
#   NGINX_DIR: a running nginx from ../shared/anchors/nginx/start.sh NGINX_DIR 18181, serving
#   the same bytes at /files/img. GLINT_BIN defaults to target/release/glint.
set -euo pipefail
DATA="${1:?glint data dir}"; NGX="${2:?nginx dir}"
BIN="${GLINT_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/glint}"
ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
curl_cpu() { /usr/bin/time -f "%U %S" curl -s -o /dev/null "$1" 2>&1 | awk '{print $1+$2}'; }
OUT="$(mktemp)"
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA" > "$OUT" 2>/dev/null & P=$!
for _ in $(seq 1 50); do grep -q '^listening on' "$OUT" && break; sleep 0.1; done
URL=$(awk '/^listening on /{print $3; exit}' "$OUT")
ID=$(curl -s "$URL/v2/images" | python3 -c 'import json,sys; print(json.load(sys.stdin)["images"][0]["id"])')
NW=$(pgrep -P "$(cat "$NGX/nginx.pid")" | tr '\n' ' ')
curl -s -o /dev/null "$URL/v2/images/$ID/file"; curl -s -o /dev/null http://127.0.0.1:18181/files/img
for r in 1 2 3 4 5; do
  for sys in glint nginx; do
    if [ $sys = glint ]; then pids=$P; u="$URL/v2/images/$ID/file"; else pids=$NW; u=http://127.0.0.1:18181/files/img; fi
    a=$(ticks $pids); c1=$(curl_cpu "$u"); c2=$(curl_cpu "$u"); b=$(ticks $pids)
    python3 -c "s=($b-$a)/100/2; c=($c1+$c2)/2; print(f'round $r $sys server {s:.3f} client {c:.3f} total {s+c:.3f} CPU-s/GiB')"
  done
done
kill $P; wait $P || true
rm -f "$OUT"
