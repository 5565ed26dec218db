#!/bin/sh
# Build the collection docs into docs/build/html, offline (`make docs` runs it with the venv's bin on PATH):
# lint the docs, generate the module and role pages with antsibull-docs together with the guides of
# docs/docsite, and build HTML with Sphinx, failing on any warning. docs/build/ is not tracked.
set -eu
cd "$(dirname "$0")/.."

# Document this checkout, through the link `make venv` creates, not an installed copy.
ANSIBLE_COLLECTIONS_PATH="$PWD/.collections"
export ANSIBLE_COLLECTIONS_PATH
if [ ! -d "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/thingspace/m2m/plugins" ]; then
    echo "docs/build.sh: $ANSIBLE_COLLECTIONS_PATH/ansible_collections/thingspace/m2m is missing; run make venv" >&2
    exit 1
fi

build=docs/build
rm -rf "$build"
mkdir -p "$build"

antsibull-docs lint-collection-docs --plugin-docs .

# antsibull-docs writes only into a directory that no one else can write to.
mkdir -m 700 "$build/rst"
antsibull-docs collection --use-current --squash-hierarchy --fail-on-error --dest-dir "$build/rst" thingspace.m2m

sphinx-build -b html -W --keep-going -q -c docs "$build/rst" "$build/html"
echo "docs/build.sh: open $build/html/index.html"
