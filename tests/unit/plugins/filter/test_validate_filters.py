"""playbooks/validate.yml's filter (plugins/filter/validate.py): which checks run, and a clear stop for a
validate_checks that names no check."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kubeadm_ec2.cluster.plugins.filter.validate import enabled_checks

ALL = ["sg_audit", "node_reachability", "dns", "image_arch", "paths"]


@pytest.mark.parametrize("chosen, off, expected", [
    (None, ["paths"], ALL[:4]),                   # nothing chosen: all but the ones off by default
    (None, [], ALL),
    (["dns", "sg_audit"], ["paths"], ["sg_audit", "dns"]),  # the report's order, not the user's
    (["paths"], ["paths"], ["paths"]),            # chosen by name: on even when off by default
    ([], ["paths"], []),
])
def test_the_enabled_checks(chosen, off, expected):
    assert enabled_checks(ALL, chosen, off) == expected


@pytest.mark.parametrize("chosen, message", [
    (["dns", "nope"], "validate_checks may only contain sg_audit, node_reachability, dns, image_arch, paths"),
    (["DNS"], "unknown: DNS"),
    ("dns", "validate_checks must be a list of check names"),
    ({"dns": True}, "validate_checks must be a list of check names"),
])
def test_a_name_that_is_no_check_stops_naming_validate_checks(chosen, message):
    with pytest.raises(AnsibleFilterError, match=message.replace("(", r"\(")):
        enabled_checks(ALL, chosen, ["paths"])
