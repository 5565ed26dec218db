#!/bin/sh
# Build the collection docs into docs/build/html, offline (`make docs` runs it with the venv's bin on PATH):
# lint the docs, generate the module and role pages with antsibull-docs together with the guides of
# docs/docsite, build HTML with Sphinx, failing on any warning, and check every link of the built site (its pages
# and their anchors; external URLs only for their form, offline). docs/build/ is not tracked.
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
# antsibull-docs takes only the .rst files of docs/docsite/rst: the pictures the guides show go beside them.
cp docs/docsite/rst/*.png "$build/rst/docsite/"

# The page of a module with an action plugin refers to the label action_plugins of Ansible's own docsite, which this
# build does not have: a page of its own holds it here, not in docs/docsite (the docsite would hold it twice).
cat > "$build/rst/ansible_labels.rst" <<'RST'
:orphan:

.. _action_plugins:

Action plugins
==============

An action plugin runs on the controller before a module. See `Action plugins
<https://docs.ansible.com/ansible/latest/plugins/action.html>`_ in the Ansible documentation, and "Tasks on the
controller" in the collection's design notes for what ``vz_sms_send``'s does.
RST

sphinx-build -b html -W --keep-going -q -c docs "$build/rst" "$build/html"
python tests/utils/check_links.py --html "$build/html"
echo "docs/build.sh: open $build/html/index.html"
