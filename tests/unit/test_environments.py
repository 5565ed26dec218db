"""The execution environment (extensions/awx/execution-environment.yml) and the decision environment
(extensions/eda/decision-environment.yml), built as their guides say: the definition and the collection's tarball,
renamed thingspace-m2m.tar.gz, in one directory, then ``ansible-builder create``, which writes the build context
(there is no container engine here). The context is checked: the tarball inside, the Containerfile's install steps,
the pinned versions (those of requirements/constraints-py3.11.txt). Then the two steps of the Containerfile that need
no container run on this machine: the galaxy step installs the collection from the context's tarball, and the
introspection step lists the Python and system packages the image gets, which must bring every library the code
running in that image imports."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TARBALL = "thingspace-m2m.tar.gz"
# Each definition, and the code that runs in its image.
DEFINITIONS = {
    "execution environment": (ROOT / "extensions" / "awx" / "execution-environment.yml", ["plugins"]),
    "decision environment": (ROOT / "extensions" / "eda" / "decision-environment.yml", ["plugins", "extensions/eda/plugins"]),
}
PINNED = {canonicalize_name(name): version for name, version in (
    line.split("==") for line in (ROOT / "requirements" / "constraints-py3.11.txt").read_text().splitlines() if "==" in line)}
# Where the Containerfile's steps put things in the image, and where they go here.
IMAGE_PATHS = ("/usr/share/ansible", "/output/scripts", "/tmp/src")


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out),
                    str(ROOT / ".collections" / "ansible_collections" / "thingspace" / "m2m")], check=True, capture_output=True)
    (built,) = out.glob("thingspace-m2m-*.tar.gz")
    return built


@pytest.fixture(scope="module", params=DEFINITIONS)
def built(request, tarball, tmp_path_factory):
    """(definition, context directory, the image's pip and bindep lists, the code directories) of one definition."""
    definition, code = DEFINITIONS[request.param]
    work = tmp_path_factory.mktemp(request.param.replace(" ", "-"))
    shutil.copy(definition, work)
    shutil.copy(tarball, work / TARBALL)
    subprocess.run([str(BIN / "ansible-builder"), "create", "-f", definition.name, "-c", "context", "--output-filename", "Containerfile"],
                   cwd=work, check=True, capture_output=True)
    context = work / "context"
    steps = [line[len("RUN "):] for line in (context / "Containerfile").read_text().splitlines()
             if line.startswith("RUN ") and ("ansible-galaxy collection install" in line or "introspect.py introspect" in line)]
    assert len(steps) == 2, steps
    here = (work / "share", context / "_build" / "scripts", work / "src")
    for step in steps:
        for image_path, path in zip(IMAGE_PATHS, here):
            step = step.replace(image_path, str(path))
        step = step.replace("$PYCMD", sys.executable).replace("$ANSIBLE_GALAXY_CLI_COLLECTION_OPTS", "")
        if "introspect.py" in step:
            # The image's collections path is the script's default; here it is given.
            step += " %s" % (work / "share" / "collections")
        subprocess.run(["bash", "-e", "-c", step], cwd=context / "_build", check=True, capture_output=True,
                       env={"PATH": "%s:/usr/bin:/bin" % BIN, "HOME": str(work)})
    pip = [line.split("#")[0].strip() for line in (work / "src" / "requirements.txt").read_text().splitlines() if line.split("#")[0].strip()]
    bindep = [line.split("#")[0].strip() for line in (work / "src" / "bindep.txt").read_text().splitlines() if line.split("#")[0].strip()]
    return yaml.safe_load(definition.read_text()), context, pip, bindep, code


def test_the_context_holds_the_collection_tarball(built, tarball):
    _definition, context, _pip, _bindep, _code = built
    assert (context / "_build" / "collections" / TARBALL).read_bytes() == tarball.read_bytes()
    assert yaml.safe_load((context / "_build" / "requirements.yml").read_text()) == {"collections": [{"name": "collections/" + TARBALL, "type": "file"}]}
    containerfile = (context / "Containerfile").read_text()
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" in containerfile
    assert 'ARG EE_BASE_IMAGE="registry.access.redhat.com/ubi9/ubi:latest"' in containerfile
    assert 'ARG PYCMD="/usr/bin/python3.11"' in containerfile


def test_every_pinned_version_is_the_tested_one(built):
    definition, context, _pip, _bindep, _code = built
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="(.*)"$', (context / "Containerfile").read_text(), re.M).group(1).split()
    user = [line for line in (context / "_build" / "requirements.txt").read_text().splitlines() if line] \
        if (context / "_build" / "requirements.txt").exists() else []
    assert user == definition["dependencies"].get("python", [])
    pins = [Requirement(line) for line in refs + user]
    assert {canonicalize_name(pin.name) for pin in pins} >= {"ansible-core", "ansible-runner"}
    for pin in pins:
        assert str(pin.specifier) == "==" + PINNED[canonicalize_name(pin.name)], "%s: requirements/constraints-py3.11.txt has %s" % (
            pin, PINNED[canonicalize_name(pin.name)])


def _imported(directories):
    """The top-level modules outside the standard library and Ansible that the code in ``directories`` imports."""
    found = set()
    for directory in directories:
        for path in (ROOT / directory).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"ansible", "ansible_collections", "__future__"}


def _with_dependencies(requirements):
    """The distributions ``requirements`` install, with what they require (as installed here)."""
    todo, seen = [Requirement(line) for line in requirements], set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        for line in metadata.requires(name) or ():
            dependency = Requirement(line)
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": extra}) for extra in requirement.extras or {""}):
                todo.append(dependency)
    return seen


def test_the_image_gets_every_library_the_code_imports(built):
    _definition, _context, pip, _bindep, code = built
    installed = _with_dependencies([*pip, "ansible-core"])
    providers = metadata.packages_distributions()
    missing = {module for module in _imported(code) if not {canonicalize_name(dist) for dist in providers[module]} & installed}
    assert not missing, "imported by %s, installed by no requirement of the image (%s)" % (sorted(missing), pip)
    assert "psycopg" in {canonicalize_name(Requirement(line).name) for line in pip}


def test_the_image_gets_the_system_packages(built):
    definition, _context, _pip, bindep, _code = built
    collection = [line.strip() for line in (ROOT / "bindep.txt").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert set(bindep) == set(collection) | set(definition["dependencies"].get("system", []))


def test_the_decision_environment_runs_rulebooks(built):
    _definition, context, pip, bindep, code = built
    if "extensions/eda/plugins" not in code:
        pytest.skip("the execution environment runs no rulebook")
    assert "ansible-rulebook==" + PINNED["ansible-rulebook"] in pip
    assert "java-17-openjdk-headless [platform:rpm]" in bindep
    assert "ENV JAVA_HOME=/usr/lib/jvm/jre-17-openjdk" in (context / "Containerfile").read_text()
