"""Real Django projects (issue 12), on a real engine: the corpus of tests/fixtures/projects/.

For each project, in a copy: `stackctl init` with no image flag (no registry answers here, so
init must pick the local images itself), then only stackctl's own `.env.prod` is edited for a
plain-HTTP loopback test, and `stackctl up --prod` must succeed, settings verification included.
On that one stack per project:
- nginx serves the admin's CSS from the static volume, and a 404 is not Django's debug page;
  every stylesheet the 404 page links (a project's own 404.html, compressed offline or not) is
  served too;
- the healthcheck's probe never reaches the project: its log has no `Not Found` for it;
- the migrations ran in postgres, a note written through the app is a row there, and an upload
  lands in the media volume and is served by nginx byte for byte;
- a database backup holds the row;
- rows and uploads survive `down` + `up`;
- the project's own files are byte-identical afterwards.
Each stack is removed with its volumes and the images it built, even when a test fails.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from python_on_whales import DockerClient

from stackctl.config.appvars import looks_secret
from tests.e2e.stackenv import (
    REPO,
    Proj,
    Response,
    containers,
    free_port,
    http,
    read_env,
    remove_built_images,
    set_env,
    sha256,
)

pytestmark = pytest.mark.engine

CORPUS = REPO / "tests" / "fixtures" / "projects"
PROJECTS = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
WITHOUT_NOTES = {"startproject52", "startproject60"}  # untouched `startproject` output: no notes app
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
USER_ENV = "stackctl-test.env"  # a fixture's own lines for .env.prod (see _user_lines)
UP_TIMEOUT = "420"  # seconds `up` waits for health: Poetry, uv and Pipenv installs are slow on 2 cores


@dataclass
class RealStack:
    """One fixture project, initialised and up on its own loopback ports."""

    fixture: str
    proj: Proj
    init: dict[str, Any]  # `stackctl init --json`
    up: dict[str, Any]  # `stackctl up --prod --json`
    up_seconds: float
    up_done: float  # time.monotonic() when `up` returned
    original: dict[str, str]  # every file of the project before init: relative path -> sha256

    @property
    def has_notes(self) -> bool:
        return self.fixture not in WITHOUT_NOTES

    def env(self, name: str, default: str) -> str:
        return self.proj.env.get(name) or default

    def service(self, name: str) -> Any:
        running = containers(self.proj, name)
        assert running, f"no running {name} container in {self.proj.name}"
        return running[0]

    def psql(self, sql: str) -> list[str]:
        user, db = self.env("POSTGRES_USER", "django"), self.env("POSTGRES_DB", "django")
        out = self.service("db").execute(["psql", "-U", user, "-d", db, "-tAc", sql])
        return str(out).splitlines()

    def url(self, path: str) -> str:
        return f"{self.proj.base}{path}"


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256(p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}


def _form_with_file(title: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\n{title}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="attachment"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return body + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _failed(proc: Any, what: str) -> str:
    return f"{what} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-6000:]}"


def _remove_images(project: str) -> None:
    """The images compose built for the project: by name prefix, and by compose's label."""
    remove_built_images(project)
    docker = DockerClient()
    labelled = docker.image.list(filters=[("label", f"com.docker.compose.project={project}")])
    if labelled:
        docker.image.remove([image.id for image in labelled], force=True)


def _up(proj: Proj) -> tuple[Any, float]:
    started = time.monotonic()
    proc = proj.stackctl("up", "--json", "--timeout", UP_TIMEOUT, timeout=1500)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        logs = proj.stackctl("logs", "--tail", "30", timeout=120)
        raise AssertionError(_failed(proc, "stackctl up --prod --json") + "\n--- logs\n" + logs.stdout[-6000:])
    return json.loads(proc.stdout), seconds


def _init(root: Path) -> dict[str, Any]:
    proj = Proj(root, "", 0, 0)
    proc = proj.stackctl("init", "--json", timeout=300)  # no image flag: init chooses
    assert proc.returncode == 0, _failed(proc, "stackctl init --json")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _user_lines(fixture: str) -> dict[str, str]:
    """The fixture's `stackctl-test.env`: variables of the app's own that init cannot know and
    a user adds to .env.prod (never copied into the project)."""
    path = CORPUS / fixture / USER_ENV
    return read_env(path) if path.is_file() else {}


