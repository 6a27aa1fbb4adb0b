#!/bin/sh
# backup_healthcheck.sh: the backup container's healthcheck. Unhealthy (exit 1) when the
# last successful database backup, or the scheduler's start if that is later, is older
# than twice the longest gap of DB_BACKUP_CRON plus 10 minutes (backupctl.py status).
set -eu
exec backupctl.py healthcheck
