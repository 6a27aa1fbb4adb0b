"""Hypothesis fuzzes .env contents through `stackctl init`: never a traceback, never a partial
write, never a secret in the output."""

from __future__ import annotations

import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
MARKER = "Qx7-FUZZ-SECRET"

names = st.sampled_from(
    [
        "WEB_CONCURRENCY",
        "DB_BACKUP_CRON",
        "MEDIA_BACKUP_CRON",
        "REDIS_URL",
        "DATABASE_URL",
        "USE_TLS",
        "HTTP_PORT",
        "STATIC_URL",
        "STATIC_ROOT",
        "MEDIA_ROOT",
        "NGINX_MAX_UPLOAD_SIZE",
        "DJANGO_PROJECT_DIR",
        "POSTGRES_USER",
        "POSTGRES_DB",
        "WEB_MEMORY_LIMIT",
        "STACK_NAME",
        "DJANGO_SETTINGS_MODULE",
        "TLS_CERT_PATH",
        "SERVER_NAME",
        "EMAIL_URL",
        "DJANGO_DEBUG",
        "CSRF_TRUSTED_ORIGINS",
        "BACKUP_AGE_RECIPIENTS",
        "SOME_TYPO",
    ]
)
values = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00"), max_size=30),
    st.sampled_from(["0", "1", "65536", "true", "* * * * *", "/srv/x", "../../etc", "redis://r:1/0", "99999m"]),
)


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(names, values), max_size=6))
def test_fuzzed_env_through_init(cli, tmp_path_factory, pairs: list[tuple[str, str]]) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(REPO / "example", root / "example", ignore=shutil.ignore_patterns("__pycache__"))
    lines = [f"{k}={v}" for k, v in pairs]
    lines += [f"DJANGO_SECRET_KEY={MARKER}-" + "k" * 50, f"POSTGRES_PASSWORD={MARKER}", f"EMAIL_PASS={MARKER}"]
    (root / ".env").write_text("\n".join(lines) + "\n")
    before = snapshot(root)
    result = cli("init", cwd=root)
    assert result.code in (0, 1, 8), result.output  # success, config error, conflict: never a crash (70)
    assert "Traceback" not in result.output
    assert MARKER not in result.output
    if result.code != 0:
        assert snapshot(root) == before, "a failed init wrote something"
    else:
        written = snapshot(root)
        for path, content in written.items():
            if not path.startswith((".env", "example/", ".stackctl")):
                assert MARKER.encode() not in content, f"a secret reached {path}"