def _prepare_env(env_file: Path, name: str, http_port: int, https_port: int, fixture: str = "") -> None:
    """Loopback ports and plain HTTP: what the prod policy needs for a test nobody reaches;
    then the fixture's own lines, as the user would add them."""
    origins = f"http://127.0.0.1:{http_port},http://localhost:{http_port}"
    set_env(
        env_file,
        STACK_NAME=name,
        NGINX_BIND_ADDRESS="127.0.0.1",
        HTTP_PORT=str(http_port),
        HTTPS_PORT=str(https_port),
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        CSRF_TRUSTED_ORIGINS=origins,
        USE_TLS="false",
        SECURE_SSL_REDIRECT="false",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        SECURE_HSTS_SECONDS="0",
        WEB_CONCURRENCY="1",
    )
    set_env(env_file, **_user_lines(fixture))


@pytest.fixture(scope="module", params=PROJECTS)
def real(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealStack]:
    fixture = str(request.param)
    root = tmp_path_factory.mktemp(fixture) / fixture
    ignore = shutil.ignore_patterns("__pycache__", "*.sqlite3", "media", USER_ENV)
    shutil.copytree(CORPUS / fixture, root, ignore=ignore)
    original = _hashes(root)
    init = _init(root)
    env_file = root / init["stack_dir"] / ".env.prod"
    name, http_port, https_port = f"e2e{uuid.uuid4().hex[:8]}", free_port(), free_port()
    _prepare_env(env_file, name, http_port, https_port, fixture)
    proj = Proj(root, f"{name}-prod", http_port, https_port, True, read_env(env_file))
    try:  # a stack that failed to come up is removed too
        up, seconds = _up(proj)
        yield RealStack(fixture, proj, init, up, seconds, time.monotonic(), original)
    finally:
        proj.stackctl("down", "--volumes", "--yes", timeout=300)
        _remove_images(proj.name)


def _note(real: RealStack, title: str) -> int:
    made = http(real.url("/notes/"), data=urlencode({"title": title}).encode(), headers=FORM)
    assert made.status == 201, (made.status, made.body[:500])
    return int(made.json()["id"])


def _upload(real: RealStack, title: str, content: bytes) -> tuple[int, str]:
    body, ctype = _form_with_file(title, f"upload-{uuid.uuid4().hex[:6]}.bin", content)
    made = http(real.url("/notes/"), data=body, headers={"Content-Type": ctype})
    assert made.status == 201, (made.status, made.body[:500])
    payload = made.json()
    assert payload["attachment_url"], payload
    return int(payload["id"]), str(payload["attachment_url"])


def _media_path(real: RealStack, url: str) -> str:
    media_url = real.env("MEDIA_URL", "/media/")
    assert url.startswith(media_url), (url, media_url)
    return real.env("MEDIA_ROOT", "/srv/media").rstrip("/") + "/" + url.removeprefix(media_url)


def _sha_in(container: Any, path: str) -> str:
    return str(container.execute(["sha256sum", path])).split()[0]


def _manage_shell(real: RealStack, code: str) -> str:
    """Python run by the app itself (manage.py shell in web, under the settings in effect)."""
    done = real.proj.stackctl("manage", "shell", "-v", "0", "-c", code)
    assert done.returncode == 0, _failed(done, "stackctl manage --prod shell")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


# -- init and up ---------------------------------------------------------------------------------


def test_init_picks_the_local_images_itself(real: RealStack) -> None:
    images = real.init["images"]
    assert images["mode"] == "local", images  # no registry answers on this host
    assert all(value.startswith("stackctl/") for value in images["env"].values()), images["env"]


def test_up_verifies_the_settings_in_effect(real: RealStack) -> None:
    settings = real.up.get("settings")
    assert settings, f"`up --prod --json` reported no settings verification: {real.up}"
    assert settings["ok"] is True and settings["failures"] == [], settings
    seen = settings["seen"]
    assert seen["debug"] is False and seen["secret_key_insecure"] is False, seen
    assert seen["database"]["vendor"] == "postgresql", seen["database"]
    print(f"{real.fixture}: up --prod took {real.up_seconds:.0f}s")


