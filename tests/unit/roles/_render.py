"""Render role templates and role variables the way Ansible does, without a target host.

Plain Jinja2 with Ansible's own core filters and tests (ansible.plugins.filter.core / test.core), the
``template`` module's settings (trim_blocks=True), role defaults + vars, and recursive resolution of
templated variables (like Ansible's lazy variable templating)."""

import os
from itertools import chain, islice

import jinja2
from jinja2.lexer import TOKEN_STRING, TOKEN_VARIABLE_BEGIN, TOKEN_VARIABLE_END, Lexer
import yaml
from jinja2.nativetypes import NativeEnvironment

from ansible.plugins.filter.core import FilterModule
from ansible.plugins.filter.mathstuff import FilterModule as MathFilters
from ansible.plugins.filter.urls import FilterModule as UrlFilters
from ansible.plugins.test.core import TestModule

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLES = os.path.join(ROOT, "roles")

_FILTERS = {}
for _fm in (FilterModule(), MathFilters(), UrlFilters()):
    _FILTERS.update(_fm.filters())
_TESTS = TestModule().tests()


def _setup(env):
    # Jinja2's own filters/tests (default, map, select, ...) stay: Ansible 2.19's versions of some of
    # them expect Ansible's templating engine and its undefined markers.
    env.filters.update({k: v for k, v in _FILTERS.items() if k not in env.filters})
    env.tests.update({k: v for k, v in _TESTS.items() if k not in env.tests})
    # Ansible exposes tests under their FQCN as well
    env.tests.update({"ansible.builtin." + k: v for k, v in _TESTS.items()})
    env.filters.update({"ansible.builtin." + k: v for k, v in _FILTERS.items()})
    return env


class _AnsibleLikeLexer(Lexer):
    """Like ansible-core's AnsibleLexer: backslashes in string constants inside {{ }} are kept as written
    ('\\1' stays a regex backreference); inside {% %} statements Jinja's escape processing applies."""

    def tokeniter(self, *args, **kwargs):
        in_variable = False
        for token in super().tokeniter(*args, **kwargs):
            if token[1] == TOKEN_VARIABLE_BEGIN:
                in_variable = True
            elif token[1] == TOKEN_VARIABLE_END:
                in_variable = False
            elif in_variable and token[1] == TOKEN_STRING:
                token = token[0], token[1], token[2].replace("\\", "\\\\")
            yield token


class _LexerMixin:
    @property
    def lexer(self):
        if "_ansible_like_lexer" not in self.__dict__:
            self.__dict__["_ansible_like_lexer"] = _AnsibleLikeLexer(self)
        return self.__dict__["_ansible_like_lexer"]


class _TextEnvironment(_LexerMixin, jinja2.Environment):
    pass


class _NativeEnvironment(_LexerMixin, NativeEnvironment):
    pass


# ChainableUndefined: like Ansible, `a.b.c | default(x)` works when `a` is undefined.
TEXT = _setup(_TextEnvironment(trim_blocks=True, undefined=jinja2.ChainableUndefined, keep_trailing_newline=True))
NATIVE = _setup(_NativeEnvironment(undefined=jinja2.ChainableUndefined))


def _lookup(name, *terms, **kwargs):
    """The lookups the roles use: env only."""
    if name in ("env", "ansible.builtin.env"):
        return ",".join(os.environ.get(t, kwargs.get("default", "")) for t in terms)
    raise NotImplementedError("lookup %s not available in unit tests" % name)


for _env in (TEXT, NATIVE):
    _env.globals["lookup"] = _lookup


class LazyVars(dict):
    """Variables templated on first access, like Ansible's lazy variable templating."""

    def __init__(self, *args, **kwargs):
        super().__init__(NATIVE.globals)
        self.update(*args, **kwargs)

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        if _is_template(value):
            value = _native(value, self)
            if isinstance(value, str):
                value = value.strip()
            dict.__setitem__(self, key, value)
        return value

    def get(self, key, default=None):
        return self[key] if key in self else default


def _concat(values):
    """Ansible 2.19 semantics: a lone expression keeps its type, anything else is a string
    (unlike jinja2's native_concat, strings are not literal_eval'ed: "1.30" stays "1.30")."""
    head = list(islice(values, 2))
    if not head:
        return ""
    if len(head) == 1:
        return head[0]
    return "".join(str(v) for v in chain(head, values))


def _native(source, variables):
    template = NATIVE.from_string(source)
    return _concat(template.root_render_func(template.new_context(variables, shared=True)))


def load_yaml(*parts):
    with open(os.path.join(ROLES, *parts)) as fh:
        return yaml.safe_load(fh) or {}


def _is_template(value):
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def resolve(variables):
    """Template every variable (lazily, so the order of definition does not matter)."""
    lazy = LazyVars(variables)
    for key in list(lazy):
        lazy[key]
    return lazy


def role_vars(role, facts=None, overrides=None):
    """defaults/main.yml + vars/main.yml of ``role`` (+ facts and overrides), resolved."""
    variables = {"ansible_managed": "Ansible managed"}
    variables.update(facts or {})
    variables.update(load_yaml(role, "defaults", "main.yml"))
    variables.update(load_yaml(role, "vars", "main.yml"))
    variables.update(overrides or {})
    return resolve(variables)


def expr(expression, variables):
    """Evaluate one Jinja2 expression (like a `when:` or set_fact value) with native types."""
    return _native(expression, variables if isinstance(variables, LazyVars) else LazyVars(variables))


def render(role, template, variables):
    with open(os.path.join(ROLES, role, "templates", template)) as fh:
        tmpl = TEXT.from_string(fh.read())
    lazy = variables if isinstance(variables, LazyVars) else LazyVars(variables)
    return "".join(tmpl.root_render_func(tmpl.new_context(lazy, shared=True)))


def task_by_name(role, task_file, name):
    """The task called ``name`` in roles/<role>/tasks/<task_file> (searching inside blocks)."""
    def walk(tasks):
        for task in tasks or []:
            if task.get("name") == name:
                return task
            for key in ("block", "rescue", "always"):
                found = walk(task.get(key))
                if found:
                    return found
        return None
    task = walk(load_yaml(role, "tasks", task_file))
    assert task is not None, "no task %r in %s/tasks/%s" % (name, role, task_file)
    return task
