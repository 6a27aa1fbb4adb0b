"""The configuration a prod stack's services read from files, carried to its engine in named
volumes: each service's secrets, nginx.conf, the TLS certificate and key.

Nothing the stack runs relies on a file at the client's path (a bind mount would mount an
empty folder on another host's engine, or an old file). Before every `up` and deploy,
stackctl builds one tar in memory, from the validated config alone (secrets, the rendered
nginx.conf) and the TLS files TLS_CERT_PATH/TLS_KEY_PATH name, and extracts it into the
compose project's volumes through the engine's API (adapters/docker.fill_volumes): the same
way for this host's engine and one reached over SSH, and no secret is ever written to the
client's disk.

Least privilege, as the files arrive: each service mounts only its own volume, read-only;
secret files are root's and readable by the service's group only (0440), in a 0750 folder;
the private key is root's alone (0400, read by nginx's master before it drops to its workers).
With ACME certificates (TLS_CERT_SOURCE=acme) the backup container writes nginx_certs itself
(core/certs.py): stackctl only creates its folders, and those of acme and acme_webroot, with
the owners that container writes them as.
"""

from __future__ import annotations

import io
import tarfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from stackctl.config import StackConfig
from stackctl.core.progress import Report, quiet
from stackctl.core.secretfiles import pgbackrest_secret_conf, secret_values
from stackctl.errors import ConfigError, ConfigProblem, DockerCommandError, stderr_tail

if TYPE_CHECKING:
    from stackctl.core.stack import Stack

NGINX_CONFIG_DIR = "/etc/nginx/stackctl"  # nginx runs `-c` NGINX_CONFIG_DIR/nginx.conf
NGINX_CERTS_DIR = "/etc/nginx/certs"  # nginx.conf's ssl_certificate(_key) paths
SECRETS_TARGET = "/run/secrets"  # the *_FILE variables' folder
ACME_CERTS_TARGET = "/nginx-certs"  # where the backup container's certctl.py installs certificates
BACKUP_UID = 1000  # stackbackup (backup/Dockerfile)
NGINX_GID = 101  # nginx's workers (`user nginx;` with ACME)

# service: (the secrets it reads, the group they are readable by: the service's own)
SERVICE_SECRETS: dict[str, tuple[tuple[str, ...], int]] = {
    "web": (
        (
            "django_secret_key",
            "db_app_password",
            "redis_password",
            "database_url",
            "email_url",
            "email_pass",
            "sentry_dsn",
        ),
        1000,  # the web image's app user (compose/Dockerfile)
    ),
    "db": (("postgres_password", "db_app_password"), 999),  # postgres, as compose runs it
    "redis": (("redis_password",), 999),
    "backup": (("postgres_password",), BACKUP_UID),
}


@dataclass(frozen=True)
class VolumeFile:
    name: str
    content: bytes
    mode: int


@dataclass(frozen=True)
class ConfigVolume:
    name: str  # the compose file's volume name
    service: str
    target: str  # where the service mounts it, read-only
    gid: int
    mode: int  # the folder's
    files: tuple[VolumeFile, ...]
    uid: int = 0  # the folder's owner; the files are root's


def secrets_volume(service: str) -> str:
    return f"{service}_secrets"


