#!/bin/sh
# Installs what the explorer's browser tests drive: Debian's chromium and its matching chromium-driver (the
# WebDriver for selenium; Playwright's own browser download is not reachable from CI). Idempotent: does nothing when
# both are there. Needs root (CI runs as root) and apt-get; anywhere else it says what to install and fails.
set -eu
version() {  # the package's version when dpkg knows it (no browser start: that took up to 30 s on a busy machine)
  dpkg-query -W -f='chromium ${Version}' chromium 2>/dev/null || chromium --version 2>/dev/null | head -n 1
}
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "browser: $(version) with $(chromedriver --version | head -n 1)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser: no apt-get here: install Chromium and a matching chromedriver, on PATH as chromium and chromedriver" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else echo "browser: run as root (apt-get)" >&2; exit 1; fi
fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium chromium-driver
echo "browser: $(version) with $(chromedriver --version | head -n 1)"
