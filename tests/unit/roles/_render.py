"""Render role templates and evaluate role expressions with ansible-core itself (no re-implementation).

Variables are loaded the way Ansible loads them (DataLoader, trusted as templates), layered in Ansible's
precedence order for a role (the cluster_defaults dependency's defaults < the role's defaults < inventory
facts < the role's vars < extra vars), and templated lazily by ansible-core's Templar. Templates are rendered
with the same calls as the ``ansible.builtin.template`` action (template vars, ``trim_blocks``, search path,
``escape_backslashes=False``); collection filters (``kubeadm_ec2.cluster.*``) come from the collection loader.
"""

import os

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible._internal._templating import _template_vars  # what the template action adds (ansible_managed...)
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLES = os.path.join(ROOT, "roles")
# The collection loader is installed by tests/conftest.py (before anything imports ansible_collections).

LOADER = DataLoader()
# What a play provides without any inventory: where the kubeconfig default is anchored, check mode off.
BASE = {
    "playbook_dir": ROOT,
    "ansible_inventory_sources": [os.path.join(ROOT, "inventories", "aws")],
    "ansible_check_mode": False,
    "inventory_hostname": "localhost",
    "groups": {"all": []},
    "hostvars": {},
}


def _trusted(value):
    """Strings typed in a test are trusted like playbook text (extra vars, inventory)."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: _trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    return value


def load_file(*parts):
    """A role file (defaults, vars, tasks) as Ansible loads it: values trusted as templates."""
    path = os.path.join(ROLES, *parts)
    if not os.path.exists(path):
        return {}
    return LOADER.load_from_file(path, trusted_as_template=True) or {}


def load_yaml(*parts):
    """A role file as plain YAML (for asserting on what is written, not on what it renders to)."""
    with open(os.path.join(ROLES, *parts), encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


class Vars(object):
    """The variables a role's tasks see; ``v[name]`` is the value ansible-core templates, ``v[name] = x`` sets
    a variable at the highest precedence (like an extra var or a registered fact)."""

    def __init__(self, layers):
        self.raw = {}
        for layer in layers:
            self.raw.update(layer)
        self.templar = Templar(loader=LOADER, variables=self.raw)

    def __getitem__(self, name):
        if name not in self.raw:
            raise KeyError(name)
        return self.templar.template(self.raw[name])

    def __setitem__(self, name, value):
        self.raw[name] = _trusted(value)

    def __contains__(self, name):
        return name in self.raw

    def pop(self, name):
        return self.raw.pop(name)

    def get(self, name, default=None):
        return self[name] if name in self.raw else default


def role_vars(role, facts=None, overrides=None):
    """What ``role``'s tasks see: the contract's defaults, the role's defaults, ``facts`` (inventory / gathered
    facts), the role's vars and ``overrides`` (extra vars), in Ansible's precedence order."""
    layers = [BASE, load_file("cluster_defaults", "defaults", "main.yml")]
    if role != "cluster_defaults":
        layers.append(load_file(role, "defaults", "main.yml"))
    layers += [_trusted(facts or {}), load_file(role, "vars", "main.yml"), _trusted(overrides or {})]
    return Vars(layers)


def _as_vars(variables):
    return variables if isinstance(variables, Vars) else Vars([BASE, _trusted(variables)])


def expr(template, variables):
    """Template a task value such as a set_fact value or ``"{{ cond }}"`` (native types, like Ansible)."""
    return _as_vars(variables).templar.template(_trusted(template))


def condition(conditional, variables):
    """Evaluate a ``when:`` / ``assert that:`` condition the way ansible-core does (must be a boolean)."""
    return _as_vars(variables).templar.evaluate_conditional(_trusted(conditional))


def render(role, template, variables, dest="/tmp/rendered"):
    """Render roles/<role>/templates/<template> as ``ansible.builtin.template`` does."""
    v = _as_vars(variables)
    source = os.path.join(ROLES, role, "templates", template)
    data = trust_as_template(LOADER.get_text_file_contents(source))
    task_vars = dict(v.raw)
    task_vars.update(_template_vars.generate_ansible_template_vars(
        path=template, fullpath=source, dest_path=dest, include_ansible_managed="ansible_managed" not in task_vars))
    searchpath = [os.path.join(ROLES, role, "templates"), os.path.join(ROLES, role), os.path.dirname(source)]
    templar = v.templar.copy_with_new_env(searchpath=searchpath, available_variables=task_vars)
    out = templar.template(data, escape_backslashes=False,
                           overrides=dict(trim_blocks=True, lstrip_blocks=False, newline_sequence="\n"))
    return "" if out is None else out


def render_yaml(role, template, variables):
    """The rendered template parsed as YAML documents (empty documents dropped)."""
    return [d for d in yaml.safe_load_all(render(role, template, variables)) if d is not None]


def task_by_name(role, task_file, name):
    """The task called ``name`` in roles/<role>/tasks/<task_file> (searching inside blocks), as Ansible loads it."""
    def walk(tasks):
        for task in tasks or []:
            if task.get("name") == name:
                return task
            for key in ("block", "rescue", "always"):
                found = walk(task.get(key))
                if found:
                    return found
        return None
    task = walk(load_file(role, "tasks", task_file))
    assert task is not None, "no task %r in %s/tasks/%s" % (name, role, task_file)
    return task


def assert_holds(task, variables):
    """Whether every ``that:`` condition of an ansible.builtin.assert task holds (evaluated by ansible-core),
    with the task's own ``vars:`` applied."""
    v = _as_vars(variables)
    for key, value in (task.get("vars") or {}).items():
        v[key] = value
    return all(condition(c, v) for c in task["ansible.builtin.assert"]["that"])


CONTRACT_TASK = "Check the cluster-wide contract (stops naming the variable to fix)"


def contract_problem(variables):
    """What roles/cluster_defaults' contract step says of ``variables``: its arguments rendered by
    ansible-core, judged by the action's own check (analysis/contract.py); None when the contract holds."""
    from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import contract

    task = task_by_name("cluster_defaults", "checks.yml", CONTRACT_TASK)
    args = dict((key, expr(value, variables)) for key, value in task["kubeadm_ec2.cluster.contract_check"].items())
    return contract.first_problem(args)
