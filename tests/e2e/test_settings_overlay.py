"""The settings overlay and the web image per profile, on a real engine.

- A project nobody here wrote, written inline below: DEBUG=True, an insecure SECRET_KEY and
  sqlite hard-coded, STATIC_ROOT=BASE_DIR/"staticfiles", neither daphne nor a postgres driver;
  X_FRAME_OPTIONS = "SAMEORIGIN" (security.W019, as django CMS documents) and deployment
  checks of its own app, one it silences itself and one DJANGO_SILENCED_CHECKS silences.
  `stackctl init --local-images` + `stackctl up --prod`: the settings in effect verify (those
  warnings listed, not fatal), a 404 is not Django's debug page, nginx serves the admin's CSS,
  a row lands in postgres.
- The overlay's merging rules, run in that image against a settings module of our own.
- The bundled example's prod stack verifies too (its settings read the environment already).
- Each profile comes from its own env file: dev and prod differ in project folder, dependency
  file, settings module, STATIC_ROOT and workers, read back from `docker compose config` and
  from the built images.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from python_on_whales import DockerClient

from stackctl.config import load_config
from stackctl.config.profile import PROD, Environment
from stackctl.config.webimage import OVERLAY_MODULE, STACK_PACKAGES
from stackctl.core.project import Project
from stackctl.core.stack import Stack
from stackctl.core.verify import verify_settings
from tests.e2e.stackenv import (
    STACKCTL,
    Proj,
    containers,
    free_port,
    http,
    make_project,
    read_env,
    remove_built_images,
    set_env,
)

pytestmark = pytest.mark.engine
docker = DockerClient()

SETTINGS = '''"""Settings as `django-admin startproject` writes them, never touched since."""
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "django-insecure-3x!k#9v@journal$w0q^z(7m)r2p-8u1y6i4o5e_t"
DEBUG = True
ALLOWED_HOSTS = []
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "notes",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "journal.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
WSGI_APPLICATION = "journal.wsgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
        "OPTIONS": {"timeout": 20},
    }
}
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Added since: framed by its own pages (security.W019), and a check of its own it keeps quiet.
X_FRAME_OPTIONS = "SAMEORIGIN"
SILENCED_SYSTEM_CHECKS = ["notes.W003"]
'''

# Deployment checks of the project's own app: W001 stays a warning, W002 is silenced by the env
# file's DJANGO_SILENCED_CHECKS, W003 by the project's own SILENCED_SYSTEM_CHECKS.
NOTES_CHECKS = """from django.core.checks import Warning, register


@register(deploy=True)
def archive_checks(app_configs, **kwargs):
    return [
        Warning("notes are never archived", hint="set NOTES_ARCHIVE", id="notes.W001"),
        Warning("notes have no search index", id="notes.W002"),
        Warning("notes have no quota", id="notes.W003"),
    ]
