"""Reading why a Python service failed from its logs (stackctl.core.diagnose), and the
unhealthy error that quotes it (Stack.wait_healthy with a stubbed docker layer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackctl.config.profile import PROD
from stackctl.core.diagnose import describe_state, failure_hint, killed_message, last_traceback
from stackctl.core.project import Project
from stackctl.core.stack import ServiceStatus, StackIdentity, StackStatus, StackView
from stackctl.errors import StackUnhealthy

# what compose prints for `docker compose logs web`: prefixed lines, the traceback of a
# settings import at start, then one "Internal Server Error" per healthcheck probe
START_FAILURE = """\
web-1  | entrypoint: waiting for the database
web-1  | 2026-12-07 21:00:01,120 ERROR django.request: Internal Server Error: /healthz
web-1  | Traceback (most recent call last):
web-1  |   File "/opt/venv/lib/python3.13/site-packages/django/core/handlers/exception.py", line 55, in inner
web-1  |     response = get_response(request)
web-1  |                ^^^^^^^^^^^^^^^^^^^^^
web-1  |   File "/opt/venv/lib/python3.13/site-packages/django/core/handlers/base.py", line 197, in _get_response
web-1  |     response = wrapped_callback(request, *callback_args, **callback_kwargs)
web-1  |   File "/app/shop/views.py", line 12, in healthz
web-1  |     token = os.environ["PAYMENT_API_TOKEN"]
web-1  |             ~~~~~~~~~~^^^^^^^^^^^^^^^^^^^^^
web-1  |   File "/usr/local/lib/python3.13/os.py", line 716, in __getitem__
web-1  |     raise KeyError(key) from None
web-1  | KeyError: 'PAYMENT_API_TOKEN'
web-1  | 2026-12-07 21:00:02,125 ERROR django.request: Internal Server Error: /healthz
web-1  | 2026-12-07 21:00:03,130 ERROR django.request: Internal Server Error: /healthz
web-1  | 127.0.0.1:50112 - - [07/Dec/2026:21:00:03] "GET /healthz" 500 145
"""

TWO_TRACEBACKS = """\
Traceback (most recent call last):
  File "/app/manage.py", line 22, in <module>
    main()
RuntimeError: the first one
10:00:01 some log line
Traceback (most recent call last):
  File "/opt/venv/lib/python3.13/site-packages/daphne/cli.py", line 170, in run
    application = import_by_path(self.application)
  File "/app/config/settings.py", line 41, in <module>
    DATABASES = {"default": parse(DB)}
  File "/opt/venv/lib/python3.13/site-packages/dj_database_url/__init__.py", line 90, in parse
    raise ValueError(f"No support for '{scheme}'")
ValueError: No support for 'mysql'
daphne exited with 1
"""


def test_the_last_traceback_is_found_under_the_noise_that_follows_it() -> None:
    found = last_traceback(START_FAILURE)
    assert found is not None
    assert found.exception == "KeyError: 'PAYMENT_API_TOKEN'"
    assert found.exception_type == "KeyError"
    assert [f.path for f in found.frames][-2:] == ["/app/shop/views.py", "/usr/local/lib/python3.13/os.py"]
    assert found.project_frame is not None and found.project_frame.where == "shop/views.py:12"
    assert found.variable == "PAYMENT_API_TOKEN"
    excerpt = found.excerpt()
    assert excerpt.startswith("Traceback (most recent call last):\n  ... (1 frame(s) above)")
    assert 'File "/app/shop/views.py", line 12, in healthz\n    token = os.environ["PAYMENT_API_TOKEN"]' in excerpt
    assert excerpt.endswith("KeyError: 'PAYMENT_API_TOKEN'")
    assert "web-1" not in excerpt and "^^^" not in excerpt and "~~~" not in excerpt


def test_of_several_tracebacks_the_last_one_is_taken() -> None:
    found = last_traceback(TWO_TRACEBACKS)
    assert found is not None and found.exception == "ValueError: No support for 'mysql'"
    assert found.project_frame is not None and found.project_frame.where == "config/settings.py:41"
    assert found.variable is None
    hint = failure_hint(found, env_file=".env.prod", logs_command="stackctl logs web --prod", up_command="stackctl up")
    assert hint.startswith("fix config/settings.py:41 (ValueError above)")
    assert "`stackctl logs web --prod`" in hint


def test_no_traceback_is_none() -> None:
    assert last_traceback("web-1  | entrypoint: starting daphne\nweb-1  | Internal Server Error: /healthz\n") is None
    assert last_traceback("") is None


def test_a_cut_traceback_is_skipped_for_the_complete_one_before_it() -> None:
    cut = TWO_TRACEBACKS.split("daphne exited")[0] + 'Traceback (most recent call last):\n  File "/app/x.py", line 1\n'
    found = last_traceback(cut)
    assert found is not None and found.exception == "ValueError: No support for 'mysql'"


def test_a_chained_exception_gives_the_outermost_one_and_the_variable_it_names() -> None:
    log = """\
