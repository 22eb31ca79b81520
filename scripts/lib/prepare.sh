# Shared set-up for the README's commands: install what a fresh machine lacks, loudly.
# Sourced, not run.

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

apt_install() {
    command -v apt-get >/dev/null || die "need $* but apt-get is not available; install it by hand"
    if [ -z "${SIGIL_APT_UPDATED:-}" ]; then
        apt-get update -qq || die "apt-get update failed"
        SIGIL_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

prepare_toolchain() {
    command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
    local installed
    installed=$(rustup component list --installed 2>/dev/null || true)
    for component in rustfmt clippy; do
        if ! grep -q "^$component" <<<"$installed"; then
            step "installing rustup component $component"
            rustup component add "$component"
        fi
    done
    # The built-in plugins are compiled for this target.
    if ! rustup target list --installed | grep -qx wasm32-wasip2; then
        step "installing rustup target wasm32-wasip2"
        rustup target add wasm32-wasip2
    fi
}

# PostgreSQL backs half of the datastore tests; they fail (never skip) without it.
prepare_postgres() {
    export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
    if ! command -v pg_ctlcluster >/dev/null; then
        step "installing PostgreSQL"
        apt_install postgresql
    fi
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        step "starting PostgreSQL"
        local version
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        pg_ctlcluster --skip-systemctl-redirect "$version" main start \
            || die "could not start PostgreSQL $version"
    fi
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 1
    done
    pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL is not accepting connections on 127.0.0.1:5432"
    psql "$DATABASE_URL" -qtAc 'select 1' >/dev/null \
        || die "cannot connect to $DATABASE_URL (is trust auth set up for 127.0.0.1?)"
}

# The CA tests verify minted SVIDs with `openssl verify -x509_strict`.
prepare_openssl() {
    command -v openssl >/dev/null || { step "installing openssl"; apt_install openssl; }
}

# The interop leg's clients (py-spiffe, grpcio, cryptography, pytest from PyPI), pinned in
# tests/python/requirements.txt, in a venv under target/ so nothing is installed system-wide.
prepare_python() {
    command -v python3 >/dev/null || { step "installing python3"; apt_install python3; }
    python3 -c 'import venv, ensurepip' 2>/dev/null || { step "installing python3-venv"; apt_install python3-venv; }
    PYTHON_VENV="$PWD/target/python-venv"
    local stamp="$PYTHON_VENV/.requirements"
    if [ ! -x "$PYTHON_VENV/bin/python" ] || ! cmp -s tests/python/requirements.txt "$stamp"; then
        step "creating the Python venv for the interop tests ($PYTHON_VENV)"
        rm -rf "$PYTHON_VENV"
        python3 -m venv "$PYTHON_VENV" || die "could not create a venv in $PYTHON_VENV"
        "$PYTHON_VENV/bin/pip" install --quiet --disable-pip-version-check \
            -r tests/python/requirements.txt || die "pip install -r tests/python/requirements.txt failed"
        cp tests/python/requirements.txt "$stamp"
    fi
}

# cargo-fuzz and cargo-deny from crates.io, pinned; `cargo install --locked` builds them with
# the versions their authors tested. Both run on the stable toolchain (fuzz/README.md).
CARGO_FUZZ_VERSION=0.13.2
CARGO_DENY_VERSION=0.20.2

# Installs cargo subcommand `$1` (crate `cargo-$1`) at version `$2` unless that version is there.
cargo_tool() {
    local tool=$1 version=$2
    if ! cargo "$tool" --version 2>/dev/null | grep -qF " $version"; then
        step "installing cargo-$tool $version"
        cargo install --locked "cargo-$tool@$version" || die "cargo install cargo-$tool@$version failed"
    fi
}

# The fuzz smoke runs: cargo-fuzz, and a C++ compiler for libFuzzer (built by libfuzzer-sys).
prepare_fuzz() {
    command -v c++ >/dev/null || { step "installing g++ (libFuzzer is C++)"; apt_install g++; }
    cargo_tool fuzz "$CARGO_FUZZ_VERSION"
}

# The dependency policy check (deny.toml).
prepare_deny() {
    cargo_tool deny "$CARGO_DENY_VERSION"
}

# deploy/validate.sh: node and the npm packages pinned in deploy/validate/package-lock.json,
# installed with `npm ci` into target/deploy-validate (nothing system-wide). Re-runs compare
# the lock file with the installed copy and touch the network only when it changed.
prepare_deploy_validation() {
    command -v node >/dev/null && command -v npm >/dev/null \
        || { step "installing nodejs and npm"; apt_install nodejs npm; }
    local dir="$PWD/target/deploy-validate"
    if [ ! -d "$dir/node_modules" ] || ! cmp -s deploy/validate/package-lock.json "$dir/package-lock.json"; then
        step "installing the deploy/ validator's npm packages ($dir)"
        rm -rf "$dir"
        mkdir -p "$dir"
        cp deploy/validate/package.json deploy/validate/package-lock.json "$dir/"
        # --ignore-scripts: none of these packages needs an install script, so none runs.
        (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) \
            || { rm -rf "$dir"; die "npm ci for deploy/validate failed"; }
    fi
}
