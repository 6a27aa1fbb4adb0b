#!/usr/bin/env bash
# backup_media.sh [--label LABEL] [--no-copy]
#
# Archive MEDIA_ROOT to /backups/media/media-<UTC YYYYmmddTHHMMSSZ>[-LABEL].tar.gz
# (.tar.gz.age when BACKUP_AGE_RECIPIENTS is set), atomically, with a NAME.sha256
# sidecar, then copy both to MEDIA_BACKUP_TARGET when it is not empty (unless --no-copy):
# a local path, rsync://host/module/path, [user@]host:/path (rsync over ssh) or
# rclone:remote:path. A failed copy exits 3 and keeps the local archive.
# Prints one JSON line: {"file", "bytes", "seconds", "sha256", "copied_to", ...}.
#
# gzip, not zstd: media is mostly already-compressed images and documents, so zstd
# would save little, while tar -z is readable by every tar on every host.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=backup_common.sh
. "$(dirname -- "$(readlink -f -- "$0")")/backup_common.sh"

label=""
copy=1
while [ $# -gt 0 ]; do
    case "$1" in
        --label) label=${2:?--label needs a value}; shift 2 ;;
        --label=*) label=${1#--label=}; shift ;;
        --no-copy) copy=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument: $1" 2 ;;
    esac
done
check_label "$label"

require MEDIA_ROOT BACKUP_COMPRESS_LEVEL
require_set MEDIA_BACKUP_TARGET
[ -d "$MEDIA_ROOT" ] || die "MEDIA_ROOT ($MEDIA_ROOT) is not a folder" 66

age_recipients
mkdir -p -- "$MEDIA_BACKUPS_DIR"
take_lock media

on_exit remove_partial

# GNU tar exits 1 when a file changed while it was read: the archive is still usable.
archive_media() {
    local rc=0
    tar -C "$MEDIA_ROOT" --exclude=./.restore-tmp --exclude=./.restore-old \
        --warning=no-file-changed -cf - . || rc=$?
    [ "$rc" -le 1 ] || return "$rc"
}

started=$(now_ms)
suffix="${label:+-$label}.tar.gz"
[ "$ENCRYPT" = 0 ] || suffix="$suffix.age"
name=$(free_name "$MEDIA_BACKUPS_DIR" media- "$suffix")
PARTIAL=$(mktemp "$MEDIA_BACKUPS_DIR/.tmp-media-XXXXXX")
level=$BACKUP_COMPRESS_LEVEL
[ "$level" -ge 1 ] || level=1

log "archiving $MEDIA_ROOT to $name"
archive_media | gzip -n "-$level" | maybe_encrypt >"$PARTIAL"
seal "$PARTIAL" "$MEDIA_BACKUPS_DIR/$name"
PARTIAL=""
mark_success media "$name"
bytes=$(stat -c %s -- "$MEDIA_BACKUPS_DIR/$name")
log "wrote $name ($bytes bytes)"

target=$MEDIA_BACKUP_TARGET
status=0
copied=null
if [ "$copy" = 1 ] && [ -n "$target" ]; then
    log "copying $name to $target"
    if copy_to_target "$MEDIA_BACKUPS_DIR/$name" "$target" >&2; then
        copied=true
    else
        copied=false
        status=3
        log "error: the copy to $target failed; the local archive is kept"
    fi
fi

if ! backupctl.py prune --kind media >&2; then
    log "warning: the retention policy could not be applied; the new archive is kept"
fi
copied_to=(copied_to:=null)
[ -z "$target" ] || copied_to=("copied_to=$target")
emit_json kind=media "file=$name" "path=$MEDIA_BACKUPS_DIR/$name" "bytes:=$bytes" \
    "seconds:=$(seconds_since "$started")" "sha256=$SEALED_SHA256" "${copied_to[@]}" "copied:=$copied"
exit "$status"
