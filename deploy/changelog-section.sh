#!/usr/bin/env bash
# Prints the notes of one version from CHANGELOG.md (Keep a Changelog: "## [1.2.0] - 2026-11-27"),
# without its heading, for the GitHub release of that version.
#
#   deploy/changelog-section.sh 1.2.0 [CHANGELOG.md]      (a leading "v" is accepted)
#
# Exits 1, saying so, if the version has no section or an empty one: a release needs notes.
set -euo pipefail
VERSION=${1:?usage: changelog-section.sh VERSION [CHANGELOG]}
VERSION=${VERSION#v}
FILE=${2:-CHANGELOG.md}

notes=$(awk -v version="$VERSION" '
    # A version heading: "## [X.Y.Z]" followed by the end of the line, a space or " - date".
    /^## \[/ {
        if (found) exit
        heading = $0
        sub(/^## \[/, "", heading)
        if (index(heading, version "]") == 1) { found = 1; next }
    }
    # Link definitions ("[1.2.0]: https://…") close the last section.
    found && /^\[[^]]+\]: / { exit }
    found { print }
' "$FILE" | sed -e '/./,$!d' | sed -e ':a' -e '/^\n*$/{$d;N;ba' -e '}')

if [ -z "$notes" ]; then
    echo "changelog-section.sh: $FILE has no notes for version $VERSION (a \"## [$VERSION] - date\" section)" >&2
    exit 1
fi
printf '%s\n' "$notes"
