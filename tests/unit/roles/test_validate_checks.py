"""playbooks/vars/validate.yml: the paths check is on by default when validate_paths is non-empty, and off
(no controller host, no task) when it is empty; validate_checks still decides when it is set."""

import os

import pytest

from tests.unit.roles._render import BASE, LOADER, ROOT, Vars, _trusted

VARS = LOADER.load_from_file(os.path.join(ROOT, "playbooks", "vars", "validate.yml"), trusted_as_template=True)
ALL = ["sg_audit", "node_reachability", "dns", "image_arch", "paths"]
PATH = {"from": {"namespace": "shop", "selector": {"app": "marketplace"}}, "to": "recommendations:50051"}


@pytest.mark.parametrize("extra,expected", [
    ({}, ALL[:4]),                                         # no paths to judge: off
    ({"validate_paths": []}, ALL[:4]),
    ({"validate_paths": [PATH]}, ALL),                     # paths to judge: on, last in the report order
    ({"validate_paths": [PATH], "validate_checks": ["dns"]}, ["dns"]),
    ({"validate_checks": ["paths"]}, ["paths"]),           # asked for by name: the role reports it has nothing to do
])
def test_paths_on_by_default_only_with_paths(extra, expected):
    v = Vars([BASE, VARS, _trusted(extra)])
    assert v["validate_check_names"] == ALL
    assert list(v["validate_enabled"]) == expected
