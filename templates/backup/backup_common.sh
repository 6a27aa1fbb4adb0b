# shellcheck shell=bash disable=SC2034
# Shared by the backup and restore scripts (sourced, never run). No secrets in argv or logs:
# the database password reaches libpq through the PGPASSWORD environment variable only.
#
# The settings are environment variables with no defaults here: the backup service's
# environment in docker-compose.prod.yml states every one, from the validated .env.prod
# (BACKUP_ROOT comes from the image). A script missing one names it and exits 78.

log() {
    printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${0##*/}" "$*" >&2
}

die() {
    log "error: $1"
    exit "${2:-1}"
}

# require NAME...: every NAME is set and not empty. require_set NAME...: set, maybe empty.
require() {
    _require nonempty "$@"
}

require_set() {
    _require set "$@"
}

_require() {
    local how=$1 name missing=()
    shift
    for name in "$@"; do
        if [ "$how" = set ]; then
            [ -n "${!name+set}" ] || missing+=("$name")
        else
            [ -n "${!name:-}" ] || missing+=("$name")
        fi
    done
    [ "${#missing[@]}" = 0 ] ||
        die "not set: ${missing[*]} (the backup service's environment in docker-compose.prod.yml states them)" 78
}

require BACKUP_ROOT
MEDIA_BACKUPS_DIR=$BACKUP_ROOT/media
INCOMING_DIR=$BACKUP_ROOT/incoming

# The help text: the script's header comment, from line 2 to the first line that is not one.
usage() {
    sed -n '2,/^[^#]/s/^# \{0,1\}//p' -- "$0"
}

# on_exit FUNCTION: run FUNCTION when the script exits, on TERM (exit 143) and INT (130) too.
on_exit() {
    # shellcheck disable=SC2064  # FUNCTION's name is meant to be read now
    trap "$1" EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT
}

# check_label LABEL: empty, or letters, digits, - and _ starting with a letter or digit.
check_label() {
    case "$1" in
        "" | [A-Za-z0-9]*) ;;
        *) die "a label starts with a letter or digit" 2 ;;
    esac
    case "$1" in
        *[!A-Za-z0-9_-]*) die "a label may only hold letters, digits, - and _" 2 ;;
    esac
}

# The file a backup script is writing: removed at exit unless it was sealed (PARTIAL emptied).
PARTIAL=""
remove_partial() {
    [ -z "$PARTIAL" ] || rm -f -- "$PARTIAL"
}

utc_stamp() {
    date -u +%Y%m%dT%H%M%SZ
}

# is_previous_db NAME: NAME is a <db>_pre_restore_<YYYYmmddHHMMSS> database, which
# restore_db.sh leaves after a swap: the only kind the scripts drop, or dump under POSTGRES_DB's name.
is_previous_db() {
    case "$1" in
        "${POSTGRES_DB:0:36}_pre_restore_"[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]) return 0 ;;
        *) return 1 ;;
    esac
}

# free_name DIR PREFIX SUFFIX: PREFIX<utc stamp>SUFFIX, a name not yet taken in DIR. Names carry
# the second; a backup in the same second as the last one waits for the next (callers hold the
# backup lock, so no other backup takes the name meanwhile).
free_name() {
    local tries=0 name
    while name="$2$(utc_stamp)$3" && [ -e "$1/$name" ]; do
        tries=$((tries + 1))
        [ "$tries" -le 3 ] || die "$name already exists; try again in a second" 75
        sleep 1
    done
    printf '%s\n' "$name"
}

