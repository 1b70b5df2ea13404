#!/usr/bin/env bash
# pyodide-realtime: the one entry point for set-up, build, demo, tests and benchmarks.
#
#   ./build.sh demo [--port N]   install what is missing, build, start the local Realtime server + demo
#   ./build.sh test [ARGS...]    install what is missing, build, run every test (CPython, browser, e2e),
#                                in a network namespace where only 127.0.0.1 answers
#   ./build.sh dist              install what is missing, build the wheel and the offline browser dist
#   ./build.sh bench             build, then print the benchmarks' figures
#   ./build.sh fuzz [N]          fuzz the protocol core with N mutated events (default 200000, ~15 min)
#   ./build.sh lint              ruff and mypy (strict) over the package, tests and tools
#   ./build.sh docs              build the API reference (Sphinx, docs/reference/) into dist/reference/, offline
#   ./build.sh setup             only install: apt packages, .venv, npm packages, browser wheels
#   ./build.sh pytest [ARGS...]  run pytest with the browser options, without rebuilding
#
# Each step is skipped when its inputs have not changed (stamp files hold a hash of the inputs), so a
# second run with nothing changed only rebuilds our small wheel.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
CACHE="$ROOT/.cache"
DIST="$ROOT/dist"
PYODIDE_DIST="$DIST/pyodide"
PYSCRIPT_DIST="$DIST/pyscript"
BROWSER_PLATFORM="pyemscripten_2026_0_wasm32"
# The wheels a page loads at start, precompiled to bytecode for the dist (tools/precompile.py); the
# in-browser test wheels (pytest & co.) keep their sources.
PRECOMPILED_WHEELS=(pydantic pydantic_core annotated_types typing_extensions typing_inspection micropip packaging)
# Debian package for each command the set-up needs.
# Firefox and WebKit run the cross-engine browser tests (tests/browser/engines.py): both play into a
# PulseAudio null sink; WebKit's MiniBrowser (in libwebkit2gtk, a dependency of the driver) needs a display.
declare -A APT_PACKAGE_FOR=([chromium]=chromium [espeak-ng]=espeak-ng [sox]=sox
    [firefox-esr]=firefox-esr [pulseaudio]=pulseaudio [paplay]=pulseaudio-utils [pactl]=pulseaudio-utils
    [WebKitWebDriver]=webkit2gtk-driver [Xvfb]=xvfb)
# Debian packages checked by name: WebKit's audio output goes through GStreamer; iproute2's `ip` brings up
# the loopback interface of the tests' network namespace (its /usr/sbin is not on every user's PATH).
APT_LIBRARIES=(gstreamer1.0-plugins-good iproute2)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }

# hash_of FILE...: one hash of the files' contents, for the stamps.
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
stamp_ok() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

need_tool() {
    command -v "$1" >/dev/null 2>&1 || die "$1 is not installed. $2"
}

