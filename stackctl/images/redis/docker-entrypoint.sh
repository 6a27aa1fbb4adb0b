#!/bin/sh
# Entrypoint of stackctl's redis image, with the official redis image's contract:
# `docker run IMAGE --appendonly yes` and `docker run IMAGE /path/redis.conf` run redis-server;
# as root, /data is handed to the redis user and the server runs as that user.
set -eu

case "${1:-}" in
    -* | *.conf) set -- redis-server "$@" ;;
esac

if [ "${1:-}" = redis-server ] && [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

if [ "${1:-}" = redis-server ]; then
    # The official image builds redis with protected mode off; Debian's default is on.
    case " $* " in
        *" --protected-mode "*) ;;
        *) set -- "$@" --protected-mode no ;;
    esac
    # Keep the umask of the official image for files redis writes.
    if [ "$(umask)" = 0022 ]; then umask 0077; fi
fi

exec "$@"