def test_the_listed_urls_are_the_routes_the_app_has(real: RealStack) -> None:
    """No corpus project has GraphQL: `up` and `status` list its root and its admin, nothing
    else, and the admin they list answers."""
    status = real.proj.stackctl("status", "--json", timeout=120)
    assert status.returncode == 0, _failed(status, "stackctl status --prod --json")
    listed = json.loads(status.stdout)["urls"]
    assert real.up["urls"] == listed == [real.url("/"), real.url("/admin/")], (real.up["urls"], listed)
    text = real.proj.stackctl("status", timeout=120)
    assert "graphql" not in text.stdout + text.stderr, text.stdout
    admin = http(listed[1] + "login/")
    assert admin.status == 200, (admin.status, admin.body[:300])


def test_the_web_image_has_no_compiler(real: RealStack) -> None:
    """The builder stage compiles; the final image holds the venv and runtime libraries only."""
    web = real.service("web")
    found = str(web.execute(["sh", "-c", "command -v gcc cc c++ x86_64-linux-gnu-gcc pg_config || true"]))
    assert found.strip() == "", f"a compiler or build tool in the final web image: {found}"
    headers = str(web.execute(["sh", "-c", "ls /usr/include/postgresql/libpq-fe.h 2>/dev/null || true"]))
    assert headers.strip() == "", f"-dev headers in the final web image: {headers}"


def test_the_driver_connects_with_runtime_libraries_only(real: RealStack) -> None:
    """Every project's postgres driver connects in web and the final stage installed no -dev
    package; compiled_deps' psycopg2, built from source, is the venv's and linked to libpq5."""
    web = real.service("web")
    code = (
        "import importlib, json; from django.db import connection as c; c.ensure_connection(); "
        "m = type(c.connection).__module__.split('.')[0]; d = importlib.import_module(m); "
        "v = getattr(getattr(d, 'extensions', None), 'libpq_version', None) or getattr(d.pq, 'version', None); "
        "print(json.dumps([m, d.__file__, v() if v else 0]))"
    )
    driver, path, libpq = json.loads(_manage_shell(real, code))
    assert path.startswith("/opt/venv/") and driver in ("psycopg", "psycopg2"), (driver, path)
    listed = str(web.execute(["sh", "-c", "cat /opt/stackctl-build/runtime-packages 2>/dev/null || true"])).split()
    assert not [p for p in listed if p.endswith("-dev")], listed
    if real.fixture == "compiled_deps":  # psycopg2 from source serves Django, linked to the image's libpq
        assert driver == "psycopg2" and libpq >= 150000, (driver, libpq)
        assert "libpq5" in listed, listed
        assert str(web.execute(["dpkg-query", "-W", "-f", "${Status}", "libpq5"])).endswith("installed")


# -- what nginx serves ---------------------------------------------------------------------------


def _admin_css(real: RealStack) -> str:
    """The admin's base.css as the login page links it (a hashed name under manifest storage)."""
    login = http(real.url("/admin/login/"))
    assert login.status == 200, (login.status, login.body[:500])
    found = re.search(rb'href="([^"]*admin/css/base[^"]*\.css)"', login.body)
    assert found, login.body[:2000]
    return found.group(1).decode()


def test_nginx_serves_the_admin_css_from_the_static_volume(real: RealStack) -> None:
    path = _admin_css(real)
    css: Response = http(real.url(path))
    assert css.status == 200 and css.headers.get("server", "").startswith("nginx"), (path, css.status)
    assert b"body" in css.body
    static_url = real.env("STATIC_URL", "/static/")
    on_disk = real.env("STATIC_ROOT", "/srv/static").rstrip("/") + "/" + path.removeprefix(static_url)
    assert _sha_in(real.service("nginx"), on_disk) == sha256(css.body)  # the collected file itself


def test_a_404_is_not_djangos_debug_page(real: RealStack) -> None:
    missing = http(real.url(f"/no-such-page-{uuid.uuid4().hex[:8]}/"))
    assert missing.status == 404, missing.status
    for marker in (b"Using the URLconf", b"DEBUG = True", b"Traceback", b"technical_404"):
        assert marker not in missing.body, (marker, missing.body[:1000])