"""

JOURNAL = {
    "manage.py": (
        "#!/usr/bin/env python\nimport os\nimport sys\n\n"
        "if __name__ == '__main__':\n"
        "    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'journal.settings')\n"
        "    from django.core.management import execute_from_command_line\n"
        "    execute_from_command_line(sys.argv)\n"
    ),
    "requirements.txt": "Django==5.2.19\n",
    "journal/__init__.py": "",
    "journal/settings.py": SETTINGS,
    "journal/asgi.py": (
        "import os\n\nfrom django.core.asgi import get_asgi_application\n\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'journal.settings')\n"
        "application = get_asgi_application()\n"
    ),
    "journal/wsgi.py": (
        "import os\n\nfrom django.core.wsgi import get_wsgi_application\n\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'journal.settings')\n"
        "application = get_wsgi_application()\n"
    ),
    "journal/urls.py": (
        "from django.contrib import admin\nfrom django.urls import path\n\nfrom notes import views\n\n"
        "urlpatterns = [path('admin/', admin.site.urls), path('notes/', views.create_note)]\n"
    ),
    "notes/__init__.py": "",
    "notes/apps.py": (
        "from django.apps import AppConfig\n\n\nclass NotesConfig(AppConfig):\n"
        "    default_auto_field = 'django.db.models.BigAutoField'\n    name = 'notes'\n\n"
        "    def ready(self):\n        from . import checks  # noqa: F401\n"
    ),
    "notes/checks.py": NOTES_CHECKS,
    "notes/models.py": (
        "from django.db import models\n\n\nclass Note(models.Model):\n    title = models.CharField(max_length=200)\n"
    ),
    "notes/views.py": (
        "from django.http import JsonResponse\nfrom django.views.decorators.csrf import csrf_exempt\n"
        "from django.views.decorators.http import require_POST\n\nfrom .models import Note\n\n\n"
        "@csrf_exempt\n@require_POST\ndef create_note(request):\n"
        "    note = Note.objects.create(title=request.POST['title'])\n"
        "    return JsonResponse({'id': note.pk}, status=201)\n"
    ),
    "notes/migrations/__init__.py": "",
    "notes/migrations/0001_initial.py": (
        "from django.db import migrations, models\n\n\nclass Migration(migrations.Migration):\n"
        "    initial = True\n    dependencies = []\n    operations = [\n"
        "        migrations.CreateModel(\n            name='Note',\n            fields=[\n"
        "                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),\n"
        "                ('title', models.CharField(max_length=200)),\n            ],\n        ),\n    ]\n"
    ),
}


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def _stack(proj: Proj, profile: str = "prod") -> Stack:
    project = Project.at(proj.root)
    env = Environment.named(profile)
    cfg = load_config(project.env_file(env), profile=env.profile).config
    return Stack(project, env, config=cfg)


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proj]:
    root = tmp_path_factory.mktemp("journal") / "journal"
    _write(root, JOURNAL)
    init = subprocess.run([str(STACKCTL), "init", "--local-images"], cwd=root, capture_output=True, text=True)
    assert init.returncode == 0, init.stdout + init.stderr
    name, http_port, https_port = f"e2e{uuid.uuid4().hex[:8]}", free_port(), free_port()
    env_file = Project.at(root).env_file(PROD)
    set_env(
        env_file,
        STACK_NAME=name,
        NGINX_BIND_ADDRESS="127.0.0.1",
        HTTP_PORT=str(http_port),
        HTTPS_PORT=str(https_port),
        WEB_CONCURRENCY="1",
        DJANGO_SILENCED_CHECKS="notes.W002",
    )
    proj = Proj(root, f"{name}-prod", http_port, https_port, True, read_env(env_file))
    try:  # a stack that failed to come up is removed too
        proj.stackctl("up", "--timeout", "300", check=True)
        yield proj
    finally:
        proj.stackctl("down", "--volumes", "--yes")
        remove_built_images(proj.name)


def test_the_settings_in_effect_verify(journal: Proj) -> None:
    report = verify_settings(_stack(journal))
    assert report.ok and report.settings_module == OVERLAY_MODULE
    seen = report.seen
    assert seen.debug is False and seen.secret_key_insecure is False
    assert (seen.database.vendor, seen.database.host) == ("postgresql", "db")
    assert (seen.static_root, seen.media_root) == ("/srv/static", "/srv/media")
    # plain HTTP (USE_TLS=false): only HTTPS-only checks remain, and they are listed as allowed
    assert {f.setting for f in report.allowed} <= {"security.W004", "security.W008", "security.W012", "security.W016"}
    assert "security.W004" in {f.setting for f in report.allowed}
    # a deliberate header choice and the app's own check are warnings; `up` verified despite them
    warnings = {f.setting: f for f in report.warnings}  # Django's check registry is a set: no order
    assert sorted(warnings) == ["notes.W001", "security.W019"] and len(report.warnings) == 2
    assert {f.expected for f in report.warnings} == {"a warning, not fatal"}
    assert warnings["notes.W001"].fix == "set NOTES_ARCHIVE"
    # the env file's id is added to the project's own SILENCED_SYSTEM_CHECKS, which stays
    assert [(f.setting, f.expected) for f in report.silenced] == [("notes.W002", "silenced by DJANGO_SILENCED_CHECKS")]
    assert {c.id: c.silenced for c in seen.checks if c.id.startswith("notes.")} == {
        "notes.W001": False,
        "notes.W002": True,
        "notes.W003": True,
    }
    assert "notes.W003" not in {f.setting for f in (*report.warnings, *report.silenced, *report.failures)}


def test_a_404_is_not_djangos_debug_page(journal: Proj) -> None:
    missing = http(f"{journal.base}/no-such-page-{uuid.uuid4().hex[:6]}/")
    assert missing.status == 404
    for marker in (b"Using the URLconf", b"DEBUG = True", b"Traceback", b"journal.urls"):
        assert marker not in missing.body, marker


def test_nginx_serves_the_collected_static_files(journal: Proj) -> None:
    css = http(f"{journal.base}/static/admin/css/base.css")
    assert css.status == 200 and css.headers.get("server") == "nginx", css.status
    assert b"body" in css.body


def test_a_row_lands_in_postgres_not_in_sqlite(journal: Proj) -> None:
    title = f"written through nginx {uuid.uuid4().hex[:8]}"
    body = urlencode({"title": title}).encode()
    made = http(f"{journal.base}/notes/", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert made.status == 201, made.body[:500]
    cfg = _stack(journal).config.database
    db = containers(journal, "db")[0]
    rows = db.execute(["psql", "-U", cfg.postgres_user, "-d", cfg.postgres_db, "-tAc", "SELECT title FROM notes_note"])
    assert title in rows.splitlines()
    web = containers(journal, "web")[0]
    assert "db.sqlite3" not in web.execute(["ls", "-a", "/app"]).split()


def test_the_image_adds_only_what_the_project_lacks(journal: Proj) -> None:
    web = containers(journal, "web")[0]
    code = "import importlib.metadata as m; print(' '.join(f'{d}=={m.version(d)}' for d in __import__('sys').argv[1:]))"
    found = web.execute(["python", "-c", code, "Django", "daphne", "psycopg", "redis", "django-environ"]).split()
    pins = {p.requirement.replace("[binary]", "") for p in STACK_PACKAGES}
    assert found[0] == "Django==5.2.19"  # the project's own pin
    assert set(found[1:]) == pins


def test_web_adds_no_name_the_env_file_does_not_set(journal: Proj) -> None:
    """The project's settings import with the env file's variables only: no SECRET_KEY, DEBUG,
    ALLOWED_HOSTS or DATABASE_URL of stackctl's, in the processes or the configuration."""
    web = containers(journal, "web")[0]
    aliases = ["SECRET_KEY", "DEBUG", "DATABASE_URL", "ALLOWED_HOSTS"]
    names = [*aliases, "DJANGO_SECRET_KEY"]
    code = f"import json, os; print(json.dumps([bool(os.environ.get(n)) for n in {names!r}]))"
    assert json.loads(web.execute(["python", "-c", code])) == [False, False, False, False, True]
    configured = {entry.split("=", 1)[0] for entry in docker.container.inspect(web.id).config.env or []}
    assert set(aliases).isdisjoint(configured)
    assert {"DJANGO_SETTINGS_MODULE", "STACKCTL_BASE_SETTINGS"} <= configured


