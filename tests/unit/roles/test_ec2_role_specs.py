"""ec2_network / ec2_nodes: defaults, argument specs and prefixes stay consistent (pure, no substrates)."""

import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
INTERNAL = {"ec2_network_common_tags", "ec2_nodes_ec2_arch_names", "ec2_nodes_common_tags", "ec2_nodes_rr_share"}


def load(role, path):
    with open(os.path.join(ROOT, "roles", role, path), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.mark.parametrize("role", ["ec2_network", "ec2_nodes"])
def test_every_default_is_specified_with_the_same_default(role):
    defaults = load(role, "defaults/main.yml")
    specs = load(role, "meta/argument_specs.yml")["argument_specs"]
    options = specs["main"]["options"]
    for name, value in defaults.items():
        assert name.startswith(role + "_"), name
        if name in INTERNAL:
            continue
        assert name in options, "%s missing from argument_specs" % name
        if not options[name].get("required"):
            assert options[name].get("default") == value, name
    for name, spec in options.items():
        assert name in defaults, "%s has no default in defaults/main.yml" % name
        assert spec.get("description"), name


@pytest.mark.parametrize("role,entry", [("ec2_network", "validate"), ("ec2_nodes", "preflight")])
def test_early_validation_entry_points_share_the_options(role, entry):
    specs = load(role, "meta/argument_specs.yml")["argument_specs"]
    assert specs[entry]["options"] == specs["main"]["options"]
    assert os.path.exists(os.path.join(ROOT, "roles", role, "tasks", entry + ".yml"))


def test_admin_cidr_has_no_open_default():
    defaults = load("ec2_network", "defaults/main.yml")
    assert "0.0.0.0/0" not in defaults["ec2_network_admin_cidr"]
    assert load("ec2_network", "meta/argument_specs.yml")["argument_specs"]["main"]["options"][
        "ec2_network_admin_cidr"]["required"] is True


def test_arch_choices():
    options = load("ec2_nodes", "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    for group in ("control_plane", "worker"):
        assert options["ec2_nodes_%s_arch" % group]["choices"] == ["amd64", "arm64"]