def test_the_404_pages_stylesheets_are_served(real: RealStack) -> None:
    missing = http(real.url(f"/no-such-page-{uuid.uuid4().hex[:8]}/"))
    assert missing.status == 404, (missing.status, missing.body[:1000])
    for href in re.findall(rb'<link[^>]+rel="stylesheet"[^>]+href="([^"]+)"', missing.body):
        path = href.decode()
        css = http(real.url(path if path.startswith("/") else "/" + path))
        assert css.status == 200 and css.headers.get("server", "").startswith("nginx"), (path, css.status)


def test_the_health_probe_stays_out_of_the_apps_log(real: RealStack) -> None:
    # web's healthcheck runs every second: a few seconds up give it several turns
    time.sleep(max(0.0, 5 - (time.monotonic() - real.up_done)))
    logs = real.proj.stackctl("logs", "web", "--tail", "400", timeout=120)
    assert logs.returncode == 0, _failed(logs, "stackctl logs --prod web")
    noise = [line for line in logs.stdout.splitlines() if "Not Found: /healthz" in line or "/.stackctl/health" in line]
    assert not noise, noise[:5]


# -- data: postgres, media, backups --------------------------------------------------------------


def test_the_migrations_ran_in_postgres(real: RealStack) -> None:
    apps = set(real.psql("SELECT DISTINCT app FROM django_migrations"))
    assert {"admin", "auth", "sessions"} <= apps, apps
    if real.has_notes:
        assert "notes" in apps


def test_a_note_written_through_the_app_is_a_row_in_postgres(real: RealStack) -> None:
    if not real.has_notes:  # untouched startproject output: its own User model writes the row
        username = f"u{uuid.uuid4().hex[:8]}"
        _manage_shell(real, f"from django.contrib.auth.models import User; User.objects.create(username={username!r})")
        assert username in real.psql("SELECT username FROM auth_user")
        return
    title = f"through nginx {uuid.uuid4().hex[:8]}"
    note_id = _note(real, title)
    assert title in real.psql("SELECT title FROM notes_note")
    read = http(real.url(f"/notes/{note_id}/"))
    assert read.status == 200 and read.json() == {"id": note_id, "title": title}, read.body[:500]


def test_an_upload_lands_in_the_media_volume_and_nginx_serves_it(real: RealStack) -> None:
    content = uuid.uuid4().bytes * 2048  # 32 KiB
    if real.has_notes:
        _note_id, url = _upload(real, f"upload {uuid.uuid4().hex[:8]}", content)
    else:  # no upload view in startproject output: the app's default storage saves the file
        code = (
            "from django.core.files.base import ContentFile; from django.core.files.storage import default_storage; "
            f"name = default_storage.save('upload.bin', ContentFile(bytes.fromhex({content.hex()!r}))); "
            "print(default_storage.url(name))"
        )
        url = _manage_shell(real, code)
    path = _media_path(real, url)
    assert _sha_in(real.service("web"), path) == sha256(content)  # written to MEDIA_ROOT by web
    assert _sha_in(real.service("nginx"), path) == sha256(content)  # the same volume, seen by nginx
    served = http(real.url(url))
    assert served.status == 200 and served.body == content, (url, served.status)


def test_a_database_backup_holds_the_rows(real: RealStack) -> None:
    title = f"backed up {uuid.uuid4().hex[:8]}"
    if real.has_notes:
        _note(real, title)
    taken = real.proj.stackctl("backup", "now", "db", "--json")
    assert taken.returncode == 0, _failed(taken, "stackctl backup now db --json")
    entry = json.loads(taken.stdout)[0]
    name = entry["file"].rsplit("/", 1)[-1]
    verified = real.proj.stackctl("backup", "verify", name, "--json")
    assert verified.returncode == 0, _failed(verified, f"stackctl backup verify {name} --json")
    result = json.loads(verified.stdout)
    assert result["checksum"] == "ok" and result["rows"] >= 1 and result["tables"] >= 1, result
    assert not entry["encrypted"], entry  # pg_restore below reads the dump itself
    path = entry["file"] if entry["file"].startswith("/") else f"/backups/db/{name}"
    table = "notes_note" if real.has_notes else "django_migrations"
    dumped = str(real.service("backup").execute(["pg_restore", "--data-only", "-t", table, "-f", "-", path]))
    assert (title if real.has_notes else "sessions") in dumped, dumped[-2000:]