# -- the overlay's rules, in the built image -----------------------------------------------------

PROBE_BASE = """
from pathlib import Path
BASE_DIR = Path("/app")
SECRET_KEY = "django-insecure-x"
DEBUG = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "x.sqlite3",
                "OPTIONS": {"timeout": 20}, "CONN_MAX_AGE": 60},
    "legacy": {"ENGINE": "django.db.backends.sqlite3", "NAME": "legacy.sqlite3"},
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "KEY_PREFIX": "shop"}}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"quiet": {"class": "logging.NullHandler"}},
    "loggers": {"shop": {"handlers": ["quiet"], "level": "ERROR"}},
}
TIME_ZONE = "Europe/Paris"
LANGUAGE_CODE = "en-us"
EMAIL_BACKEND = "anymail.backends.example.EmailBackend"
"""

SQLITE_DEFAULT = """"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "x.sqlite3",
                "OPTIONS": {"timeout": 20}, "CONN_MAX_AGE": 60},"""
OWN_ENGINE_DEFAULT = """"default": {"ENGINE": "probe_engine", "NAME": "own", "HOST": "elsewhere", "PORT": "6543",
                "OPTIONS": {"application_name": "probe"}, "CONN_MAX_AGE": 60},"""
PROBE_ENGINE = """
from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    pass
"""

