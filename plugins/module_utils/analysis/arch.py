# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Architecture names, normalised in exactly one place.

Kubernetes and OCI say amd64/arm64; Ansible facts and ``uname -m`` say
x86_64/aarch64; EC2 says x86_64/arm64. Everything in this collection compares
the normalised (Kubernetes/OCI) spelling.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

_ALIASES = {
    "amd64": "amd64",
    "x86_64": "amd64",
    "x86-64": "amd64",
    "x64": "amd64",
    "arm64": "arm64",
    "aarch64": "arm64",
    "arm64v8": "arm64",
    "arm": "arm",
    "armv7l": "arm",
    "armhf": "arm",
    "386": "386",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def normalize_arch(name):
    """Return the Kubernetes spelling of an architecture name, or raise ValueError."""
    if name is None:
        raise ValueError("architecture is missing")
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise ValueError(
            "unknown architecture %r (expected one of: %s)" % (name, ", ".join(sorted(set(_ALIASES.values()))))
        )
    return _ALIASES[key]