def test_rows_and_uploads_survive_down_and_up(real: RealStack) -> None:
    migrations = real.psql("SELECT count(*) FROM django_migrations")
    kept: dict[str, Any] = {}
    if real.has_notes:
        title = f"kept {uuid.uuid4().hex[:8]}"
        content = uuid.uuid4().bytes * 1024
        note_id, url = _upload(real, title, content)
        kept = {"title": title, "id": note_id, "url": url, "content": content}
    down = real.proj.stackctl("down", timeout=300)
    assert down.returncode == 0, _failed(down, "stackctl down --prod")
    assert not containers(real.proj, "db"), "db still runs after down"
    again, _seconds = _up(real.proj)
    assert again.get("settings", {}).get("ok") is True, again.get("settings")
    assert real.psql("SELECT count(*) FROM django_migrations") == migrations
    if kept:
        assert kept["title"] in real.psql("SELECT title FROM notes_note")
        read = http(real.url(f"/notes/{kept['id']}/"))
        assert read.status == 200 and read.json()["title"] == kept["title"], read.body[:500]
        served = http(real.url(kept["url"]))
        assert served.status == 200 and served.body == kept["content"], (kept["url"], served.status)


# -- the project's own settings and variables -------------------------------------------------------


# the names stackctl_env once set in every web process whatever the env file said
ALIASES = ("SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "DATABASE_URL")


def test_web_sees_only_the_variables_the_env_file_sets(real: RealStack) -> None:
    """Nothing is injected: the former aliases exist in web's processes only when the env file
    sets them, as written; the app's own variables (strict_settings) arrive as written, and
    secret-looking ones are in no container's `docker inspect`."""
    own = _user_lines(real.fixture)
    written = {k: v.strip().strip("'\"") for k, v in real.proj.env.items()}  # .env.prod as _prepare_env left it
    names = sorted({*ALIASES, *own})
    code = f"import json, os; print(json.dumps({{k: os.environ.get(k) for k in {names!r}}}))"
    seen = json.loads(_manage_shell(real, code))
    for name in ALIASES:
        assert seen[name] == (written.get(name) or None), (name, seen[name] is None, name in written)
    if not own:
        return
    assert {k: seen[k] for k in own} == own  # in web's processes, exactly as in the env file
    secrets = [value for key, value in own.items() if looks_secret(key, value)]
    assert secrets, own  # the fixture has one to check
    for container in (
        c for service in ("web", "db", "redis", "nginx", "backup") for c in containers(real.proj, service)
    ):
        parts = (container.config, container.host_config, container.mounts)
        inspected = json.dumps([json.dumps(part, default=lambda o: o.model_dump(mode="json")) for part in parts])
        for value in secrets:
            assert value not in inspected, f"an app secret is in `docker inspect` of {container.name}"


def test_the_engine_in_effect_is_the_projects_own_or_djangos_on_the_stacks_db(real: RealStack) -> None:
    """A project's own postgres engine (strict_settings: a subclass of Django's) is kept, any
    other gets Django's; either way on the stack's db."""
    seen = real.up["settings"]["seen"]["database"]
    own = real.fixture == "strict_settings"
    engine = "ledger.dbbackend" if own else "django.db.backends.postgresql"
    assert seen["engine"] == engine and seen["vendor"] == "postgresql", seen
    code = (
        "from django.conf import settings; from django.db import connections as c; c['default'].ensure_connection(); "
        "d = settings.DATABASES['default']; print(type(c['default']).__module__, d['HOST'], d['NAME'])"
    )
    expected = f"{engine}.base {real.env('POSTGRES_HOST', 'db')} {real.env('POSTGRES_DB', 'django')}"
    assert _manage_shell(real, code) == expected


# -- the project's own files ---------------------------------------------------------------------


def test_the_projects_own_files_are_byte_identical(real: RealStack) -> None:
    after = _hashes(real.proj.root)
    changed = [path for path, digest in real.original.items() if after.get(path) != digest]
    assert changed == [], f"init/up changed or removed the project's own files: {changed}"
    if real.fixture == "src_layout_docker":
        assert real.init["stack_dir"] == "stack", real.init["stack_dir"]
        assert {"docker-compose.yml", "Dockerfile", ".dockerignore"} <= set(real.original)
