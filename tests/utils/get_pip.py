"""Offline stand-in for the get-pip.py that ansible-test downloads from ci-files.testing.ansible.com (unreachable
here). ansible-test runs it as `python get_pip.py [pip options] pip==X --no-setuptools --no-wheel` inside a new
virtualenv; this installs pip with ensurepip, then the requested pip from the package index."""

import subprocess
import sys

args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