PROBE = """
import json, os, django
django.setup()
from django.conf import settings as s
db = s.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "host": db["HOST"], "password": db["PASSWORD"], "options": db.get("OPTIONS", {}),
    "conn_max_age": db["CONN_MAX_AGE"], "legacy": s.DATABASES["legacy"]["ENGINE"],
    "cache": [s.CACHES["default"]["BACKEND"], s.CACHES["default"]["LOCATION"], s.CACHES["default"]["KEY_PREFIX"]],
    "root": s.LOGGING["root"], "shop": s.LOGGING["loggers"]["shop"]["level"],
    "time_zone": s.TIME_ZONE, "language": s.LANGUAGE_CODE, "secret": s.SECRET_KEY, "debug": s.DEBUG,
    "email": [s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_USE_TLS], "sentry": s.STACKCTL_SENTRY,
    "proxy": list(s.SECURE_PROXY_SSL_HEADER or []), "static": [s.STATIC_URL, s.STATIC_ROOT],
    "database_url": os.environ.get("DATABASE_URL"), "port": db["PORT"],
}))
"""


def test_the_overlay_keeps_what_fits_and_replaces_the_rest(journal: Proj, tmp_path: Path) -> None:
    (tmp_path / "probe_base.py").write_text(PROBE_BASE)
    (tmp_path / "probe.py").write_text(PROBE)
    web = containers(journal, "web")[0]
    envs = {
        "PYTHONPATH": "/opt/stackctl:/probe",
        "DJANGO_SETTINGS_MODULE": OVERLAY_MODULE,
        "STACKCTL_BASE_SETTINGS": "probe_base",
        "DJANGO_SECRET_KEY": "$not-a-variable-reference$" + "x" * 50,
        "DJANGO_DEBUG": "false",
        "DJANGO_LANGUAGE_CODE": "fr",
        "POSTGRES_PASSWORD": "p@ss/w:rd",
        "POSTGRES_HOST": "db",
        "REDIS_URL": "redis://redis:6379/2",
        "EMAIL_URL": "smtp+tls://mailer:secret@mail.example.com:587",
        "SENTRY_DSN": "https://public@sentry.example.com/1",
        "SECURE_PROXY_SSL_HEADER": "true",
        "STATIC_URL": "/assets/",
        "STATIC_ROOT": "/srv/static",
    }
    output = docker.run(
        web.image,
        ["-c", "python /probe/probe.py 2>&1"],
        entrypoint="sh",
        envs=envs,
        volumes=[(tmp_path, "/probe", "ro")],
        user="0",
        remove=True,
        pull="never",
        networks=[],
    )
    assert isinstance(output, str)
    lines = output.strip().splitlines()
    assert any("SENTRY_DSN is set but the project does not install sentry-sdk" in line for line in lines), output
    got = json.loads(lines[-1])
    assert got["engine"] == "django.db.backends.postgresql" and got["host"] == "db"
    assert got["password"] == "p@ss/w:rd" and got["options"] == {}  # sqlite's timeout is gone
    assert got["conn_max_age"] == 60 and got["legacy"] == "django.db.backends.sqlite3"
    assert got["cache"] == ["django.core.cache.backends.redis.RedisCache", "redis://redis:6379/2", "shop"]
    assert "stackctl_console" in got["root"]["handlers"] and got["shop"] == "ERROR"
    assert (got["time_zone"], got["language"]) == ("Europe/Paris", "fr")  # only what the env file sets
    assert got["secret"] == envs["DJANGO_SECRET_KEY"] and got["debug"] is False
    assert got["email"] == ["django.core.mail.backends.smtp.EmailBackend", "mail.example.com", 587, True]
    assert got["sentry"] == "missing"
    assert got["proxy"] == ["HTTP_X_FORWARDED_PROTO", "https"] and got["static"] == ["/assets/", "/srv/static"]
    assert got["database_url"] is None  # built for the overlay, never set in the environment
    # A project's own engine, a subclass of Django's postgres backend, is kept; its connection is the stack's.
    (tmp_path / "probe_engine").mkdir()
    (tmp_path / "probe_engine" / "__init__.py").write_text("")
    (tmp_path / "probe_engine" / "base.py").write_text(PROBE_ENGINE)
    (tmp_path / "probe_base.py").write_text(PROBE_BASE.replace(SQLITE_DEFAULT, OWN_ENGINE_DEFAULT))
    output = docker.run(
        web.image,
        ["-c", "python /probe/probe.py 2>&1"],
        entrypoint="sh",
        envs=envs,
        volumes=[(tmp_path, "/probe", "ro")],
        user="0",
        remove=True,
        pull="never",
        networks=[],
    )
    assert isinstance(output, str)
    got = json.loads(output.strip().splitlines()[-1])
    assert got["engine"] == "probe_engine" and (got["host"], got["port"], got["password"]) == ("db", 5432, "p@ss/w:rd")
    assert got["options"] == {"application_name": "probe"} and got["conn_max_age"] == 60


