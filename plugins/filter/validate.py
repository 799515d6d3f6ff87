# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of playbooks/validate.yml. Documentation: the sidecar file enabled_checks.yml."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text


def enabled_checks(names, chosen=None, default_off=None):
    """The checks of ``names`` that run, in that order: ``chosen`` (the user's validate_checks) when it is
    given, else every check but those of ``default_off``. A chosen name that is not a check stops the run with a
    message naming validate_checks (the check is evaluated where the list is first used, so no task of its
    own is needed)."""
    names = [to_text(n) for n in names or []]
    if chosen is None:
        off = set(to_text(n) for n in default_off or [])
        return [n for n in names if n not in off]
    if isinstance(chosen, (str, bytes)) or not isinstance(chosen, (list, tuple)):
        raise AnsibleFilterError("validate_checks must be a list of check names (%s); got %r"
                                 % (", ".join(names), chosen))
    chosen = [to_text(c) for c in chosen]
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise AnsibleFilterError("validate_checks may only contain %s; got %s (unknown: %s)"
                                 % (", ".join(names), chosen, ", ".join(unknown)))
    return [n for n in names if n in chosen]


class FilterModule(object):
    def filters(self):
        return {"enabled_checks": enabled_checks}