def config_volumes(config: StackConfig, root: Path) -> list[ConfigVolume]:
    """Every config volume of config's (prod-kind) stack, with its content. `root` is the
    stack's folder, which relative TLS paths are read from (as compose read them)."""
    from stackctl.core.render import nginx_conf

    values = secret_values(config)
    volumes = [
        ConfigVolume(
            secrets_volume(service),
            service,
            SECRETS_TARGET,
            gid,
            0o750,
            tuple(VolumeFile(name, values[name].encode(), 0o440) for name in names),
        )
        for service, (names, gid) in SERVICE_SECRETS.items()
    ]
    if config.app_secrets:
        # the app's own secrets (appvars.py): web's alone, read back into their names by stackctl_env
        own = tuple(VolumeFile(v.file_name, v.value.get_secret_value().encode(), 0o440) for v in config.app_secrets)
        web = next(v for v in volumes if v.service == "web")
        volumes[volumes.index(web)] = replace(web, files=(*web.files, *own))
    bk = config.backups
    if bk.pitr_enabled:
        # pgBackRest's secret options, with an SFTP repository its key and known_hosts, with
        # an S3 one the CA bundle it trusts: db (archive-push) and the pgbackrest service both
        # mount db_secrets.
        extra = [VolumeFile("pgbackrest.conf", pgbackrest_secret_conf(config).encode(), 0o440)]
        repo2_files: tuple[tuple[str, str, str | None], ...] = ()
        if bk.pitr_repo2_type == "sftp" and bk.pitr_repo2_sftp_private_key and bk.pitr_repo2_sftp_known_hosts:
            repo2_files = (
                ("pitr_repo2_key", "PITR_REPO2_SFTP_PRIVATE_KEY", bk.pitr_repo2_sftp_private_key),
                ("pitr_repo2_known_hosts", "PITR_REPO2_SFTP_KNOWN_HOSTS", bk.pitr_repo2_sftp_known_hosts),
            )
        elif bk.pitr_repo2_type == "s3":
            repo2_files = (("pitr_repo2_ca", "PITR_REPO2_S3_CA_FILE", bk.pitr_repo2_s3_ca_file),)
        for name, variable, value in repo2_files:
            if value:
                extra.append(VolumeFile(name, _read_file(root, value, variable, config), 0o440))
        db_volume = next(v for v in volumes if v.service == "db")
        volumes[volumes.index(db_volume)] = replace(db_volume, files=(*db_volume.files, *extra))
    ngx = config.nginx
    if ngx.acme and ngx.acme_ca_bundle:
        bundle = _read_file(root, ngx.acme_ca_bundle, "ACME_CA_BUNDLE", config)
        backup = next(v for v in volumes if v.service == "backup")
        volumes[volumes.index(backup)] = replace(
            backup, files=(*backup.files, VolumeFile("acme_ca_bundle", bundle, 0o440))
        )
    volumes.append(nginx_config_volume(nginx_conf(config)))
    if ngx.acme:
        # Folders only, with the owners the backup container's ACME client (stackbackup, uid
        # 1000) writes them as; their content is its own and stays. nginx_certs' group is
        # nginx's workers' (gid 101), which read the key at each handshake.
        volumes += [
            ConfigVolume("nginx_certs", "backup", ACME_CERTS_TARGET, NGINX_GID, 0o750, (), uid=BACKUP_UID),
            ConfigVolume("acme", "backup", "/acme", BACKUP_UID, 0o700, (), uid=BACKUP_UID),
            ConfigVolume("acme_webroot", "backup", "/acme-webroot", BACKUP_UID, 0o755, (), uid=BACKUP_UID),
        ]
    elif ngx.use_tls:
        cert = _read_file(root, ngx.tls_cert_path, "TLS_CERT_PATH", config)
        key = _read_file(root, ngx.tls_key_path, "TLS_KEY_PATH", config)
        files = (VolumeFile("fullchain.pem", cert, 0o444), VolumeFile("privkey.pem", key, 0o400))
        volumes.append(ConfigVolume("nginx_certs", "nginx", NGINX_CERTS_DIR, 0, 0o700, files))
    return volumes


def nginx_config_volume(conf: bytes) -> ConfigVolume:
    """The nginx_config volume holding `conf` as the nginx.conf nginx runs with."""
    return ConfigVolume("nginx_config", "nginx", NGINX_CONFIG_DIR, 0, 0o755, (VolumeFile("nginx.conf", conf, 0o444),))


def _read_file(root: Path, value: str, variable: str, config: StackConfig) -> bytes:
    path = Path(value) if Path(value).is_absolute() else root / value
    try:
        return path.read_bytes()
    except OSError as exc:
        problem = ConfigProblem(
            file=config.environment.env_file,
            variable=variable,
            group="Backups" if variable.startswith("PITR_") else "Nginx/TLS",
            message=f"{path} cannot be read ({exc.strerror or exc})",
            value=value,
            hint=(
                f"put the file there, point {variable} at it, or set PITR_REPO2_TYPE=none"
                if variable.startswith("PITR_")
                else f"put the PEM file there, point {variable} at it"
                + (", or remove it" if variable == "ACME_CA_BUNDLE" else ", or set USE_TLS=false")
            ),
        )
        raise ConfigError([problem]) from None


def archive(volumes: list[ConfigVolume]) -> bytes:
    """One tar: a top folder per volume (root's, the service's group), its files in it."""
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for volume in volumes:
            folder = tarfile.TarInfo(volume.name)
            folder.type, folder.mode, folder.uid, folder.gid, folder.mtime = (
                tarfile.DIRTYPE,
                volume.mode,
                volume.uid,
                volume.gid,
                now,
            )
            tar.addfile(folder)
            for item in volume.files:
                info = tarfile.TarInfo(f"{volume.name}/{item.name}")
                info.size, info.mode, info.uid, info.gid, info.mtime = len(item.content), item.mode, 0, volume.gid, now
                tar.addfile(info, io.BytesIO(item.content))
    return buffer.getvalue()


def sync(stack: Stack, report: Report = quiet) -> list[str]:
    """Fill the stack's config volumes on its engine (created when missing). Returns their names."""
    from python_on_whales.exceptions import DockerException

    from stackctl.adapters.docker import fill_volumes

    volumes = config_volumes(stack.config, stack.project.root)
    names = [v.name for v in volumes]
    report(f"config volumes: {', '.join(names)}")
    try:
        fill_volumes(
            stack.client,
            project=stack.name,
            image=stack.config.images.nginx_image,
            archive=archive(volumes),
            volumes=names,
        )
    except DockerException as exc:
        raise DockerCommandError(f"filling the config volumes failed\n{stderr_tail(exc.stderr)}") from None
    return names
