"""The identity cache that lets `stackctl status` skip validating the config."""

from __future__ import annotations

from pathlib import Path

from stackctl.config import load_config
from stackctl.config.profile import DEV, PROD
from stackctl.core.identity import cached_identity, remember_identity
from stackctl.core.project import Project
from stackctl.core.stack import StackIdentity

ENV = "STACK_NAME=shop\nDJANGO_SECRET_KEY=" + "k" * 60 + "\nPOSTGRES_PASSWORD=pw\nHTTP_PORT=8123\n"


def _identity(root: Path) -> StackIdentity:
    return StackIdentity.of(load_config(root / ".env", profile="dev").config)


def test_a_remembered_identity_is_read_back_while_the_env_file_is_unchanged(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(ENV)
    project = Project.at(tmp_path)
    assert cached_identity(project, DEV) is None
    identity = _identity(tmp_path)
    # the root only: the routes (/graphql, the admin) are what `up` finds in web (core/routes.py)
    assert identity == StackIdentity("shop-dev", ("http://127.0.0.1:8123/",))
    remember_identity(project, DEV, identity)
    assert cached_identity(project, DEV) == identity
    assert cached_identity(project, PROD) is None  # another profile, another file


def test_any_change_of_the_env_file_invalidates_it(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(ENV)
    project = Project.at(tmp_path)
    remember_identity(project, DEV, _identity(tmp_path))
    (tmp_path / ".env").write_text(ENV.replace("8123", "8124"))
    assert cached_identity(project, DEV) is None
    (tmp_path / ".env").unlink()
    assert cached_identity(project, DEV) is None


def test_a_damaged_cache_is_ignored(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(ENV)
    project = Project.at(tmp_path)
    remember_identity(project, DEV, _identity(tmp_path))
    cache = next((tmp_path / ".stackctl" / "cache").iterdir())
    for text in ("", "[]", '{"digest": 1}', cache.read_text().replace('"urls": [', '"urls": [1, ')):
        cache.write_text(text)
        assert cached_identity(project, DEV) is None, text


def test_status_validates_once_then_uses_the_cache(cli, tmp_path: Path, monkeypatch) -> None:
    """The first status validates (and caches); the next one reads the cache (no validation)."""
    import stackctl.config as config_pkg
    from stackctl.core import stack as stack_mod

    (tmp_path / ".env").write_text(ENV)
    monkeypatch.setattr(stack_mod.StackView, "status", lambda self: stack_mod.StackStatus(self.name, "dev", [], []))
    calls = []
    real = config_pkg.load_config
    monkeypatch.setattr(config_pkg, "load_config", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert cli("status", cwd=tmp_path).code == 1  # no containers: not healthy
    assert cli("status", cwd=tmp_path).code == 1
    assert calls == [1]