Traceback (most recent call last):
  File "/opt/venv/lib/python3.13/site-packages/environ/environ.py", line 388, in get_value
    value = self.ENVIRON[var_name]
KeyError: 'SENTRY_ENVIRONMENT'

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/app/mysite/settings.py", line 30, in <module>
    SENTRY_ENV = env("SENTRY_ENVIRONMENT")
  File "/opt/venv/lib/python3.13/site-packages/environ/environ.py", line 392, in get_value
    raise ImproperlyConfigured(error_msg) from exc
django.core.exceptions.ImproperlyConfigured: Set the SENTRY_ENVIRONMENT environment variable
"""
    found = last_traceback(log)
    assert found is not None and found.exception_type == "ImproperlyConfigured"
    assert found.variable == "SENTRY_ENVIRONMENT"
    hint = failure_hint(found, env_file=".env.prod", logs_command="stackctl logs web", up_command="stackctl up --prod")
    assert hint == (
        "ImproperlyConfigured (mysite/settings.py:30) names SENTRY_ENVIRONMENT: set SENTRY_ENVIRONMENT in .env.prod, "
        "then run `stackctl up --prod` again"
    )


def test_a_keyerror_of_any_dict_names_no_variable() -> None:
    log = """\
Traceback (most recent call last):
  File "/app/shop/cache.py", line 4, in <module>
    TIMEOUT = CACHES["DEFAULT"]["TIMEOUT"]
KeyError: 'DEFAULT'
"""
    found = last_traceback(log)
    assert found is not None and found.variable is None
    hint = failure_hint(found, env_file=".env", logs_command="stackctl logs web", up_command="stackctl up")
    assert hint.startswith("fix shop/cache.py:4 (KeyError above)")


def test_a_syntax_error_in_the_project_names_its_line() -> None:
    log = """\
