#!/usr/bin/env bash
# NanoClaw setup and development entry point. Run `bash nanoclaw.sh --help` for every option.
#
# Portable on purpose: this script runs under the bash 3.2 that macOS ships, so it uses no
# bash >= 4 constructs (no arrays at all, so no empty-array expansion under `set -u`; no
# associative arrays; no ${x,,} / ${x^^}; no mapfile, `&>>` or `|&`). tests/installer checks that
# with shellcheck and a scan. It installs the prerequisites and the virtual environment, then
# hands over to `nanoclaw setup` (Python) for the questions, the service and the checks.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
LOG_DIR="${NANOCLAW_LOGS_DIR:-$ROOT/logs}"
DATA_DIR="${NANOCLAW_DATA_DIR:-$ROOT/data}"
SETUP_LOG="$LOG_DIR/setup.log"
mkdir -p "$LOG_DIR" "$DATA_DIR"

if [ -t 1 ]; then B=$'\033[1m' G=$'\033[32m' Y=$'\033[33m' R=$'\033[31m' N=$'\033[0m'; else B='' G='' Y='' R='' N=''; fi
say()  { printf '%s==>%s %s\n' "$B" "$N" "$*"; }
ok()   { printf '    %s✓%s %s\n' "$G" "$N" "$*"; }
warn() { printf '    %s!%s %s\n' "$Y" "$N" "$*"; }
log()  { printf '%s\n' "$*" >> "$SETUP_LOG"; }
utc()  { date -u +%Y-%m-%dT%H:%M:%SZ; }
die()  {
  printf '%serror:%s %s\n' "$R" "$N" "$1" >&2
  if [ -n "${2:-}" ]; then printf '       %s\n' "$2" >&2; fi
  log "error: $1"
  exit 1
}

usage() {
  cat <<'USAGE'
Usage: bash nanoclaw.sh [OPTIONS]          set up this machine (safe to run again)
       bash nanoclaw.sh test [PYTEST ARGS]  development environment + the test suite
       bash nanoclaw.sh lint                ruff and mypy
       bash nanoclaw.sh start|stop|restart  the background host (same as `nanoclaw start` …)

Setup installs what is missing (Python >= 3.11, the virtual environment, a sandbox), then asks:
  1. how your assistant reaches a model: an Anthropic API key, a custom endpoint
     (base URL + token), or the mock model for now;
  2. your time zone (detected; always asked when the machine says UTC);
  3. your name and your assistant's name;
then installs the always-on service, tries the credential with one real request, checks a
message end to end (in a scratch agent, deleted afterwards), and offers a first channel
(the terminal always; Telegram or Slack, paired in the same run).

Options (each can also come from the environment; flags win):
  --api-key KEY          Anthropic API key            (NANOCLAW_ANTHROPIC_API_KEY, ANTHROPIC_API_KEY)
  --base-url URL         custom endpoint              (NANOCLAW_ANTHROPIC_BASE_URL, ANTHROPIC_BASE_URL)
  --auth-token TOKEN     token for that endpoint      (NANOCLAW_ANTHROPIC_AUTH_TOKEN, ANTHROPIC_AUTH_TOKEN)
  --mock                 keep the mock model
  --timezone ZONE        IANA time zone, e.g. Europe/Berlin  (NANOCLAW_TIMEZONE)
  --owner-name NAME      your name                    (NANOCLAW_OWNER_NAME)
  --agent-name NAME      your assistant's name        (NANOCLAW_AGENT_NAME)
  --channel NAME         first channel: terminal, telegram, slack, discord or whatsapp
  --telegram-token T     Telegram bot token           (TELEGRAM_BOT_TOKEN)
  --slack-bot-token T    Slack bot token              (SLACK_BOT_TOKEN)
  --slack-app-token T    Slack app-level token        (SLACK_APP_TOKEN)
  --discord-token T      Discord bot token            (DISCORD_BOT_TOKEN)
  --non-interactive      ask nothing (the default without a terminal)
  --no-chat              do not open a chat at the end
  -h, --help             this help

Precedence: flags, then NANOCLAW_* variables, then ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL /
ANTHROPIC_AUTH_TOKEN, then .env. Answers are stored in .env (mode 0600).
Exit status: 0 set up and answering; 1 a step failed (named on screen and in logs/setup.log);
2 bad usage or an answer missing without a terminal.
USAGE
}

usage_error() {
  printf '%serror:%s %s\n' "$R" "$N" "$1" >&2
  printf 'Run "bash nanoclaw.sh --help" for the options.\n' >&2
  exit 2
}

sha_of() {
  if command -v sha1sum >/dev/null 2>&1; then sha1sum | cut -c1-12
  else shasum -a 1 | cut -c1-12
  fi
}

# Run a step with its output in the setup log, showing the elapsed seconds while it runs;
# on failure show the tail of the log and a hint.
run_step() {
  title="$1"; hint="$2"; shift 2
  log "=== [$(utc)] $title (bash) started ==="
  start=$SECONDS
  "$@" >> "$SETUP_LOG" 2>&1 &
  step_pid=$!
  if [ -t 1 ]; then
    while kill -0 "$step_pid" 2>/dev/null; do
      printf '\r    … %s (%s s)' "$title" "$((SECONDS - start))"
      sleep 1
    done
    printf '\r\033[K'
  fi
  step_status=0
  wait "$step_pid" || step_status=$?
  if [ "$step_status" = 0 ]; then
    log "=== [$(utc)] $title [$((SECONDS - start))s] → success ==="
    ok "$title ($((SECONDS - start)) s)"
  else
    log "=== [$(utc)] $title [$((SECONDS - start))s] → failed (exit $step_status) ==="
    printf '    %s✗%s %s failed; last lines of %s:\n' "$R" "$N" "$title" "$SETUP_LOG" >&2
    tail -n 25 "$SETUP_LOG" >&2
    die "$title failed" "$hint"
  fi
}

