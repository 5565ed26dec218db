# Sphinx configuration of the collection docs, built by docs/build.sh from the RST that antsibull-docs generates.
# The site builds offline, so there is no intersphinx (its inventories live on the web): the few ansible-core
# pages the generated RST refers to are linked directly.

from docutils import nodes

project = 'thingspace.m2m'
copyright = 'thingspace.m2m maintainers'
title = 'thingspace.m2m collection'
html_short_title = 'thingspace.m2m'

extensions = ['sphinx_antsibull_ext']

pygments_style = 'ansible'
highlight_language = 'YAML+Jinja'

html_theme = 'sphinx_ansible_theme'
html_show_sphinx = False
display_version = False
html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False

default_role = 'any'

ANSIBLE_DOCS = 'https://docs.ansible.com/projects/ansible/latest/'
ANSIBLE_LABELS = {
    'ansible_configuration_settings': ('reference_appendices/config.html', 'Ansible Configuration Settings'),
    'common_return_values': ('reference_appendices/common_return_values.html', 'Return Values'),
}


def link_ansible_label(app, env, node, contnode):
    """Resolve a :ref: to an ansible-core docs label (what intersphinx would do online)."""
    if node.get('reftype') != 'ref' or node.get('reftarget') not in ANSIBLE_LABELS:
        return None
    path, label_title = ANSIBLE_LABELS[node['reftarget']]
    text = contnode.astext() if node.get('refexplicit') else label_title
    return nodes.reference('', text, internal=False, refuri=ANSIBLE_DOCS + path)


def setup(app):
    app.connect('missing-reference', link_ansible_label)