now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# Seconds since a now_ms value, with three decimals.
seconds_since() {
    local ms
    ms=$(($(now_ms) - $1))
    printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

# libpq settings from the stack's POSTGRES_* variables (the password from .env.prod).
pg_env() {
    require POSTGRES_USER POSTGRES_DB POSTGRES_HOST POSTGRES_PORT
    if [ -z "${PGPASSWORD:-}" ] && [ -z "${POSTGRES_PASSWORD:-}" ] && [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
        # a compose secret (/run/secrets/...): read here, never passed in argv
        [ -r "$POSTGRES_PASSWORD_FILE" ] || die "POSTGRES_PASSWORD_FILE ($POSTGRES_PASSWORD_FILE) is not readable" 78
        PGPASSWORD=$(cat -- "$POSTGRES_PASSWORD_FILE")
        export PGPASSWORD
    fi
    if [ -z "${PGPASSWORD:-}" ]; then
        require POSTGRES_PASSWORD
        export PGPASSWORD=$POSTGRES_PASSWORD
    fi
    export PGHOST=$POSTGRES_HOST PGPORT=$POSTGRES_PORT PGUSER=$POSTGRES_USER
    export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10} PGAPPNAME=stackctl-backup
    unset PGDATABASE
}

# The age recipients (comma-separated BACKUP_AGE_RECIPIENTS, empty for none) as `-r KEY`
# arguments.
AGE_ARGS=()
ENCRYPT=0
age_recipients() {
    local key keys
    require_set BACKUP_AGE_RECIPIENTS
    AGE_ARGS=()
    ENCRYPT=0
    IFS=',' read -r -a keys <<<"$BACKUP_AGE_RECIPIENTS"
    for key in "${keys[@]}"; do
        key=$(printf '%s' "$key" | tr -d '[:space:]')
        if [ -n "$key" ]; then
            AGE_ARGS+=(-r "$key")
            ENCRYPT=1
        fi
    done
}

# stdin to stdout, encrypted when recipients are configured.
maybe_encrypt() {
    if [ "$ENCRYPT" = 1 ]; then
        age "${AGE_ARGS[@]}"
    else
        cat
    fi
}

sha256_of() {
    sha256sum -- "$1" | cut -d' ' -f1
}

# Move a finished temp file to its final name: fsync, refuse to overwrite (hard link),
# then write NAME.sha256 the same way (temp + fsync + rename) and fsync the folder.
seal() {
    local tmp=$1 final=$2 dir sum side
    dir=$(dirname -- "$final")
    sync -- "$tmp"
    sum=$(sha256_of "$tmp")
    side=$(mktemp "$dir/.tmp-sha256-XXXXXX")
    printf '%s  %s\n' "$sum" "$(basename -- "$final")" >"$side"
    sync -- "$side"
    ln -- "$tmp" "$final" || die "$(basename -- "$final") already exists"
    rm -f -- "$tmp"
    mv -f -- "$side" "$final.sha256"
    chmod 0640 -- "$final" "$final.sha256"
    sync -- "$dir"
    SEALED_SHA256=$sum
}

mark_success() {
    local kind=$1 file=$2 tmp
    tmp=$(mktemp "$BACKUP_ROOT/.tmp-marker-XXXXXX")
    printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(basename -- "$file")" >"$tmp"
    chmod 0644 -- "$tmp"
    mv -f -- "$tmp" "$BACKUP_ROOT/last-success-$kind"
}

# Serialise jobs of one kind (a scheduled dump waits for a restore, and the reverse).
take_lock() {
    exec 9>"$BACKUP_ROOT/.lock-$1"
    flock -w "${BACKUP_LOCK_WAIT:-3600}" 9 || die "another $1 backup or restore is still running" 75
}

# A backup given by name (looked up in its folder, then in incoming/) or by path. A name that
# starts with - is refused: it is an option given in the wrong place, not a backup.
resolve_backup() {
    local given=$1 dir=$2
    case "$given" in
        -*) die "refusing $given: a backup name never starts with - (an option in the wrong place?)" 2 ;;
    esac
    if [ -f "$given" ] || [ -d "$given" ]; then
        printf '%s\n' "$given"
    elif [ "${given#*/}" = "$given" ] && [ -e "$dir/$given" ]; then
        printf '%s\n' "$dir/$given"
    elif [ "${given#*/}" = "$given" ] && [ -e "$INCOMING_DIR/$given" ]; then
        printf '%s\n' "$INCOMING_DIR/$given"
    else
        die "no such backup: $given (looked in $dir and $INCOMING_DIR)" 66
    fi
}

# make_workdir: a fresh private folder for one restore's copies (the decrypted backup),
# held locked (fd 8) while the script runs, so that the orphan sweep
# (backupctl.py prune) never removes it, however long the restore takes. Sets WORK.
WORK=""
make_workdir() {
    WORK=$(mktemp -d "$BACKUP_ROOT/.tmp-restore-XXXXXX")
    chmod 0700 -- "$WORK"
    exec 8>"$WORK/.in-use"
    flock -n 8 || die "could not lock $WORK" 75
}

# bytes_free DIR: the bytes free for this user on DIR's filesystem.
bytes_free() {
    local avail size
    read -r avail size < <(stat -f -c '%a %S' -- "$1")
    echo $((avail * size))
}

# need_room DIR BYTES WHAT: die (exit 73, nothing changed) when DIR's filesystem has less than
# BYTES free, naming WHAT needs the room.
need_room() {
    local free
    free=$(bytes_free "$1")
    [ "$free" -ge "$2" ] ||
        die "not enough room in $1 for $3: $2 bytes needed, $free free; free some space (stackctl backup prune) and try again" 73
}

