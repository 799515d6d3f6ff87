#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_instance_type_arch
short_description: Look up the CPU architectures of EC2 instance types
version_added: 0.1.0
description:
  - Calls EC2 C(DescribeInstanceTypes) and returns, for each requested instance type, the
    architectures it supports in Kubernetes spelling (C(amd64), C(arm64)).
  - Used by the C(ec2_nodes) role to stop before launching anything when an instance type does not
    match the architecture requested for its node group.
  - Read-only; supports check mode.
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
  instance_types:
    description: Instance type names, for example C(t3.medium) or C(t4g.medium).
    type: list
    elements: str
    required: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Look up instance type architectures
  kubeadm_ec2.cluster.ec2_instance_type_arch:
    instance_types: [t3.medium, t4g.medium]
    region: us-east-1
  register: ec2_nodes_type_arch
# ec2_nodes_type_arch.architectures == {"t3.medium": ["amd64"], "t4g.medium": ["arm64"]}
"""

RETURN = r"""
architectures:
  description: Map of instance type to the list of supported architectures (amd64/arm64/...).
  returned: always
  type: dict
  sample: {"t3.medium": ["amd64"], "t4g.medium": ["arm64"]}
ec2_architectures:
  description: The same map in EC2 spelling (x86_64/arm64/i386/...).
  returned: always
  type: dict
  sample: {"t3.medium": ["x86_64"], "t4g.medium": ["arm64"]}
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.arch import normalize_arch


def _normalise(arches):
    out = []
    for arch in arches:
        try:
            name = normalize_arch(arch)
        except ValueError:
            name = str(arch)
        if name not in out:
            out.append(name)
    return out


def run(module, client):
    wanted = sorted(set(module.params["instance_types"]))
    ec2_arches = {}
    try:
        paginator = client.get_paginator("describe_instance_types")
        pages = paginator.paginate(InstanceTypes=wanted).build_full_result()
    except botocore.exceptions.ClientError as e:
        if e.response.get("Error", {}).get("Code") == "InvalidInstanceType":
            module.fail_json(
                msg="unknown EC2 instance type in %s: %s" % (", ".join(wanted), e.response["Error"].get("Message", "")),
            )
        module.fail_json_aws(e, msg="Failed to describe instance types %s" % ", ".join(wanted))
    except botocore.exceptions.BotoCoreError as e:
        module.fail_json_aws(e, msg="Failed to describe instance types %s" % ", ".join(wanted))
    for item in pages.get("InstanceTypes", []):
        ec2_arches[item["InstanceType"]] = list(item.get("ProcessorInfo", {}).get("SupportedArchitectures", []))
    missing = [name for name in wanted if name not in ec2_arches]
    if missing:
        module.fail_json(msg="unknown EC2 instance type(s): %s" % ", ".join(missing))
    arches = dict((name, _normalise(values)) for name, values in ec2_arches.items())
    module.exit_json(changed=False, architectures=arches, ec2_architectures=ec2_arches)


def main():
    argument_spec = dict(
        instance_types=dict(type="list", elements="str", required=True),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    client = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff())
    run(module, client)


if __name__ == "__main__":
    main()
