"""Rules that span fields (cross checks) and the production policy."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from croniter import croniter

from stackctl.config.webimage import escapes_context
from stackctl.errors import ConfigProblem

if TYPE_CHECKING:
    from stackctl.config.model import StackConfig


def cross_checks(cfg: StackConfig, file: str) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    bundle = cfg.images.build_ca_bundle
    if bundle and not (Path(file).parent / bundle).is_file():
        problems.append(
            ConfigProblem(
                file,
                "BUILD_CA_BUNDLE",
                "Images",
                "file not found",
                value=bundle,
                hint="point it at a PEM bundle (e.g. /etc/ssl/certs/ca-certificates.crt) or remove it",
            )
        )
    problems.extend(_paths_outside_the_project(cfg, file))
    ngx = cfg.nginx
    if ngx.acme and cfg.profile == "dev":
        problems.append(
            ConfigProblem(
                file,
                "TLS_CERT_SOURCE",
                "Nginx",
                "ACME certificates are for the prod stack (its backup container renews them)",
                value=ngx.tls_cert_source,
                hint="use TLS_CERT_SOURCE=files in dev (or USE_TLS=false)",
            )
        )
    if ngx.acme and ngx.acme_ca_bundle and not (Path(file).parent / ngx.acme_ca_bundle).is_file():
        problems.append(
            ConfigProblem(
                file,
                "ACME_CA_BUNDLE",
                "Nginx",
                "file not found",
                value=ngx.acme_ca_bundle,
                hint="point it at the PEM file of the CA that signed the ACME server's HTTPS certificate, or remove it",
            )
        )
    if cfg.profile != "dev":
        problems.extend(pitr_policy(cfg, file))
    db = cfg.database
    if db.database_url is not None:
        url = urlsplit(db.database_url.get_secret_value())
        if url.hostname == db.postgres_host:
            user, password = db.postgres_user, db.postgres_password.get_secret_value()
            app_role = cfg.profile == "prod" and unquote(url.username or "") == db.db_app_user
            if app_role and db.db_app_password is not None:
                # prod: the app's own role (DB_APP_USER), as web connects without DATABASE_URL
                user, password = db.db_app_user, db.db_app_password.get_secret_value()
            mismatched = [
                name
                for name, ours, theirs in (
                    ("DB_APP_USER" if app_role else "POSTGRES_USER", user, unquote(url.username or "")),
                    (
                        "DB_APP_PASSWORD" if app_role else "POSTGRES_PASSWORD",
                        password,
                        unquote(url.password or ""),
                    ),
                    ("POSTGRES_DB", db.postgres_db, url.path.lstrip("/")),
                )
                if ours != theirs
            ]
            if mismatched:
                problems.append(
                    ConfigProblem(
                        file,
                        "DATABASE_URL",
                        "Database",
                        f"disagrees with {', '.join(mismatched)} for the bundled database",
                        hint="make them match, or remove DATABASE_URL so it is built from the parts",
                    )
                )
    for name, secret in (
        ("DJANGO_SECRET_KEY", cfg.django.django_secret_key),
        ("POSTGRES_PASSWORD", db.postgres_password),
    ):
        if "$" in secret.get_secret_value():
            problems.append(
                ConfigProblem(
                    file,
                    name,
                    "Django" if name.startswith("DJANGO") else "Database",
                    "contains '$', which docker compose would try to interpolate",
                    hint="generate a value without '$' (stackctl init writes URL-safe secrets)",
                )
            )
    if (
        cfg.database.db_backup_keep_daily == 0
        and cfg.database.db_backup_keep_weekly == 0
        and cfg.database.db_backup_retention_days == 0
    ):
        problems.append(
            ConfigProblem(
                file,
                "DB_BACKUP_RETENTION_DAYS",
                "Database",
                "with keep-daily, keep-weekly and retention all 0 only the newest backup is ever kept",
                hint="keep at least a few daily backups",
                severity="warning",
            )
        )
    return problems


def _paths_outside_the_project(cfg: StackConfig, file: str) -> list[ConfigProblem]:
    """The image is built from the project root: every path it copies must be inside it."""
    dj = cfg.django
    named = [
        ("DJANGO_PROJECT_DIR", ".", dj.django_project_dir),
        ("DJANGO_DEPENDENCY_FILE", dj.django_project_dir, dj.django_dependency_file),
    ]
    named += [("DJANGO_DEPENDENCY_INCLUDES", dj.django_project_dir, path) for path in dj.django_dependency_includes]
    return [
        ConfigProblem(
            file,
            variable,
            "Django",
            "points outside the project folder (the image is built from it)",
            value=path,
            hint="move the file inside the project root (the build context: the env file's folder, "
            "or its parent when STACK_DIR=stack) and fix the path"
            + ("" if variable == "DJANGO_PROJECT_DIR" else " (it is relative to DJANGO_PROJECT_DIR)"),
        )
        for variable, base, path in named
        if escapes_context(base, path)
    ]


# Names no public CA issues for (RFC 2606, RFC 6761, RFC 6762, RFC 8375, ICANN's .internal).
RESERVED_SUFFIXES = (".test", ".example", ".invalid", ".localhost", ".local", ".internal", ".lan", ".home.arpa")


def acme_problem(name: str) -> str | None:
    """Why http-01 cannot get a certificate for `name` from any CA, or None."""
    bare = name.strip("[]")
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        return "is an IP address: http-01 certificates are issued for domain names"
    if name == "localhost" or name.endswith(".localhost"):
        return "is localhost, which no CA can reach"
    if name.startswith("*"):
        return "is a wildcard, which needs a dns-01 challenge (http-01 cannot prove it)"
    if name.startswith("~") or name == "_" or "$" in name:
        return "is an nginx pattern, not a domain name"
    if "." not in name.strip("."):
        return "has no dot: a CA issues for fully qualified domain names"
    if not re.fullmatch(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}", name.lower()):
        return "is not a valid domain name"
    return None


def acme_policy(cfg: StackConfig, file: str) -> list[ConfigProblem]:
    """What TLS_CERT_SOURCE=acme needs: names a CA can validate over http-01, and a CA that can
    reach them."""
    ngx = cfg.nginx
    problems: list[ConfigProblem] = []
    public_ca = (urlsplit(ngx.acme_directory_url).hostname or "").endswith(".letsencrypt.org")
    for name in ngx.server_names:
        why = acme_problem(name)
        if why is None and public_ca and name.lower().endswith(RESERVED_SUFFIXES):
            why = "is a reserved name, which a public CA never issues for"
        if why:
            problems.append(
                ConfigProblem(
                    file,
                    "SERVER_NAME",
                    "Nginx",
                    f"{name!r} {why}",
                    value=ngx.server_name,
                    hint="list the public domain names whose DNS points at this host, or use TLS_CERT_SOURCE=files "
                    "with your own certificate",
                )
            )
    if not ngx.server_names:
        problems.append(
            ConfigProblem(
                file,
                "SERVER_NAME",
                "Nginx",
                "is empty: ACME needs the domain names to certify",
                hint="set SERVER_NAME=example.com www.example.com",
            )
        )
    if public_ca and ngx.binds_loopback:
        problems.append(
            ConfigProblem(
                file,
                "NGINX_BIND_ADDRESS",
                "Nginx",
                "nginx publishes on loopback only: the CA's http-01 check cannot reach it",
                value=ngx.nginx_bind_address,
                hint="set NGINX_BIND_ADDRESS=0.0.0.0 (and HTTP_PORT=80, HTTPS_PORT=443) to go live",
                severity="warning",
            )
        )
    elif public_ca and ngx.http_port != 80:
        problems.append(
            ConfigProblem(
                file,
                "HTTP_PORT",
                "Nginx",
                "the CA's http-01 check connects to port 80, but nginx publishes HTTP on another port",
                value=str(ngx.http_port),
                hint="set HTTP_PORT=80, or forward port 80 to it",
                severity="warning",
            )
        )
    return problems


def pitr_policy(cfg: StackConfig, file: str) -> list[ConfigProblem]:
    """What a second pgBackRest repository (PITR_REPO2_TYPE) needs: every part of its address,
    its credentials and its passphrase; the host files it names must exist."""
    bk = cfg.backups
    if not (bk.pitr_enabled and bk.repo2):
        return []
    problems: list[ConfigProblem] = []

    def need(variable: str, value: object, hint: str) -> None:
        if value in (None, ""):
            problems.append(
                ConfigProblem(
                    file,
                    variable,
                    "Backups",
                    f"is required with PITR_REPO2_TYPE={bk.pitr_repo2_type}",
                    hint=hint,
                )
            )

    need(
        "PITR_REPO2_CIPHER_PASS",
        bk.pitr_repo2_cipher_pass,
        "set a passphrase of 20+ characters (`openssl rand -base64 30`) and keep a copy off the box",
    )
    if bk.pitr_repo2_type == "sftp":
        need("PITR_REPO2_SFTP_HOST", bk.pitr_repo2_sftp_host, "set the SSH server's host name")
        need("PITR_REPO2_SFTP_USER", bk.pitr_repo2_sftp_user, "set the user pgBackRest logs in as")
        need("PITR_REPO2_SFTP_PRIVATE_KEY", bk.pitr_repo2_sftp_private_key, "point it at the private key file")
        need(
            "PITR_REPO2_SFTP_KNOWN_HOSTS",
            bk.pitr_repo2_sftp_known_hosts,
            "write the server's host key into a file (`ssh-keyscan -p PORT HOST > known_hosts`) and point it there",
        )
        files = [
            ("PITR_REPO2_SFTP_PRIVATE_KEY", bk.pitr_repo2_sftp_private_key),
            ("PITR_REPO2_SFTP_KNOWN_HOSTS", bk.pitr_repo2_sftp_known_hosts),
        ]
        if "bookworm" in cfg.images.postgres_image:
            problems.append(
                ConfigProblem(
                    file,
                    "PITR_REPO2_TYPE",
                    "Backups",
                    "bookworm's pgBackRest (2.45) has no SFTP repositories (they came in 2.46)",
                    value="sftp",
                    hint="use a trixie POSTGRES_IMAGE (pgBackRest 2.55), or PITR_REPO2_TYPE=s3",
                )
            )
    else:
        need("PITR_REPO2_S3_BUCKET", bk.pitr_repo2_s3_bucket, "set the bucket's name")
        need("PITR_REPO2_S3_ENDPOINT", bk.pitr_repo2_s3_endpoint, "set the endpoint host, e.g. s3.amazonaws.com")
        need("PITR_REPO2_S3_KEY", bk.pitr_repo2_s3_key, "set the access key")
        need("PITR_REPO2_S3_KEY_SECRET", bk.pitr_repo2_s3_key_secret, "set the secret access key")
        files = [("PITR_REPO2_S3_CA_FILE", bk.pitr_repo2_s3_ca_file)]
    for variable, value in files:
        if value and not (Path(file).parent / value).is_file():
            problems.append(
                ConfigProblem(
                    file, variable, "Backups", "file not found", value=value, hint="point it at an existing file"
                )
            )
    return problems


def _cron_gap_hours(expr: str) -> float:
    it = croniter(expr)
    first = float(it.get_next(float))
    second = float(it.get_next(float))
    return (second - first) / 3600


def prod_policy(cfg: StackConfig, file: str, *, base_dir: Path) -> list[ConfigProblem]:
    """What production requires. Every rule names the variable and the fix."""
    p: list[ConfigProblem] = []
    dj, sec, ngx, db = cfg.django, cfg.security, cfg.nginx, cfg.database

    def err(var: str, group: str, msg: str, hint: str, value: str | None = None, severity: str = "error") -> None:
        p.append(ConfigProblem(file, var, group, msg, value=value, hint=hint, severity=severity))

    if dj.django_debug:
        err("DJANGO_DEBUG", "Django", "DEBUG must be off in prod", "set DJANGO_DEBUG=false", value="true")
    key = dj.django_secret_key.get_secret_value()
    if len(key) < 50 or len(set(key)) < 5:
        err(
            "DJANGO_SECRET_KEY",
            "Django",
            "secret key is too short or too simple for prod (needs 50+ random characters)",
            "generate one: python3 -c 'import secrets; print(secrets.token_urlsafe(50))'",
        )
    if key.startswith("django-insecure-"):
        err(
            "DJANGO_SECRET_KEY",
            "Django",
            "secret key is Django's insecure development key",
            "generate a new random key",
        )
    if "*" in dj.django_allowed_hosts:
        err(
            "DJANGO_ALLOWED_HOSTS",
            "Django",
            "ALLOWED_HOSTS must not be * in prod",
            "list your domain names",
            value=",".join(dj.django_allowed_hosts),
        )
    if ngx.use_tls:
        if ngx.acme:
            p.extend(acme_policy(cfg, file))
        for var, path in () if ngx.acme else (("TLS_CERT_PATH", ngx.tls_cert_path), ("TLS_KEY_PATH", ngx.tls_key_path)):
            full = (base_dir / path) if not path.startswith("/") else Path(path)
            if not full.is_file():
                err(
                    var,
                    "Nginx",
                    "file not found while USE_TLS is on",
                    f"put the PEM file at {full}, set {var}, or set TLS_CERT_SOURCE=acme",
                    value=path,
                )
        if not (sec.session_cookie_secure and sec.csrf_cookie_secure):
            err(
                "SESSION_COOKIE_SECURE",
                "Security",
                "cookies must be secure when TLS is on",
                "set SESSION_COOKIE_SECURE=true and CSRF_COOKIE_SECURE=true",
            )
        if sec.secure_hsts_seconds < 3600:
            err(
                "SECURE_HSTS_SECONDS",
                "Security",
                "HSTS must be on when TLS is on",
                "set SECURE_HSTS_SECONDS=31536000 (start lower while testing)",
                value=str(sec.secure_hsts_seconds),
            )
    elif not ngx.tls_terminated_in_front:
        if ngx.binds_loopback:
            err(
                "USE_TLS",
                "Nginx",
                "prod serves plain HTTP (on loopback only)",
                "set USE_TLS=true with a certificate, or TLS_TERMINATED_IN_FRONT=true when a proxy on this host "
                "ends TLS",
                severity="warning",
            )
        else:
            err(
                "NGINX_BIND_ADDRESS",
                "Nginx",
                "prod would serve plain HTTP on a public address",
                "set USE_TLS=true with a certificate; or TLS_TERMINATED_IN_FRONT=true when a proxy or load balancer "
                "in front of nginx ends TLS; or NGINX_BIND_ADDRESS=127.0.0.1",
                value=ngx.nginx_bind_address,
            )
    if db.db_backup_retention_days < 7:
        err(
            "DB_BACKUP_RETENTION_DAYS",
            "Database",
            "keeps less than a week of backups" if db.db_backup_retention_days else "keeps no backup by age (0 days)",
            "use 7 or more (30 is the default)",
            value=str(db.db_backup_retention_days),
        )
    if not (db.db_backup_target or cfg.storage.media_backup_target):
        err(
            "DB_BACKUP_TARGET",
            "Database",
            "no off-site target: the only copy of each backup sits on the disk that holds the database",
            "set DB_BACKUP_TARGET (or MEDIA_BACKUP_TARGET, which both kinds then use) to a /path on another disk, "
            "rsync://host/module/path, user@host:/path or rclone:remote:path",
            severity="warning",
        )
    if not cfg.backups.backup_age_recipients:
        err(
            "BACKUP_AGE_RECIPIENTS",
            "Backups",
            "backups are not encrypted: anyone with docker access (or the off-site copy) reads them",
            "generate a key pair with `age-keygen -o key.txt`, keep key.txt off the server, "
            "and set BACKUP_AGE_RECIPIENTS to its public key (age1...)",
            severity="warning",
        )
    if db.db_backup_keep_daily + db.db_backup_keep_weekly == 0:
        err("DB_BACKUP_KEEP_DAILY", "Database", "prod keeps no daily or weekly backups", "set DB_BACKUP_KEEP_DAILY=7")
    if _cron_gap_hours(db.db_backup_cron) > 24 * 7:
        err(
            "DB_BACKUP_CRON",
            "Database",
            "backups run less than once a week",
            "back up at least daily",
            value=db.db_backup_cron,
            severity="warning",
        )
    return p
