"""Apply a NetworkPolicy fix's one command to the objects, as kubectl would (for the unit tests)."""

import json
import re


def patch_networkpolicy(policies, cli):
    """Apply ``kubectl -n NS patch networkpolicy NAME --type=json -p '[...]'`` (add and replace operations,
    as the fixes write them) to the policy of that name in ``policies``, in place; returns it."""
    m = re.search(r"kubectl -n (\S+) patch networkpolicy (\S+) --type=json -p '(.*?)'", cli)
    pol = next(p for p in policies if p["metadata"]["name"] == m.group(2)
               and p["metadata"].get("namespace", "default") == m.group(1))
    for op in json.loads(m.group(3)):
        keys = op["path"].strip("/").split("/")
        target = pol
        for k in keys[:-1]:
            target = target[int(k)] if isinstance(target, list) else target[k]
        if op["op"] == "add" and keys[-1] == "-":
            target.append(op["value"])
        else:
            target[keys[-1]] = op["value"]
    return pol
