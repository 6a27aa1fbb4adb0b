#!/bin/sh
# bench/tls_handshakes.sh: what reading the certificate at each TLS handshake costs nginx
# (TLS_CERT_SOURCE=acme: `ssl_certificate` with a variable) against loading it once
# (TLS_CERT_SOURCE=files). One nginx worker (stackctl's nginx image, --cpus 1) per set-up,
# the same EC P-256 certificate, 3 interleaved rounds of `openssl s_time -new -time 8` on
# 127.0.0.1 (a full handshake per connection). Prints the handshakes each round completed.
# Needs the engine and stackctl/nginx:1.26-trixie (`stackctl images build`).
set -eu
image=${NGINX_IMAGE:-stackctl/nginx:1.26-trixie}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/certs/current"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=shop.test \
    -addext subjectAltName=DNS:shop.test -keyout "$work/certs/current/privkey.pem" \
    -out "$work/certs/current/fullchain.pem" 2>/dev/null
chmod 0755 "$work" "$work/certs" "$work/certs/current"
chmod 0644 "$work/certs/current/"*.pem
for mode in static dynamic; do
    if [ "$mode" = static ]; then
        dir=current map=""
    else
        # shellcheck disable=SC2016 # nginx variables, literally
        dir='$c' map='map $ssl_server_name $c { default current; }'
    fi
    cat >"$work/$mode.conf" <<CONF
user nginx;
worker_processes 1;
pid /tmp/nginx.pid;
events {}
http {
    $map
    server {
        listen 443 ssl;
        ssl_certificate /etc/nginx/certs/$dir/fullchain.pem;
        ssl_certificate_key /etc/nginx/certs/$dir/privkey.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:S:1m;
        ssl_session_tickets off;
        location / { return 200 "ok\n"; }
    }
}
CONF
done
for round in 1 2 3; do
    for mode in static dynamic; do
        cid=$(docker run -d --rm --cpus 1 -p 127.0.0.1::443 -v "$work/$mode.conf:/t.conf:ro" \
            -v "$work/certs:/etc/nginx/certs:ro" "$image" nginx -c /t.conf -g 'daemon off;')
        port=$(docker port "$cid" 443/tcp | head -1 | cut -d: -f2)
        sleep 1
        done_=$(openssl s_time -connect "127.0.0.1:$port" -new -time 8 2>/dev/null | grep 'connections in' | head -1)
        echo "$mode round $round: $done_"
        docker rm -f "$cid" >/dev/null
    done
done