# -- the bundled example works either way ---------------------------------------------------------


def test_the_example_prod_stack_verifies(prod: Proj) -> None:
    report = verify_settings(_stack(prod))
    assert report.ok and report.allowed == ()  # TLS on: no deployment warning at all
    assert report.settings_module == OVERLAY_MODULE


# -- each profile from its own env file ------------------------------------------------------------


def test_each_profile_is_built_from_its_own_env_file(tmp_path: Path) -> None:
    proj = make_project(tmp_path)
    root = proj.root
    shutil.copytree(root / "example", root / "example_prod")
    (root / "example" / "PROFILE").write_text("dev\n")
    (root / "example_prod" / "PROFILE").write_text("prod\n")
    name = proj.name.removesuffix("-dev")
    set_env(root / ".env", STATIC_ROOT="/srv/dev-static", WEB_CONCURRENCY="2")
    set_env(
        root / ".env.prod",
        STACK_NAME=name,
        DJANGO_PROJECT_DIR="example_prod",
        DJANGO_DEPENDENCY_FILE="requirements-bench.txt",
        DJANGO_DEPENDENCY_INCLUDES="requirements.txt",
        DJANGO_SETTINGS_OVERLAY="false",
        STATIC_ROOT="/srv/prod-static",
        WEB_CONCURRENCY="3",
    )
    stacks = {profile: _stack(proj, profile) for profile in ("dev", "prod")}
    try:
        seen = {}
        for profile, stack in stacks.items():
            stack.ensure_rendered()
            stack.client.compose.build(services=["web"])
            config = stack.client.compose.config(return_json=True)
            image = docker.image.inspect(f"{stack.name}-web")
            env = dict(entry.split("=", 1) for entry in image.config.env or [])
            run = docker.run(
                image.id,
                ["-c", "cat /app/PROFILE; pip list 2>/dev/null"],
                entrypoint="sh",
                remove=True,
                pull="never",
                networks=[],
            )
            seen[profile] = (config["services"]["web"], env, str(run))
        dev_web, dev_env, dev_run = seen["dev"]
        prod_web, prod_env, prod_run = seen["prod"]
        assert dev_web["build"]["dockerfile"] == "compose/Dockerfile"
        assert prod_web["build"]["dockerfile"] == "compose/Dockerfile.prod"
        assert (dev_web["environment"]["STATIC_ROOT"], prod_web["environment"]["STATIC_ROOT"]) == (
            "/srv/dev-static",
            "/srv/prod-static",
        )
        assert (dev_web["environment"]["WEB_CONCURRENCY"], prod_web["environment"]["WEB_CONCURRENCY"]) == ("2", "3")
        assert dev_web["environment"]["DJANGO_SETTINGS_MODULE"] == OVERLAY_MODULE
        assert prod_web["environment"]["DJANGO_SETTINGS_MODULE"] == "config.settings"
        assert "STACKCTL_BASE_SETTINGS" not in prod_web["environment"]
        # the images: settings module, static root and project folder of their own profile
        assert (dev_env["DJANGO_SETTINGS_MODULE"], dev_env["STACKCTL_BASE_SETTINGS"]) == (
            OVERLAY_MODULE,
            "config.settings",
        )
        assert prod_env["DJANGO_SETTINGS_MODULE"] == "config.settings" and "STACKCTL_BASE_SETTINGS" not in prod_env
        assert (dev_env["STACKCTL_STATIC_ROOT"], prod_env["STACKCTL_STATIC_ROOT"]) == (
            "/srv/dev-static",
            "/srv/prod-static",
        )
        assert dev_run.splitlines()[0] == "dev" and prod_run.splitlines()[0] == "prod"
        # prod installed requirements-bench.txt (whitenoise), dev requirements.txt only
        assert "whitenoise" in prod_run.lower() and "whitenoise" not in dev_run.lower()
    finally:
        for stack in stacks.values():
            remove_built_images(stack.name)
