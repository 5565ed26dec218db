"""Put tests/utils/get_pip.py where ansible-test looks for its cached pip bootstrap script, for the pip version
the installed ansible-test wants (read from its source), so `--venv` works without the download."""

import os
import re
import shutil
import sys
from pathlib import Path

import ansible_test

source = Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
version = re.search(r"pip='([0-9.]+)'", source.read_text()).group(1)
target = Path(os.path.expanduser("~/.ansible/test/cache/get_pip_%s.py" % version.replace(".", "_")))
target.parent.mkdir(parents=True, exist_ok=True)
shutil.copyfile(Path(__file__).with_name("get_pip.py"), target)
print("ansible-test pip %s bootstrap: %s" % (version, target), file=sys.stderr)
