#!/usr/bin/env bash
# The one test command (README.md). Creates the environment, installs what the tests need and runs
# every test layer that can run on this machine; layers that cannot run say why in their skips.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -m unit`.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
say() { printf '[tests] %s\n' "$*"; }

# System packages the tests use, where Debian's apt can install them: docker-compose (v1) to
# validate compose.yaml the way Debian's Compose reads it; nginx and Chromium for the browser
# tests (a system Chromium: no browser is ever downloaded).
install_system_packages() {
    local missing=()
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    command -v chromium >/dev/null || missing+=(chromium)
    ((${#missing[@]})) || return 0
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        say "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    else
        say "not installing ${missing[*]} (no apt-get or not root): tests that need them skip"
    fi
}

# Python: uv (pinned, bootstrapped once into a cache folder outside the checkout) installs the
# locked dependencies (uv.lock) into .venv.
install_python() {
    local tools="${XDG_CACHE_HOME:-$HOME/.cache}/meters-dashboard/uv-$UV_VERSION"
    if [ ! -x "$tools/bin/uv" ]; then
        say "installing uv $UV_VERSION into $tools"
        python3 -m venv "$tools"
        "$tools/bin/python" -m pip install -q "uv==$UV_VERSION"
    fi
    "$tools/bin/uv" sync --quiet --frozen --all-extras --group test
}

# The dashboard bundle, from the locked npm packages (needs Node; without it the browser tests skip).
build_viewer() {
    if ! command -v npm >/dev/null; then
        say "no npm: not building viewer/dist, the browser tests will skip"
        return 0
    fi
    (cd viewer && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)
}

install_system_packages
install_python
build_viewer

# No registry may be reachable: testcontainers' reaper image then cannot be pulled. Our fixtures
# stop their containers themselves.
export TESTCONTAINERS_RYUK_DISABLED="${TESTCONTAINERS_RYUK_DISABLED:-true}"

set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
    say "no tests ran: that is a failure"
    exit 1
fi
exit "$status"
