#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian bookworm machine of this kind (run as root).
# Installs the apt packages pilotlib's tests and example use, creates the project venv (.venv) with
# pilotlib and its extras, exposes Debian's gfal2 binding to it, and (with --rucio-server) the separate
# venv that runs a real Rucio server for the transfer tests, and (with --panda-server) panda-server's own code
# for the contract tests.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

APT_PACKAGES=(
  xrootd-server xrootd-client
  python3-gfal2 gfal2 gfal2-plugin-file gfal2-plugin-xrootd gfal2-plugin-http
  openssl procps socat
  bubblewrap podman uidmap busybox-static catatonit
  openmpi-bin slurm-wlm munge strace
  chromium
)
PY=${PILOTLIB_PYTHON:-python3.11}
VENV=${PILOTLIB_VENV:-$here/.venv}
RUCIO_VENV=${PILOTLIB_RUCIO_VENV:-$here/.venv-rucio}
RUCIO_SERVER_VERSION=${RUCIO_SERVER_VERSION:-"rucio>=41,<42"}
PANDA_VENV=${PILOTLIB_PANDA_VENV:-$here/.venv-panda}
PANDA_SERVER_VERSION=1.0.4

log() { printf '[setup] %s\n' "$*" >&2; }

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# pip, with this machine's harmless "location is ignored" index warnings filtered out; pip's exit status kept.
pip_install() {
  local py=$1; shift
  "$py" -m pip install -q "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}

stamp_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

install_venv() {
  local stamp
  stamp=$(stamp_of pyproject.toml scripts/setup.sh)
  if [[ -f "$VENV/.pilotlib-stamp" && "$(cat "$VENV/.pilotlib-stamp")" == "$stamp" ]]; then
    return
  fi
  log "venv: $VENV"
  [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
  pip_install "$VENV/bin/python" --upgrade pip >/dev/null
  pip_install "$VENV/bin/python" -e ".[all,dev]"
  link_gfal2
  echo "$stamp" > "$VENV/.pilotlib-stamp"
}

link_gfal2() {
  # Debian's binding is built for CPython 3.11 (same ABI); expose only that one module.
  local so site
  so=$(ls /usr/lib/python3/dist-packages/gfal2.cpython-311-*.so 2>/dev/null | head -1 || true)
  [[ -n "$so" ]] || { log "gfal2 binding not found; gfal copytool unavailable"; return; }
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  mkdir -p "$VENV/debian-gfal2"
  ln -sf "$so" "$VENV/debian-gfal2/$(basename "$so")"
  echo "$VENV/debian-gfal2" > "$site/debian-gfal2.pth"
}

install_rucio_server() {
  local stamp="$RUCIO_SERVER_VERSION gunicorn"
  if [[ -f "$RUCIO_VENV/.stamp" && "$(cat "$RUCIO_VENV/.stamp")" == "$stamp" ]]; then
    return
  fi
  log "rucio server venv: $RUCIO_VENV"
  [[ -x "$RUCIO_VENV/bin/python" ]] || "$PY" -m venv "$RUCIO_VENV"
  pip_install "$RUCIO_VENV/bin/python" --upgrade pip >/dev/null
  pip_install "$RUCIO_VENV/bin/python" "$RUCIO_SERVER_VERSION" gunicorn
  echo "$stamp" > "$RUCIO_VENV/.stamp"
}

# panda-server's own code (JobSpec, Protocol, the v1 handlers) for tests/contract/; no database, no web server.
# Its build hook fails as root (it chowns log directories to "atlpan"), so the wheel is built by an unprivileged
# user into a scratch directory (DISABLE_MM=1: no chat notification; VIRTUAL_ENV: where the hook makes its log
# directories), then installed as root. The shipped templates become the configuration it reads from
# $PANDA_HOME/etc/panda/, with logs inside the venv and the postgres backend (imported, never connected to).
install_panda_server() {
  local stamp="panda-server==$PANDA_SERVER_VERSION postgres 1"
  if [[ -f "$PANDA_VENV/.stamp" && "$(cat "$PANDA_VENV/.stamp")" == "$stamp" ]]; then
    return
  fi
  log "panda-server venv: $PANDA_VENV"
  # mod_wsgi (a dependency) compiles against apache2-dev; the wheel is built with Debian's python3 and pip, which
  # the unprivileged user can run (a python under /root, e.g. pyenv's, it cannot)
  local p missing=()
  for p in apache2-dev python3-pip; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  local build
  build=$(mktemp -d)
  chown nobody "$build"
  runuser -u nobody -- env HOME="$build" DISABLE_MM=1 VIRTUAL_ENV="$build/env" PIP_CACHE_DIR="$build/cache" \
    PATH=/usr/bin:/bin /usr/bin/python3 -m pip wheel -q --no-deps "panda-server==$PANDA_SERVER_VERSION" -w "$build/wheels" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  [[ -x "$PANDA_VENV/bin/python" ]] || "$PY" -m venv "$PANDA_VENV"
  pip_install "$PANDA_VENV/bin/python" --upgrade pip >/dev/null
  pip_install "$PANDA_VENV/bin/python" "$(ls "$build"/wheels/panda_server-*.whl)[postgres]"
  rm -rf "$build"
  local etc="$PANDA_VENV/etc/panda"
  mkdir -p "$PANDA_VENV/var/log/panda"
  for cfg in panda_server panda_common; do
    sed -e "s#/var/log/panda#$PANDA_VENV/var/log/panda#g" -e 's/^# *backend = postgres/backend = postgres/' \
      "$etc/$cfg.cfg.rpmnew" > "$etc/$cfg.cfg"
  done
  echo "$stamp" > "$PANDA_VENV/.stamp"
}

install_apt
install_venv
# bytecode for the project's own modules, as an installed wheel has it (pilots started by the tests and the
# benchmarks then do not compile every module at every start when PYTHONDONTWRITEBYTECODE is set)
"$VENV/bin/python" -m compileall -q pilotlib apps >/dev/null
for arg in "$@"; do
  case "$arg" in
    --rucio-server) install_rucio_server ;;
    --panda-server) install_panda_server ;;
    *) log "unknown option $arg"; exit 2 ;;
  esac
done
