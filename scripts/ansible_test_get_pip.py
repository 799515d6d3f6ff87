"""Offline stand-in for the pip bootstrap script that ansible-test downloads.

ansible-test creates one virtual environment per sanity test and bootstraps pip in
it with a script fetched from the Ansible CI file host. That host is not reachable
from our machines, so `make sanity` saves this file in ansible-test's cache instead:
it installs the pip wheel bundled with CPython (ensurepip), then lets that pip install
the pinned version ansible-test asked for from the package index.
"""

import ensurepip
import os
import subprocess
import sys

# options only the upstream bootstrap script understands
_BOOTSTRAP_ONLY = {"--no-setuptools", "--no-wheel"}


def main():
    ensurepip.bootstrap(upgrade=True)
    # ensurepip isolates itself from pip configuration; the real install must not be
    for name in ("PIP_CONFIG_FILE", "ENSUREPIP_OPTIONS"):
        os.environ.pop(name, None)
    args = [a for a in sys.argv[1:] if a not in _BOOTSTRAP_ONLY]
    if args:
        subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)


if __name__ == "__main__":
    main()
