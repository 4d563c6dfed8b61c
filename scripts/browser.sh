#!/usr/bin/env bash
# Browser tests: the storefront in headless Chromium.
#
# Starts the all-in-one `shop` (SQLite in a temporary directory, the
# gateway on a free port, every other service on a port of the system's
# choosing), waits until the gateway is ready and serves the storefront's
# first page, then runs the pytest + Playwright suite of crates/web/browser
# against the gateway's address: the whole shopping journey, the checkout
# outcomes, double submits, keyboard-only use, errors, security headers and
# cookies. The suite writes full-page screenshots of the main pages at a
# desktop and a phone viewport. The stack is always stopped, and its log
# printed when the run fails.
#
# Playwright drives Debian's Chromium (apt-get install chromium when
# missing): its own browser download cannot work offline and is never used.
# Playwright and pytest come pinned (crates/web/browser/requirements.txt)
# into a virtualenv under the tools directory, once.
#
# Usage: scripts/browser.sh [--bin-dir DIR] [--screenshots DIR] [-- PYTEST_ARGS...]
#   --bin-dir DIR      where the `shop` binary is (default target/debug; build
#                      it with `cargo build -p shop`)
#   --screenshots DIR  where the screenshots go (default docs/screenshots)
#   PYTEST_ARGS        passed to pytest, e.g. `-- -k journey -x`
# Env:   FERROSHOP_BROWSER_TOOLS  where tools live (default ~/.cache/ferroshop/browser-tools)
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

SUITE=crates/web/browser
TOOLS="${FERROSHOP_BROWSER_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/ferroshop/browser-tools}"
BIN_DIR=target/debug
SCREENSHOTS=docs/screenshots
PYTEST_ARGS=()

while [ "$#" -gt 0 ]; do
    case "$1" in
        --bin-dir) [ "$#" -ge 2 ] || die "--bin-dir needs a directory"; BIN_DIR=$2; shift 2 ;;
        --screenshots) [ "$#" -ge 2 ] || die "--screenshots needs a directory"; SCREENSHOTS=$2; shift 2 ;;
        --) shift; PYTEST_ARGS=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
[ -x "$BIN_DIR/shop" ] || die "no shop binary in $BIN_DIR (cargo build -p shop)"
mkdir -p "$SCREENSHOTS"
SCREENSHOTS=$(cd "$SCREENSHOTS" && pwd)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferroshop-browser.XXXXXX")
STATUS=1

stop_stack() {
    stop_test_shop "$WORK" "$STATUS"
    if [ "$STATUS" -ne 0 ] && [ -n "$(ls -A "$WORK/artifacts" 2>/dev/null)" ]; then
        log "the failed tests' screenshots and pages are kept in $WORK/artifacts"
        find "$WORK" -mindepth 1 -maxdepth 1 ! -name artifacts -exec rm -rf {} +
    else
        rm -rf "$WORK"
    fi
}
trap stop_stack EXIT

# ensure_chromium: Debian's Chromium; sets CHROMIUM.
ensure_chromium() {
    CHROMIUM=$(command -v chromium || true)
    if [ -z "$CHROMIUM" ]; then
        apt_install chromium
        CHROMIUM=$(command -v chromium) || die "chromium not found after install"
    fi
}

# start_stack: the all-in-one shop (the default rate limits: one browser
# is well within them), ready when the gateway is and serves the
# storefront's first page (web is found through discovery); sets BASE.
start_stack() {
    start_test_shop "$BIN_DIR" "$WORK"
    BASE=$SHOP_BASE
    for _ in $(seq 1 300); do
        kill -0 "$SHOP_PID" 2>/dev/null || die "shop exited during start-up"
        if curl -fsS -o /dev/null -w '%{content_type}' "$BASE/" 2>/dev/null | grep -q '^text/html'; then
            return 0
        fi
        sleep 0.1
    done
    die "shop did not serve the storefront within 30 s"
}

ensure_chromium
mapfile -t REQUIREMENTS < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$SUITE/requirements.txt")
venv_install "$TOOLS" "${REQUIREMENTS[@]}"
start_stack

log "browser suite against $BASE ($("$CHROMIUM" --version 2>/dev/null || echo chromium)); screenshots in $SCREENSHOTS"
# No bytecode or cache folders left in the source tree. The suite's options
# go in `--name=value` form: pytest takes a bare value (a URL, a directory)
# for a test path when it looks for the suite's conftest.py.
(cd "$SUITE" && PYTHONDONTWRITEBYTECODE=1 python -m pytest -p no:cacheprovider -c pytest.ini \
    --base-url="$BASE" \
    --chromium="$CHROMIUM" \
    --screenshots="$SCREENSHOTS" \
    --artifacts="$WORK/artifacts" \
    "${PYTEST_ARGS[@]}")
STATUS=0
log "browser tests passed"
