#!/usr/bin/env bash
# NanoClaw setup and development entry point.
#   bash nanoclaw.sh            set up this machine, start the host, open a chat
#   bash nanoclaw.sh test       set up the development environment and run every test
#   bash nanoclaw.sh lint       ruff and mypy
#   bash nanoclaw.sh stop       stop the background host
# Non-interactive: NANOCLAW_AGENT_NAME=Name, NANOCLAW_NO_CHAT=1 (or --agent-name / --no-chat).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
LOG_DIR="$ROOT/logs"
SETUP_LOG="$LOG_DIR/setup.log"
mkdir -p "$LOG_DIR" "$ROOT/data"

if [ -t 1 ]; then B=$'\033[1m' G=$'\033[32m' Y=$'\033[33m' R=$'\033[31m' N=$'\033[0m'; else B= G= Y= R= N=; fi
say()  { printf '%s==>%s %s\n' "$B" "$N" "$*"; }
ok()   { printf '    %s✓%s %s\n' "$G" "$N" "$*"; }
warn() { printf '    %s!%s %s\n' "$Y" "$N" "$*"; }
die()  { printf '%serror:%s %s\n' "$R" "$N" "$1" >&2; [ -n "${2:-}" ] && printf '       %s\n' "$2" >&2; exit 1; }
log()  { printf '[%s] %s\n' "$(date -u +%FT%TZ)" "$*" >> "$SETUP_LOG"; }

# Run a step quietly with its output in the setup log; on failure show the tail and a hint.
run_step() {
  local title="$1" hint="$2"; shift 2
  log "step: $title"
  local start=$SECONDS
  if "$@" >> "$SETUP_LOG" 2>&1; then
    ok "$title ($((SECONDS - start)) s)"
  else
    printf '    %s✗%s %s failed; last lines of %s:\n' "$R" "$N" "$title" "$SETUP_LOG" >&2
    tail -n 25 "$SETUP_LOG" >&2
    die "$title failed" "$hint"
  fi
}

find_python() {
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

ensure_python() {
  if PYTHON="$(find_python)"; then ok "Python: $("$PYTHON" --version 2>&1)"; return; fi
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    run_step "install Python 3 (apt)" "install Python 3.11 or newer yourself" \
      bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv'
    PYTHON="$(find_python)" || die "Python 3.11 or newer is required" "install it and run again"
  else
    die "Python 3.11 or newer is required" "install it (e.g. apt-get install python3 python3-venv, brew install python@3.12) and run again"
  fi
}

ensure_venv() {
  local extras="$1"
  if [ ! -x "$VENV/bin/python" ]; then
    run_step "create virtual environment (.venv)" "check that the venv module is installed (apt-get install python3-venv)" \
      "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.installed$extras" want
  want="$(cat pyproject.toml | sha1sum | cut -c1-12)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    ok "dependencies up to date"
  else
    run_step "install NanoClaw and dependencies" "check network access to PyPI; details in $SETUP_LOG" \
      bash -c "'$VENV/bin/python' -m pip install -q -U pip && '$VENV/bin/python' -m pip install -q -e '.$extras'"
    echo "$want" > "$stamp"
  fi
}

host_pid() { [ -f data/host.pid ] && kill -0 "$(cat data/host.pid)" 2>/dev/null && cat data/host.pid; }

start_host() {
  if pid="$(host_pid)"; then ok "host already running (pid $pid)"; return; fi
  nohup "$VENV/bin/nanoclaw" run --log-file "$LOG_DIR/host.log" >> "$LOG_DIR/host.out" 2>&1 &
  echo $! > data/host.pid
  local i
  for i in $(seq 1 100); do
    if "$VENV/bin/python" - "$ROOT/data/cli.sock" <<'PY' 2>/dev/null; then ok "host started in the background (pid $(cat data/host.pid)); log: logs/host.log"; return; fi
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(0.5); s.connect(sys.argv[1])
PY
    kill -0 "$(cat data/host.pid)" 2>/dev/null || break
    sleep 0.2
  done
  tail -n 30 "$LOG_DIR/host.out" "$LOG_DIR/host.log" 2>/dev/null >&2 || true
  die "the host did not come up" "see logs/host.log and logs/host.out"
}

link_cli() {
  mkdir -p "$HOME/.local/bin"
  ln -sf "$VENV/bin/nanoclaw" "$HOME/.local/bin/nanoclaw"
  ok "linked ~/.local/bin/nanoclaw → .venv/bin/nanoclaw"
  case ":$PATH:" in
    *":$HOME/.local/bin:"*) ;;
    *) warn "~/.local/bin is not on your PATH; add: export PATH=\"\$HOME/.local/bin:\$PATH\"" ;;
  esac
}

ensure_env_file() {
  if [ ! -f .env ]; then
    cat > .env <<'ENV'
# NanoClaw settings (NANOCLAW_* variables). This file is never mounted into a sandbox.
# ANTHROPIC_API_KEY=sk-ant-...        # without it the agent uses the mock model
NANOCLAW_RUNTIME=auto
ENV
    chmod 600 .env
    ok "wrote .env (no credential in it; add ANTHROPIC_API_KEY to use Claude)"
  else
    ok ".env present"
  fi
}

