#!/usr/bin/env bash
# restore_media.sh [--no-checksum] FILE           replace MEDIA_ROOT's content with FILE's
# restore_media.sh [--no-checksum] --check FILE   integrity checks only
#
# FILE is a path or an archive name (looked up in /backups/media, then /backups/incoming).
# 1. Integrity first: the NAME.sha256 sidecar must match (a missing one is refused unless
#    --no-checksum), .age files are decrypted with BACKUP_AGE_IDENTITY, tar must list it.
# 2. Extract into MEDIA_ROOT/.restore-tmp (the same volume), then swap: the current
#    content moves to MEDIA_ROOT/.restore-old, the new content moves in, the old is
#    deleted. Any failure before the end puts the old content back.
# Prints one JSON line: {"file", "files", "seconds", ...}.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=backup_common.sh
. "$(dirname -- "$(readlink -f -- "$0")")/backup_common.sh"

mode=restore
skip_checksum=0
given=""
while [ $# -gt 0 ]; do
    case "$1" in
        --check) mode=check; shift ;;
        --no-checksum) skip_checksum=1; shift ;;
        -h | --help) usage; exit 0 ;;
        --) given=${2:?FILE is missing}; shift 2 ;;
        -*) die "unknown option: $1" 2 ;;
        *) [ -z "$given" ] || die "one FILE only" 2; given=$1; shift ;;
    esac
done
[ -n "$given" ] || die "usage: restore_media.sh [--check] [--no-checksum] FILE" 2
require MEDIA_ROOT
[ -d "$MEDIA_ROOT" ] || die "MEDIA_ROOT ($MEDIA_ROOT) is not a folder" 66

staging="$MEDIA_ROOT/.restore-tmp"
aside="$MEDIA_ROOT/.restore-old"
started=$(now_ms)
work=""
swapping=0

# Every entry of a folder except the two restore folders, NUL-separated.
entries() {
    find "$1" -mindepth 1 -maxdepth 1 ! -name .restore-tmp ! -name .restore-old -print0
}

# Put the old content back: drop what was moved in, move the old entries home.
roll_back() {
    log "restore failed; putting the previous media back"
    entries "$MEDIA_ROOT" | xargs -0 -r rm -rf --
    find "$aside" -mindepth 1 -maxdepth 1 -print0 | xargs -0 -r mv -t "$MEDIA_ROOT" --
}

# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    local rc=$?
    if [ "$swapping" = 1 ] && [ "$rc" != 0 ]; then
        roll_back || log "error: roll back failed: the previous media is in $aside"
    fi
    rm -rf -- "$staging"
    if [ -d "$aside" ] && [ -z "$(find "$aside" -mindepth 1 -maxdepth 1 -print -quit)" ]; then
        rmdir -- "$aside"
    fi
    [ -z "$work" ] || rm -rf -- "$work"
}
on_exit cleanup

# -- 1. integrity ---------------------------------------------------------------------------
file=$(resolve_backup "$given" "$MEDIA_BACKUPS_DIR")
work=$(mktemp -d "$BACKUP_ROOT/.tmp-restore-XXXXXX")
checksum=$(check_sidecar "$file" "$skip_checksum")
archive=$(maybe_decrypt "$file" "$work")
files=$(tar -tzf "$archive" | awk '!/\/$/ { n++ } END { print n + 0 }') ||
    die "$(basename -- "$file") is not a readable tar.gz archive" 65
log "$(basename -- "$file"): checksum $checksum, $files files, readable"
if [ "$mode" = check ]; then
    emit_json "file=$(basename -- "$file")" "checksum=$checksum" "files:=$files" \
        "seconds:=$(seconds_since "$started")"
    exit 0
fi

# -- 2. extract beside the live content, then swap ---------------------------------------------
take_lock media
[ ! -e "$aside" ] || die "$aside exists: a previous restore did not finish; move its content back or delete it" 75
rm -rf -- "$staging"
mkdir -m 0755 -- "$staging"
log "extracting into $staging"
tar -xzf "$archive" -C "$staging" --no-same-owner --delay-directory-restore
mkdir -m 0755 -- "$aside"
swapping=1
entries "$MEDIA_ROOT" | xargs -0 -r mv -t "$aside" --
find "$staging" -mindepth 1 -maxdepth 1 -print0 | xargs -0 -r mv -t "$MEDIA_ROOT" --
swapping=0
rm -rf -- "$aside"
sync -- "$MEDIA_ROOT"
log "media restored from $(basename -- "$file")"
emit_json "file=$(basename -- "$file")" "checksum=$checksum" "files:=$files" "seconds:=$(seconds_since "$started")"