Traceback (most recent call last):
  File "/usr/local/lib/python3.13/importlib/__init__.py", line 88, in import_module
    return _bootstrap._gcd_import(name[level:], package, level)
  File "/app/shop/urls.py", line 7
    path("a/", views.a,,
                       ^
SyntaxError: invalid syntax
"""
    found = last_traceback(log)
    assert found is not None and found.exception == "SyntaxError: invalid syntax"
    assert found.project_frame is not None and found.project_frame.where == "shop/urls.py:7"


def test_stackctl_and_library_frames_are_not_the_project() -> None:
    log = """\
Traceback (most recent call last):
  File "/opt/stackctl/stackctl_settings.py", line 80, in <module>
    raise RuntimeError("x")
RuntimeError: x
"""
    found = last_traceback(log)
    assert found is not None and found.project_frame is None
    hint = failure_hint(found, env_file=".env", logs_command="stackctl logs web", up_command="stackctl up")
    assert hint.startswith("fix what the exception above says") and "`stackctl logs web`" in hint


@pytest.mark.parametrize(
    ("state", "restarts", "code", "oom", "said"),
    [
        ("restarting", 3, 1, False, "is restarting (exited 3 times; last exit 1)"),
        ("running", 1, 1, False, "is restarting (exited 1 time; last exit 1)"),
        ("exited", 0, 137, True, "has exited (last exit 137, killed for memory: raise WEB_MEMORY_LIMIT"),
        ("paused", 0, 0, False, "is paused, not running"),
    ],
)
def test_a_container_state_is_said_plainly(state: str, restarts: int, code: int, oom: bool, said: str) -> None:
    assert describe_state(state, restarts=restarts, exit_code=code, oom_killed=oom).startswith(said)


def test_dockers_own_exec_codes_are_explained_and_the_commands_own_are_not() -> None:
    assert killed_message(126, "manage.py").startswith("manage.py exited 126: docker could not run it")
    assert killed_message(137, "manage.py").startswith("manage.py exited 137: it was killed (SIGKILL")
    assert killed_message(1, "manage.py") == ""


def test_an_unhealthy_web_quotes_its_last_exception_and_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = StackView(Project(Path("/nonexistent"), Path("/nonexistent")), PROD, StackIdentity("p-prod", ()))
    web = ServiceStatus("web", "p-prod-web-1", "running", "unhealthy", [], None, 0)
    monkeypatch.setattr(stack, "status", lambda: StackStatus("p-prod", "prod", [web], []))
    asked: list[int] = []

    def tail_logs(name: str, lines: int = 40) -> str:
        asked.append(lines)
        return START_FAILURE + "web-1  | Internal Server Error: /healthz\n" * 60

    monkeypatch.setattr(stack, "tail_logs", tail_logs)
    with pytest.raises(StackUnhealthy) as caught:
        stack.wait_healthy(timeout=30)
    error = caught.value
    assert asked and asked[0] >= 400  # searched further back than the lines shown
    assert "Traceback" not in error.logs["web"]  # the tail shows only the probes' lines...
    assert "web is unhealthy" in error.message  # ...the message quotes the exception
    assert "web's last exception:\nTraceback (most recent call last):" in error.message
    assert error.message.endswith("KeyError: 'PAYMENT_API_TOKEN'")
    assert error.hint == (
        "KeyError (shop/views.py:12) names PAYMENT_API_TOKEN: set PAYMENT_API_TOKEN in .env.prod, "
        "then run `stackctl up --prod` again"
    )


def test_without_a_traceback_the_hint_names_the_logs_command(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = StackView(Project(Path("/nonexistent"), Path("/nonexistent")), PROD, StackIdentity("p-prod", ()))
    web = ServiceStatus("web", "p-prod-web-1", "exited", None, [], None, 0, 3)
    monkeypatch.setattr(stack, "status", lambda: StackStatus("p-prod", "prod", [web], []))
    monkeypatch.setattr(stack, "tail_logs", lambda name, lines=40: "web-1  | entrypoint: gave up\n")
    with pytest.raises(StackUnhealthy) as caught:
        stack.wait_healthy(timeout=30)
    assert "last exception" not in caught.value.message
    assert "`stackctl logs web --prod`" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("code", "variable"),
    [
        ('PORT = int(os.getenv("SHOP_PORT"))', "SHOP_PORT"),
        ('DATABASES = {"default": env.db("SHOP_DATABASE_URL")}', "SHOP_DATABASE_URL"),
        ('KEY = config("SHOP_KEY", cast=str)', "SHOP_KEY"),
        ('ADMIN = apps.get_app_config("ADMIN")', None),
    ],
)
def test_the_failing_project_line_names_the_variable_it_reads(code: str, variable: str | None) -> None:
    log = f'Traceback (most recent call last):\n  File "/app/shop/settings.py", line 3, in <module>\n    {code}\n'
    found = last_traceback(log + "TypeError: int() argument must be a string, not 'NoneType'\n")
    assert found is not None and found.variable == variable