find_python() {
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

# $1 = "" (setup) or "[dev]" (test, lint). A venv installed with [dev] serves setup too.
ensure_venv() {
  extras="$1"
  if [ ! -x "$VENV/bin/python" ]; then
    run_step "create virtual environment (.venv)" "check that the venv module is installed (apt-get install python3-venv)" \
      "$PYTHON" -m venv "$VENV"
  fi
  want="$(sha_of < pyproject.toml)"
  stamp="$VENV/.installed$extras"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    ok "dependencies up to date"; return
  fi
  if [ -z "$extras" ] && [ -f "$VENV/.installed[dev]" ] && [ "$(cat "$VENV/.installed[dev]")" = "$want" ]; then
    ok "dependencies up to date (development install)"; return
  fi
  run_step "install NanoClaw and its dependencies" "check network access to PyPI; details in $SETUP_LOG" \
    bash -c "'$VENV/bin/python' -m pip install -q -U pip && '$VENV/bin/python' -m pip install -q -e '.$extras'"
  echo "$want" > "$stamp"
}

link_cli() {
  mkdir -p "$HOME/.local/bin"
  ln -sf "$VENV/bin/nanoclaw" "$HOME/.local/bin/nanoclaw"
  ok "linked ~/.local/bin/nanoclaw → .venv/bin/nanoclaw"
  case ":$PATH:" in
    *":$HOME/.local/bin:"*) ;;
    *) warn "$HOME/.local/bin is not on your PATH; add: export PATH=\"\$HOME/.local/bin:\$PATH\"" ;;
  esac
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

process_runtime_allowed() {
  case "${NANOCLAW_ALLOW_PROCESS_RUNTIME:-}" in 1|true|True|yes) return 0 ;; esac
  grep -Eq '^NANOCLAW_ALLOW_PROCESS_RUNTIME=(1|true|yes)' "${NANOCLAW_ENV_FILE:-$ROOT/.env}" 2>/dev/null
}

# The sandbox: with Docker, build the agent image (content-tagged: a no-op when unchanged).
ensure_sandbox() {
  if [ "${NANOCLAW_RUNTIME:-auto}" = process ] && process_runtime_allowed; then
    warn "sandbox: none — agents run as plain processes (NANOCLAW_RUNTIME=process, development only)"
    return 0
  fi
  if docker info >/dev/null 2>&1; then
    run_step "build the agent image (Docker)" "run \`nanoclaw image build\` to see why; details in $SETUP_LOG" \
      "$VENV/bin/nanoclaw" image build --quiet-if-current
  elif command -v bwrap >/dev/null 2>&1; then
    ok "sandbox: bubblewrap (no Docker daemon answers)"
  elif process_runtime_allowed; then
    warn "no sandbox: agents run as plain processes (NANOCLAW_ALLOW_PROCESS_RUNTIME=1)"
  else
    die "no sandbox runtime: install Docker (https://docs.docker.com/engine/install/) or bubblewrap" \
      "or, for development only, run again with NANOCLAW_ALLOW_PROCESS_RUNTIME=1 (no isolation)"
  fi
}

# Checks every option (a missing value is a usage error) before anything is installed, and
# builds the argument list for `nanoclaw setup` as one quoted string (no arrays: bash 3.2).
SETUP_ARGS=''
add_arg() { SETUP_ARGS="$SETUP_ARGS $(printf '%q' "$1")"; }
parse_setup_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      -h|--help) usage; exit 0 ;;
      --api-key|--base-url|--auth-token|--timezone|--owner-name|--agent-name|--channel|--telegram-token|--slack-bot-token|--slack-app-token|--discord-token|--check-timeout|--pair-timeout)
        if [ $# -lt 2 ] || [ -z "$2" ] || [ "${2#--}" != "$2" ]; then usage_error "$1 needs a value"; fi
        add_arg "$1"; add_arg "$2"; shift 2 ;;
      --mock|--non-interactive|--no-chat) add_arg "$1"; shift ;;
      *) usage_error "unknown option $1" ;;
    esac
  done
}

cmd_setup() {
  parse_setup_args "$@"
  : > "$SETUP_LOG"
  log "## $(utc) · setup started by $(id -un) in $ROOT (branch $(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo '-'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '-'))"
  say "Checking prerequisites"
  ensure_python
  say "Installing"
  ensure_venv ""
  ensure_bubblewrap
  ensure_sandbox
  link_cli
  # Agent folders live beside groups/global/ (committed); the rest of setup is in Python.
  eval "exec \"\$VENV/bin/nanoclaw\" setup $SETUP_ARGS"
}

cmd_test() {
  log "## $(utc) · test run started"
  say "Preparing the development environment"
  ensure_python
  ensure_venv "[dev]"
  if [ -x scripts/test-prereqs.sh ]; then
    say "Test prerequisites"
    bash scripts/test-prereqs.sh
  fi
  say "Running the test suite"
  status=0
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

cmd_host() {
  [ -x "$VENV/bin/nanoclaw" ] || die "NanoClaw is not installed here yet" "run: bash nanoclaw.sh"
  exec "$VENV/bin/nanoclaw" "$@"
}

command="${1:-setup}"
case "$command" in
  -*) command=setup ;;
  *) if [ $# -gt 0 ]; then shift; fi ;;
esac
case "$command" in
  test) cmd_test "$@" ;;
  lint) cmd_lint ;;
  start|stop|restart) cmd_host "$command" ;;
  setup) cmd_setup "$@" ;;
  help) usage ;;
  *) usage_error "unknown command $command" ;;
esac
