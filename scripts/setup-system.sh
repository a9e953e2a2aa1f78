#!/usr/bin/env bash
# Install the system packages resumespec needs that this machine lacks.
#
#   scripts/setup-system.sh [check|test]     (default: test)
#
#   check  what `make check` needs: Python 3.11 with venv, Java 11+, make
#   test   also what `make test` needs: Chromium (the HTML report tests open
#          the pages in a headless browser) and libibverbs1 (the verbs
#          library the Mooncake transfer engine is linked against)
#
# Run as root on Debian/Ubuntu, it installs what is missing with apt-get.
# Run as anyone else, it changes nothing: when something is missing it prints
# the one command that installs it and exits 3. Exit 0: all present.
# The Makefile runs it before creating .venv, and .ci/run before `make test`.
set -euo pipefail

want="${1:-test}"
case "$want" in
  check|test) ;;
  -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "setup-system: unknown argument '$want' (expected: check or test)" >&2; exit 2 ;;
esac
python="${PYTHON:-python3.11}"

missing=()   # Debian package names
why=()       # one line per missing thing, for the message

java_major() {
  # `java -version` prints e.g.: openjdk version "17.0.12" 2024-07-16  /  java version "1.8.0_402"
  local v
  v=$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)
  v=${v#1.}
  echo "${v%%[.+-]*}"
}

if ! command -v "$python" >/dev/null 2>&1; then
  missing+=(python3.11 python3.11-venv); why+=("$python not found")
elif ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing+=(python3.11-venv); why+=("$python has no venv/ensurepip module")
fi
if ! command -v java >/dev/null 2>&1; then
  missing+=(openjdk-17-jre-headless); why+=("java not found (TLC needs Java 11+)")
else
  major=$(java_major)
  if ! [[ "$major" =~ ^[0-9]+$ ]] || [ "$major" -lt 11 ]; then
    missing+=(openjdk-17-jre-headless); why+=("java is version '${major:-?}', TLC needs 11+")
  fi
fi
if ! command -v make >/dev/null 2>&1; then
  missing+=(make); why+=("make not found")
fi
if [ "$want" = test ]; then
  if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
     && ! command -v google-chrome >/dev/null 2>&1; then
    missing+=(chromium); why+=("chromium not found (the HTML report tests run it headless)")
  fi
  if ! { command -v ldconfig >/dev/null 2>&1 || [ -x /sbin/ldconfig ]; } \
     || ! PATH="$PATH:/sbin:/usr/sbin" ldconfig -p 2>/dev/null | grep -q 'libibverbs\.so\.1 '; then
    missing+=(libibverbs1); why+=("libibverbs.so.1 not found (the Mooncake transfer engine needs it)")
  fi
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

for w in "${why[@]}"; do echo "setup-system: $w" >&2; done
cmd="apt-get install -y ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-system: no apt-get here; install these (Debian names) with your package manager: ${missing[*]}" >&2
  exit 3
fi
if [ -n "${SETUP_SYSTEM_RECHECK:-}" ]; then
  echo "setup-system: still missing after apt-get install: ${missing[*]}" >&2
  exit 3
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system: run: sudo apt-get update && sudo $cmd" >&2
  exit 3
fi
echo "setup-system: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q "${missing[@]}" >&2
# Check again: a package that installed but did not provide the tool is an error here.
SETUP_SYSTEM_RECHECK=1 exec "$0" "$want"
