#!/usr/bin/env bash
# Test prerequisites: docker.io, debootstrap, bubblewrap, systemd-analyze and libmagic installed,
# dockerd running, and the agent image built (cached by content tag, so a no-op when unchanged).
# Called by `bash nanoclaw.sh test`; safe to run again. Set NANOCLAW_SKIP_IMAGE_BUILD=1 to skip the image.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
LOG_DIR="$ROOT/logs"
mkdir -p "$LOG_DIR"
DOCKERD_LOG="$LOG_DIR/dockerd.log"
DOCKER_WAIT_S=60

ok()   { printf '    \033[32m✓\033[0m %s\n' "$*"; }
warn() { printf '    \033[33m!\033[0m %s\n' "$*"; }
die()  { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi
}

# 1. Packages (one apt-get update, only when something is missing).
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
# systemd-analyze verifies the generated service units (tests/unit/test_service_units.py).
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# neonize (the WhatsApp extra, in [dev]) imports python-magic, which loads libmagic.
ldconfig -p 2>/dev/null | grep -q 'libmagic\.so\.1' || missing+=(libmagic1)
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
  printf '    installing %s (apt)\n' "${missing[*]}"
  as_root apt-get update -qq || die "apt-get update failed"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
fi
ok "docker.io, debootstrap, bubblewrap, systemd-analyze and libmagic installed"

# 2. dockerd in the background unless a daemon already answers.
if docker info >/dev/null 2>&1; then
  ok "docker daemon answers"
else
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    as_root rm -f /var/run/docker.pid
    as_root sh -c "nohup dockerd >>'$DOCKERD_LOG' 2>&1 &" || die "cannot start dockerd (need root or sudo)"
  fi
  waited=0
  until docker info >/dev/null 2>&1; do
    if [ "$waited" -ge $((DOCKER_WAIT_S * 5)) ]; then
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      die "dockerd did not answer within ${DOCKER_WAIT_S} s; see $DOCKERD_LOG"
    fi
    sleep 0.2; waited=$((waited + 1))
  done
  ok "dockerd started (log: logs/dockerd.log)"
fi

# 3. The agent image (content-tagged: a no-op when nothing changed).
if [ -z "${NANOCLAW_SKIP_IMAGE_BUILD:-}" ]; then
  "$VENV/bin/nanoclaw" image build --quiet-if-current || die "agent image build failed"
fi
