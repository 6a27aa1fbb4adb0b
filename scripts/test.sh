#!/usr/bin/env bash
# Run the whole suite: unit tests, generator checks with the real tools, and the real-engine tests.
# Called by `make test` (after the venv, the engine and the images are in place) and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
# the real tools the generator tests validate with
need=()
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v nginx >/dev/null || need+=(nginx-light)
command -v psql >/dev/null || need+=(postgresql-client)
command -v openssl >/dev/null || need+=(openssl)
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)  # the remote test host (tests/e2e/remotehost.py)
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing test tools: ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "==> ruff and mypy"
.venv/bin/ruff check stackctl tests
.venv/bin/mypy stackctl
# Real-engine tests may never skip here: STACKCTL_REQUIRE_ENGINE turns a missing engine into a failure.
export STACKCTL_REQUIRE_ENGINE=1
exec .venv/bin/pytest "$@"