ensure_apt() {
    local missing=() tool
    for tool in "${!APT_PACKAGE_FOR[@]}"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("${APT_PACKAGE_FOR[$tool]}")
    done
    local package
    for package in "${APT_LIBRARIES[@]}"; do
        dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null | grep -qx installed || missing+=("$package")
    done
    # One package may provide two commands: name it once.
    [[ ${#missing[@]} -gt 0 ]] && mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    # Debian's python3 makes venvs only with python3-venv (ensurepip); a python3 without it fails late.
    if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
    [[ ${#missing[@]} -eq 0 ]] && return 0
    say "installing Debian packages: ${missing[*]}"
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "need root or sudo to apt-get install ${missing[*]}"
        sudo=(sudo)
    fi
    need_tool apt-get "This set-up needs a Debian-based machine (or install ${missing[*]} yourself)."
    "${sudo[@]}" apt-get update -qq || die "apt-get update failed: check the network access to Debian's mirrors"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed (see above)"
}

ensure_venv() {
    local want; want=$(hash_of requirements-dev.txt)
    stamp_ok "$VENV/.stamp" "$want" && return 0
    need_tool python3 "Install Python 3.11 or newer."
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "python3 is older than 3.11"
    say "creating .venv with the pinned development tools"
    # A venv whose creation failed halfway has a python but no pip: start it again.
    "$PY" -m pip --version >/dev/null 2>&1 || { rm -rf "$VENV"; python3 -m venv "$VENV"; } \
        || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    # --no-compile: Python compiles what is imported when it is first imported; compiling the ~5,600
    # modules of these packages up front cost about 24 s of CPU, for many that no step imports.
    "$PY" -m pip install -q --disable-pip-version-check --no-compile -r requirements-dev.txt \
        || die "pip install -r requirements-dev.txt failed: is PyPI reachable?"
    echo "$want" > "$VENV/.stamp"
}

ensure_npm() {
    local want; want=$(hash_of package.json package-lock.json)
    stamp_ok "node_modules/.stamp" "$want" && return 0
    need_tool npm "Install Node.js and npm (Debian: apt-get install nodejs npm)."
    say "installing npm packages: pyodide, @pyscript/core"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null || die "npm ci failed: is the npm registry reachable?"
    echo "$want" > node_modules/.stamp
}

ensure_browser_wheels() {
    local dir="$CACHE/browser-wheels" want; want=$(hash_of requirements-browser.txt)
    stamp_ok "$dir/.stamp" "$want" && return 0
    say "downloading the browser wheels ($BROWSER_PLATFORM) from PyPI"
    rm -rf "$dir"; mkdir -p "$dir"
    "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --platform "$BROWSER_PLATFORM" --platform any --python-version 3.14 --implementation cp \
        --abi cp314 --abi none -d "$dir" -r requirements-browser.txt \
        || die "downloading the browser wheels failed: is PyPI reachable? (requirements-browser.txt)"
    echo "$want" > "$dir/.stamp"
}

# The client itself (pyodide_realtime) and the local Realtime server (server/, its own distribution),
# editable in .venv, in one pip run: `python -m pyodide_realtime_server` (which imports the client) and
# scripts run from anywhere without PYTHONPATH, and an edit in src/ needs no reinstall. Their
# dependencies are pinned in requirements-dev.txt, so --no-deps.
ensure_editables() {
    # The tree's path is part of the stamp: an editable install points at one tree, so a .venv moved or
    # shared between two clones is pointed at this one again.
    local want; want="$(hash_of pyproject.toml server/pyproject.toml requirements-dev.txt) $ROOT"
    stamp_ok "$VENV/.editables-stamp" "$want" && return 0
    say "installing pyodide_realtime (src/) and the local Realtime server (server/) into .venv, editable"
    "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . -e server >/dev/null \
        || die "pip install -e . -e server failed (see above)"
    rm -rf build src/*.egg-info server/build server/src/*.egg-info
    echo "$want" > "$VENV/.editables-stamp"
}

setup() {
    ensure_apt
    # npm's packages need nothing from .venv: they download while pip installs (their own log, shown
    # if they fail).
    mkdir -p "$CACHE"
    ensure_npm >"$CACHE/npm.log" 2>&1 &
    local npm_pid=$!
    ensure_venv
    ensure_editables
    ensure_browser_wheels
    wait "$npm_pid" || { cat "$CACHE/npm.log" >&2; exit 1; }
    cat "$CACHE/npm.log" >&2
}

build_wheel() {
    # A fixed timestamp makes the wheel byte-for-byte reproducible, so its hash in the lock only
    # changes when the code does.
    local epoch; epoch=$(git log -1 --format=%ct 2>/dev/null || echo 1700000000)
    rm -rf "$CACHE/wheel" build src/*.egg-info
    SOURCE_DATE_EPOCH="$epoch" "$PY" -m build --wheel --no-isolation --outdir "$CACHE/wheel" . >"$CACHE/wheel.log" 2>&1 \
        || { cat "$CACHE/wheel.log" >&2; die "building our wheel failed (log above)"; }
    rm -rf build src/*.egg-info
}

# precompile [--keep-source] FILE...: rewrite wheels or a stdlib zip with bytecode, inside Pyodide (Node).
precompile() {
    node tools/precompile.mjs "$@" >"$CACHE/precompile.log" 2>&1 \
        || { cat "$CACHE/precompile.log" >&2; die "precompiling $* failed (log above)"; }
}

# precompiled_runtime ARCHIVE...: pyc-only copies of the stdlib zip (npm's pyodide ships it as sources) and
# of the start-up wheels, remade when they, Pyodide or the tool change; the ARCHIVEs (our wheel) get their
# bytecode beside their sources in the same run (one Pyodide boot), or alone when the copies are current.
precompiled_runtime() {
    local dir="$CACHE/precompiled" want name wheels=()
    for name in "${PRECOMPILED_WHEELS[@]}"; do
        wheels+=("$(ls "$CACHE/browser-wheels/$name"-[0-9]*.whl)") || die "no $name wheel in $CACHE/browser-wheels"
    done
    # The wheels themselves, not requirements-browser.txt: a test-only wheel added there changes nothing here.
    want=$(hash_of "${wheels[@]}" tools/precompile.py tools/precompile.mjs node_modules/pyodide/package.json)
    if stamp_ok "$dir/.stamp" "$want"; then
        precompile --keep-source node_modules/pyodide "$@"
        return 0
    fi
    say "precompiling the standard library and the start-up wheels inside Pyodide (Node)"
    rm -rf "$dir"; mkdir -p "$dir"
    cp "${wheels[@]}" node_modules/pyodide/python_stdlib.zip "$dir/"
    precompile node_modules/pyodide "$dir"/*.whl "$dir/python_stdlib.zip" --keep-source "$@"
    echo "$want" > "$dir/.stamp"
}

dist() {
    mkdir -p "$CACHE"
    say "building the pyodide_realtime wheel"
    build_wheel
    say "assembling the offline browser dist in dist/"
    mkdir -p "$PYODIDE_DIST"
    local f
    for f in pyodide.js pyodide.mjs pyodide.asm.mjs pyodide.asm.wasm; do
        [[ -f node_modules/pyodide/$f ]] || die "node_modules/pyodide/$f is missing: run ./build.sh setup"
        cp -u "node_modules/pyodide/$f" "$PYODIDE_DIST/"
    done
    rm -rf "$PYSCRIPT_DIST"  # no file of an older PyScript may stay behind
    cp -r node_modules/@pyscript/core/dist "$PYSCRIPT_DIST"
    rm -f "$PYODIDE_DIST"/*.whl
    cp "$CACHE"/browser-wheels/*.whl "$CACHE"/wheel/*.whl "$PYODIDE_DIST/"
    # Ours keeps its sources beside the bytecode: the wheel stays py3-none-any for other Pythons.
    precompiled_runtime "$PYODIDE_DIST"/pyodide_realtime-*.whl
    cp "$CACHE"/precompiled/*.whl "$CACHE"/precompiled/python_stdlib.zip "$PYODIDE_DIST/"  # over the sources
    "$PY" tools/pyodide_lock.py write "$PYODIDE_DIST" --info-from node_modules/pyodide/pyodide-lock.json >&2
    "$PY" tools/pyodide_lock.py check "$PYODIDE_DIST" || die "the lock does not match its wheels"
    local wheel; wheel=$(ls "$CACHE"/wheel/*.whl)
    say "our wheel: $(basename "$wheel") ($(stat -c %s "$wheel") bytes; with its bytecode in dist/: $(stat -c %s "$PYODIDE_DIST/$(basename "$wheel")"))"
}

lint() {
    say "ruff and mypy"
    "$VENV/bin/ruff" check --quiet src server tests bench tools web || die "ruff found problems (above); ./build.sh lint after fixing"
    "$VENV/bin/mypy" >&2 || die "mypy found type errors (above)"
}

# offline CMD...: run CMD in a network namespace of its own where only the loopback interface is up, so
# a request to any other address fails at once (ENETUNREACH; DNS too): nothing the tests start (browsers
# included) can reach the network, by construction. Root makes it with `unshare -n`; anyone else inside a
# user namespace of their own (`unshare -rn`). Everything is installed before this.
offline() {
    local flags=(--net) ip
    [[ $(id -u) -eq 0 ]] || flags+=(--map-root-user)
    ip=$(PATH="$PATH:/usr/sbin:/sbin" command -v ip) || die "ip is missing (Debian: apt-get install iproute2; ./build.sh setup does)"
    unshare "${flags[@]}" true 2>/dev/null \
        || die "cannot make a network namespace (unshare ${flags[*]}): the tests run only where nothing can leave the machine; as root, or with user namespaces enabled (sysctl kernel.unprivileged_userns_clone=1)"
    unshare "${flags[@]}" -- sh -c '"$1" link set lo up || exit 125; shift; exec "$@"' offline "$ip" "$@"
}

run_pytest() {
    [[ -x "$PY" ]] || die ".venv is missing: run ./build.sh test (or ./build.sh setup and ./build.sh dist) first"
    "$PY" tools/pyodide_lock.py check "$PYODIDE_DIST" || die "dist/ is stale or missing: run ./build.sh dist"
    # SE_OFFLINE: selenium (the WebKit engine) must not ask the network for a driver.
    SE_OFFLINE=true offline "$PY" -m pytest "$@"
}

# The header comment above, up to its first line that is not a comment.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

cmd="${1:-}"; [[ $# -gt 0 ]] && shift
case "$cmd" in
    setup) setup ;;
    dist) setup; dist ;;
    test)
        setup
        # ruff and mypy on one core while dist precompiles in Node on the other; lint's output follows.
        ( lint ) >"$CACHE/lint.log" 2>&1 &
        lint_pid=$!
        dist
        wait "$lint_pid" || { cat "$CACHE/lint.log" >&2; exit 1; }
        cat "$CACHE/lint.log" >&2
        # Several pytest-xdist workers: a browser test mostly waits (real-time audio, page loads), so two
        # cores carry three. Each takes whole files (a module's page is booted once), in tests/conftest.py's
        # RUN_ORDER; PYRT_TEST_WORKERS=0 runs everything in this one process.
        run_pytest -n "${PYRT_TEST_WORKERS:-3}" --dist loadfile --no-loadscope-reorder "${@:-tests}" ;;
    lint) ensure_venv; lint ;;
    pytest) run_pytest "$@" ;;
    docs)
        ensure_venv
        say "building the API reference into dist/reference/ (open dist/reference/index.html)"
        offline "$PY" -m sphinx -E -n -W --keep-going -q -b html -d "$CACHE/doctrees/reference" \
            docs/reference "$DIST/reference" ;;
    demo)
        setup; dist
        say "starting the local Realtime server (Ctrl-C stops it)"
        exec "$PY" -m pyodide_realtime_server --web-root web \
            --mount "/pyodide=$PYODIDE_DIST" --mount "/pyscript=$PYSCRIPT_DIST" "$@" ;;
    bench)
        setup; dist
        offline "$PY" bench/run.py "$@" ;;
    fuzz)
        ensure_venv
        PYRT_FUZZ_EXAMPLES="${1:-200000}" "$PY" -m pytest tests/cpython/test_fuzz_core.py -q ;;
    ""|-h|--help|help) usage ;;
    *) printf 'build.sh: unknown command: %s\n\n' "$cmd" >&2; usage >&2; exit 2 ;;
esac
