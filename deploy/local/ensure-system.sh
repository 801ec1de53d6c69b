#!/usr/bin/env bash
# Install the system packages disparo needs, only those that are missing (Debian/Ubuntu).
# Usage: ensure-system.sh [extra ...]
#   extras: nginx (benchmark), prometheus (promtool), clickhouse (old-server driver tests),
#           chromium (browser tests)
set -euo pipefail

missing=()
java_ok() {
  command -v java >/dev/null 2>&1 || return 1
  local v
  v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  [ -n "$v" ] && [ "$v" -ge 17 ]
}
java_ok || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
for extra in "$@"; do
  case "$extra" in
    nginx) command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light) ;;
    prometheus) command -v promtool >/dev/null 2>&1 || missing+=(prometheus) ;;
    clickhouse) [ -x /usr/sbin/clickhouse-server ] || missing+=(clickhouse-server) ;;
    chromium) [ -x /usr/bin/chromium ] || missing+=(chromium) ;;
    *) echo "ensure-system: unknown extra '$extra'" >&2; exit 2 ;;
  esac
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "ensure-system: installing ${missing[*]}" >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-system: apt-get not found; install ${missing[*]} by hand" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