# On Linux without Docker, bubblewrap is the sandbox: install it when we can.
ensure_bubblewrap() {
  docker info >/dev/null 2>&1 && return 0
  command -v bwrap >/dev/null 2>&1 && return 0
  [ "$(uname -s)" = Linux ] || return 0
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    run_step "install bubblewrap (apt)" "install bubblewrap or Docker yourself" \
      bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap'
  fi
}

# With no sandbox at all, runners may only run as plain processes, and only if the user
# agrees (NANOCLAW_ALLOW_PROCESS_RUNTIME=1); setup says so rather than deciding silently.
check_sandbox_or_allow_process() {
  if docker info >/dev/null 2>&1 || command -v bwrap >/dev/null 2>&1; then return 0; fi
  if grep -q '^NANOCLAW_ALLOW_PROCESS_RUNTIME=1' .env 2>/dev/null || [ "${NANOCLAW_ALLOW_PROCESS_RUNTIME:-}" = 1 ]; then
    warn "no sandbox: agents run as plain processes (NANOCLAW_ALLOW_PROCESS_RUNTIME=1)"
    return 0
  fi
  die "no sandbox runtime: install Docker (https://docs.docker.com/engine/install/) or bubblewrap" \
    "or, for development only, run again with NANOCLAW_ALLOW_PROCESS_RUNTIME=1 (no isolation)"
}

# The sandbox: with Docker, build the agent image (content-tagged: a no-op when unchanged).
ensure_sandbox() {
  if docker info >/dev/null 2>&1; then
    run_step "build the agent image (Docker)" "run \`nanoclaw image build\` to see why; details in $SETUP_LOG" \
      "$VENV/bin/nanoclaw" image build
  elif command -v bwrap >/dev/null 2>&1; then
    ok "sandbox: bubblewrap (no Docker daemon answers)"
  else
    warn "no sandbox runtime (Docker or bubblewrap) found; see: nanoclaw doctor"
  fi
}

cmd_setup() {
  local agent_name="${NANOCLAW_AGENT_NAME:-}" no_chat="${NANOCLAW_NO_CHAT:-}"
  while [ $# -gt 0 ]; do
    case "$1" in
      --agent-name) agent_name="$2"; shift 2 ;;
      --no-chat) no_chat=1; shift ;;
      *) die "unknown option $1" "usage: bash nanoclaw.sh [--agent-name NAME] [--no-chat]" ;;
    esac
  done
  log "setup started in $ROOT by $(id -un)"
  say "Checking prerequisites"
  ensure_python
  say "Installing"
  ensure_venv ""
  ensure_env_file
  ensure_bubblewrap
  check_sandbox_or_allow_process
  ensure_sandbox
  say "Creating your agent"
  local init_args=()
  [ -n "$agent_name" ] && init_args=(--agent-name "$agent_name")
  "$VENV/bin/nanoclaw" init "${init_args[@]}" | sed 's/^/    /'
  say "Starting the host"
  start_host
  link_cli
  say "Checking end to end"
  if reply="$("$VENV/bin/nanoclaw" chat -m "ping" --timeout 60 2>&1)"; then
    ok "the agent answered: $reply"
  else
    die "no answer to a test message" "$reply — see logs/host.log"
  fi
  log "setup completed"
  if [ -z "$no_chat" ] && [ -t 0 ] && [ -t 1 ]; then
    say "Opening a chat (Ctrl-D to leave; reopen any time with: nanoclaw chat)"
    exec "$VENV/bin/nanoclaw" chat
  fi
  say "Done. Chat with your agent:  nanoclaw chat      (or: nanoclaw chat -m \"hello\")"
}

cmd_test() {
  log "test run started"
  say "Preparing the development environment"
  ensure_python
  ensure_venv "[dev]"
  if [ -x scripts/test-prereqs.sh ]; then
    say "Test prerequisites"
    bash scripts/test-prereqs.sh
  fi
  say "Running the test suite"
  local status=0
  "$VENV/bin/python" -m pytest -p no:cacheprovider "$@" || status=$?
  if [ "$status" = 5 ]; then die "pytest collected no tests"; fi
  return "$status"
}

cmd_lint() {
  ensure_python
  ensure_venv "[dev]"
  "$VENV/bin/ruff" check src agent_runner tests benchmarks
  "$VENV/bin/mypy"
}

cmd_stop() {
  if pid="$(host_pid)"; then kill "$pid" && ok "stopped host (pid $pid)"; rm -f data/host.pid; else ok "host not running"; fi
}

command="${1:-setup}"
case "$command" in
  -*) command=setup ;;
  *) [ $# -gt 0 ] && shift ;;
esac
case "$command" in
  test) cmd_test "$@" ;;
  lint) cmd_lint ;;
  stop) cmd_stop ;;
  setup) cmd_setup "$@" ;;
  *) die "unknown command $command" "usage: bash nanoclaw.sh [setup|test|lint|stop]" ;;
esac
