#!/usr/bin/env bash
# The whole suite, phase by phase, each phase timed: venv, engine, images, lint, unit and render,
# real-engine (e2e). Called by `make test` and so by .ci/run. It installs what it needs on a fresh
# host (through make's venv, engine and images targets) and prints a table of the phases at the end.
#
#   bash scripts/test.sh                 # everything
#   TEST_PHASES="unit" bash scripts/test.sh
#   E2E_WORKERS=1 bash scripts/test.sh   # the real-engine tests one after another
#   bash scripts/test.sh -k acme         # extra arguments go to both pytest runs
#
# The real-engine tests run in parallel on the one engine (pytest-xdist, --dist loadgroup; see
# tests/e2e/conftest.py for the groups), E2E_WORKERS at a time (default 4: on two cores they mostly
# wait on builds, health checks and probes). Every test has a time limit (TEST_TIMEOUT seconds,
# pytest-timeout): a hung container fails that test, with its stack's logs, not the whole run.
set -uo pipefail
cd "$(dirname "$0")/.."
PHASES="${TEST_PHASES:-venv engine images lint unit e2e}"
E2E_WORKERS="${E2E_WORKERS:-4}"
UNIT_WORKERS="${UNIT_WORKERS:-2}"
TEST_TIMEOUT="${TEST_TIMEOUT:-1200}"
export TEST_REPORTS="${TEST_REPORTS:-.test-reports}"
REPORTS="$TEST_REPORTS"
PYTEST=.venv/bin/pytest
declare -a TIMES=()
FAILED=""

phase() {  # phase NAME COMMAND...: run it, time it, remember a failure
  local name=$1 started rc
  shift
  started=$(date +%s.%N)
  echo "==> phase $name"
  "$@"
  rc=$?
  local seconds
  seconds=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
  TIMES+=("$name $seconds $rc")
  echo "==> phase $name: ${seconds} s (exit $rc)"
  if [ "$rc" -ne 0 ]; then FAILED="$FAILED $name"; fi
  return "$rc"
}

wanted() { [[ " $PHASES " == *" $1 "* ]]; }

test_tools() {  # the real tools the generator and real-engine tests validate with
  local need=()
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
}

images() {  # trixie for the stacks, bookworm for the projects that pin Python 3.11 (and test_images)
  make -s images && .venv/bin/stackctl images build --suite bookworm
}

lint() {
  .venv/bin/ruff check stackctl tests && .venv/bin/mypy stackctl
}

run_pytest() {  # run_pytest NAME PYTEST-ARGS...
  local name=$1
  shift
  mkdir -p "$REPORTS"
  "$PYTEST" -p no:cacheprovider --timeout="$TEST_TIMEOUT" --durations=40 --junitxml="$REPORTS/$name.xml" "$@"
  local rc=$?
  if [ "$rc" -eq 5 ]; then rc=0; fi  # a selection (-k) that leaves a phase without tests
  return "$rc"
}

# Real-engine tests may never skip here: STACKCTL_REQUIRE_ENGINE turns a missing engine into a failure.
export STACKCTL_REQUIRE_ENGINE=1
rm -rf "$REPORTS"
wanted venv && { phase venv make -s venv || exit 1; }
wanted engine && { phase engine make -s engine || exit 1; }
wanted images && { phase images images || exit 1; }
phase tools test_tools || exit 1
wanted lint && phase lint lint
wanted unit && phase unit run_pytest unit tests/unit tests/render -n "$UNIT_WORKERS" "$@"
if wanted e2e; then
  if [ "$E2E_WORKERS" -gt 1 ]; then
    phase e2e run_pytest e2e tests/e2e -n "$E2E_WORKERS" --dist loadgroup --no-loadscope-reorder "$@"
  else
    phase e2e run_pytest e2e tests/e2e "$@"
  fi
fi

echo
echo "==> phases (wall seconds)"
total=0
for entry in "${TIMES[@]}"; do
  read -r name seconds rc <<<"$entry"
  printf '    %-8s %6s s%s\n' "$name" "$seconds" "$([ "$rc" -ne 0 ] && echo "  FAILED (exit $rc)")"
  total=$((total + seconds))
done
printf '    %-8s %6s s\n' total "$total"
.venv/bin/python -m tests.report "$REPORTS"/*.xml 2>/dev/null
if [ -n "$FAILED" ]; then
  echo "failed phases:$FAILED"
  exit 1
fi