# Credentials for the off-site copies live in the backups volume (docs/deployment.md says how
# to put them there): CREDENTIALS/ssh_key + known_hosts, rclone.conf, rsync.password.
CREDENTIALS=$BACKUP_ROOT/.credentials

# copy_to_target FILE TARGET: FILE, then FILE.sha256, to an off-site TARGET (MEDIA_BACKUP_TARGET,
# DB_BACKUP_TARGET): a local path, rsync://host/module/path, [user@]host:/path (rsync over ssh)
# or rclone:remote:path. The archive goes first and the sidecar last, so a copy that stops
# halfway leaves no sidecar vouching for a partial file.
copy_to_target() {
    local file=$1 target=$2 ssh
    case "$target" in
        rclone:*)
            [ ! -f "$CREDENTIALS/rclone.conf" ] || export RCLONE_CONFIG="$CREDENTIALS/rclone.conf"
            rclone copy --no-traverse -- "$file" "${target#rclone:}" &&
                rclone copy --no-traverse -- "$file.sha256" "${target#rclone:}"
            ;;
        rsync://*)
            local auth=()
            [ ! -f "$CREDENTIALS/rsync.password" ] || auth=("--password-file=$CREDENTIALS/rsync.password")
            rsync -t --mkpath "${auth[@]}" -- "$file" "$file.sha256" "${target%/}/"
            ;;
        /*)
            mkdir -p -- "$target" &&
                cp -- "$file" "$target/.tmp-$(basename -- "$file")" &&
                mv -f -- "$target/.tmp-$(basename -- "$file")" "$target/$(basename -- "$file")" &&
                cp -- "$file.sha256" "$target/.tmp-$(basename -- "$file").sha256" &&
                mv -f -- "$target/.tmp-$(basename -- "$file").sha256" "$target/$(basename -- "$file").sha256"
            ;;
        *:*)
            ssh="ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new"
            if [ -f "$CREDENTIALS/ssh_key" ]; then
                ssh="$ssh -i $CREDENTIALS/ssh_key -o UserKnownHostsFile=$CREDENTIALS/known_hosts"
            fi
            rsync -t --mkpath -e "$ssh" -- "$file" "$file.sha256" "${target%/}/"
            ;;
        *)
            log "an off-site target must be a /path, rsync://host/module/path, [user@]host:/path or rclone:remote:path, not $target"
            return 2
            ;;
    esac
}

# Compare FILE with FILE.sha256. Prints ok or skipped; dies on a mismatch or a missing sidecar.
check_sidecar() {
    local file=$1 skip=$2 expected actual
    if [ -d "$file" ]; then
        [ "$skip" = 1 ] || die "$(basename -- "$file") is a folder (a directory-format dump): it has no checksum; pass --no-checksum to accept it" 65
        echo skipped
        return 0
    fi
    if [ ! -f "$file.sha256" ]; then
        [ "$skip" = 1 ] || die "$(basename -- "$file") has no .sha256 sidecar; refusing (pass --no-checksum to accept it)" 65
        echo skipped
        return 0
    fi
    expected=$(awk 'NR == 1 { print tolower($1) }' "$file.sha256")
    actual=$(sha256_of "$file")
    [ "$expected" = "$actual" ] || die "$(basename -- "$file") does not match its sha256 sidecar: the file is damaged" 65
    echo ok
}

# Decrypt FILE into WORKDIR when it ends in .age; print the path to read.
maybe_decrypt() {
    local file=$1 work=$2 plain
    case "$file" in
        *.age)
            [ -n "${BACKUP_AGE_IDENTITY:-}" ] || die "$(basename -- "$file") is encrypted: set BACKUP_AGE_IDENTITY to the path of an age identity file" 65
            [ -r "$BACKUP_AGE_IDENTITY" ] || die "BACKUP_AGE_IDENTITY ($BACKUP_AGE_IDENTITY) is not a readable file" 65
            plain="$work/$(basename -- "${file%.age}")"
            age -d -i "$BACKUP_AGE_IDENTITY" -o "$plain" -- "$file" || die "could not decrypt $(basename -- "$file") with BACKUP_AGE_IDENTITY" 65
            printf '%s\n' "$plain"
            ;;
        *) printf '%s\n' "$file" ;;
    esac
}

emit_json() {
    backupctl.py emit "$@"
}
