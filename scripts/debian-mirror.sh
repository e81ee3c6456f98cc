#!/usr/bin/env bash
# Prints the Debian archive URI this machine's apt sources already use for the
# main suite (e.g. bookworm), so scripts never name a mirror host themselves.
# Reads deb822 `.sources` files and one-line `.list` files; skips -security
# archives and disabled entries. Exits 1 with a message when none is found.
# Usage: debian-mirror.sh [SUITE]   (default: the running release's codename)
set -euo pipefail
suite="${1:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}"
files=()
[ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] && files+=("$f")
done
for f in "${files[@]}"; do
  case "$f" in
  *.sources)
    # deb822 stanzas separated by blank lines: print URIs of a `deb` stanza whose Suites has SUITE.
    awk -v suite="$suite" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " suite " "))
          { n = split(uris, u, " "); for (i = 1; i <= n; i++) print u[i] }
        types = ""; uris = ""; suites = ""; enabled = ""
      }
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { flush(); next }
      { key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
        if (key == "types") types = $0; else if (key == "uris") uris = $0
        else if (key == "suites") suites = $0; else if (key == "enabled") enabled = tolower($0) }
      END { flush() }' "$f"
    ;;
  *)
    awk -v suite="$suite" '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) print $i }' "$f"
    ;;
  esac
done | grep -v -- '-security' | head -n 1 | grep . || {
  echo "debian-mirror: no apt source for suite '$suite' in /etc/apt/sources.list{,.d}" >&2
  exit 1
}
