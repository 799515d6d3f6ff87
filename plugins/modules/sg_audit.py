#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sg_audit
short_description: Audit the security groups and instance attributes of a kubeadm cluster's EC2 nodes
version_added: "0.1.0"
description:
  - Reads the cluster nodes' instances (by I(instance_ids) or I(filters)) and their security groups
    and reports, each finding with the exact remediation (AWS CLI command and role variable).
  - C(SG_NO_SELF_REF), all traffic between the nodes is not allowed (no self-referencing rule), so
    ClusterIP and DNS traffic crossing nodes times out while NodePort works.
  - C(ENCAP_BLOCKED), the Calico encapsulation in use needs a protocol the rules do not allow between
    nodes (IP protocol 4 and tcp/179 for IPIP, udp/4789 for VXLAN, tcp/179 without encapsulation).
  - C(SRC_DST_CHECK), source/destination check is on while pod traffic is routed unencapsulated
    (encapsulation None, or CrossSubnet between nodes of one subnet).
  - C(EGRESS_443), egress tcp 443 is closed.
  - C(SG_OPEN_WORLD) (warning), SSH (22) or the Kubernetes API (6443) is open to 0.0.0.0/0 or ::/0.
  - C(ETCD_BLOCKED), etcd (tcp 2379-2380) is not allowed between the control planes (instances tagged
    C(kubeadm_ec2/role=control-plane)).
  - C(API_LB_BLOCKED), tcp 6443 is not allowed on a control plane from a subnet of the API load balancer
    (I(api_lb_subnet_ids), or the subnets of the load balancer I(api_lb_name)), where its health checks come from.
  - Fails when an error finding exists (unless I(fail_on_findings=false)), passes with the warnings otherwise.
author:
  - kubeadm_ec2 maintainers (@kubeadm-ec2)
options:
  instance_ids:
    description: The nodes' instance ids. One of I(instance_ids) and I(filters) is required.
    type: list
    elements: str
  filters:
    description:
      - 'DescribeInstances filters selecting the nodes, for example C({"tag:kubeadm_ec2/cluster": "demo", "instance-state-name": ["running"]}).'
      - One of I(instance_ids) and I(filters) is required.
    type: dict
  calico_encapsulation:
    description:
      - Encapsulation of the Calico IPPool (the calico role's variable C(calico_encapsulation)).
      - Ignored when I(kubeconfig) is set and the cluster has an enabled IPPool.
    type: str
    default: IPIP
    choices: [IPIP, IPIPCrossSubnet, VXLAN, VXLANCrossSubnet, None]
  kubeconfig:
    description:
      - Optional kubeconfig. When set, the encapsulation is read from the cluster's Calico IPPools
        (C(crd.projectcalico.org/v1) C(ippools), C(vxlanMode)/C(ipipMode)) with the kubernetes client.
    type: path
  context:
    description: Context of I(kubeconfig) to use.
    type: str
  fail_on_findings:
    description: Fail when an error finding exists (false only reports them, for a caller that collects every check).
    type: bool
    default: true
  api_lb_name:
    description:
      - Name of the API network load balancer of an HA cluster (role ec2_nodes names it C(<cluster>-api)). Its
        subnets are read (C(DescribeLoadBalancers), then C(DescribeSubnets)) and tcp 6443 from each subnet's CIDR
        is checked on every control plane (C(API_LB_BLOCKED)).
      - A load balancer of that name that does not exist is reported in I(msg) and I(api_lb); nothing is checked then.
      - Ignored when I(api_lb_subnet_ids) is set. Neither set, the check does not run (a single control plane has no
        load balancer).
    type: str
  api_lb_subnet_ids:
    description: The API load balancer's subnet ids, given instead of looking them up by I(api_lb_name).
    type: list
    elements: str
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Supports check mode, the module only reads.
  - Uses C(DescribeInstances) and C(DescribeSecurityGroups); with I(api_lb_name) also
    C(elasticloadbalancing:DescribeLoadBalancers), with either API load balancer option C(DescribeSubnets).
seealso:
  - module: kubeadm_ec2.cluster.node_probe
"""

EXAMPLES = r"""
- name: Audit the node security groups of cluster demo
  kubeadm_ec2.cluster.sg_audit:
    region: eu-west-1
    filters:
      "tag:kubeadm_ec2/cluster": demo
      instance-state-name: [pending, running]
    calico_encapsulation: VXLAN
  delegate_to: localhost
  run_once: true

- name: Audit given instances against a local EC2 emulator, encapsulation read from the cluster
  kubeadm_ec2.cluster.sg_audit:
    endpoint_url: http://127.0.0.1:5000
    region: us-east-1
    instance_ids: [i-0123456789abcdef0, i-0123456789abcdef1]
    kubeconfig: /etc/kubernetes/admin.conf
"""

RETURN = r"""
msg:
  description: The failing findings or the healthy summary.
  returned: always
  type: str
  sample: "sg_audit: 3 node(s), security group(s) sg-0abc: no problem found"
findings:
  description: Problems found, each with id, severity, where (SG or instance id), observed, why and remediation.
  returned: always
  type: list
  elements: dict
  sample:
    - id: SG_NO_SELF_REF
      severity: error
      where: sg-0abc
      observed: "all traffic between nodes is not allowed for 6 of 6 node pair(s) ..."
      why: "only allow-listed ports pass between nodes ..."
      remediation: "aws ec2 authorize-security-group-ingress --group-id sg-0abc --ip-permissions 'IpProtocol=-1,...'"
instances:
  description: The audited nodes.
  returned: always
  type: list
  elements: dict
  sample: [{"instance_id": "i-0abc", "private_ip_address": "10.42.1.11", "subnet_id": "subnet-1",
            "source_dest_check": true, "security_groups": ["sg-0abc"]}]
security_groups:
  description: Ids of the security groups attached to the nodes.
  returned: always
  type: list
  elements: str
  sample: ["sg-0abc"]
calico_encapsulation:
  description: The encapsulation the audit assumed.
  returned: always
  type: str
  sample: IPIP
evidence:
  description:
    - What the audit saw, for the diagnosis. C(groups) are the security groups as EC2 returns them
      (C(GroupId), C(IpPermissions), C(IpPermissionsEgress)), C(instances) the nodes (id, name,
      private_ip, subnet_id, security_groups, source_dest_check, arch).
  returned: always
  type: dict
  sample: {"groups": [], "instances": [], "node_sg_id": "sg-0abc", "encapsulation": "IPIP"}
calico_encapsulation_source:
  description: Where the encapsulation came from (C(parameter) or the IPPools read from the cluster).
  returned: always
  type: str
  sample: parameter
api_lb:
  description:
    - The API load balancer the audit checked tcp 6443 from, C(name) (empty when given by subnet ids), C(found)
      and its C(subnets) (C(SubnetId), C(CidrBlock)). Empty when neither I(api_lb_name) nor I(api_lb_subnet_ids) is set.
  returned: always
  type: dict
  sample: {"name": "demo-api", "found": true, "subnets": [{"SubnetId": "subnet-1", "CidrBlock": "10.42.1.0/24"}]}
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.transformation import ansible_dict_to_boto3_filter_list

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import (
    errors,
    summary_message,
)
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import sg as sgcheck


@AWSRetry.jittered_backoff()
def _paginate(client, operation, key, **kwargs):
    return client.get_paginator(operation).paginate(**kwargs).build_full_result().get(key, [])


def read_instances(module, client):
    kwargs = {}
    if module.params["instance_ids"]:
        kwargs["InstanceIds"] = module.params["instance_ids"]
    if module.params["filters"]:
        kwargs["Filters"] = ansible_dict_to_boto3_filter_list(module.params["filters"])
    reservations = _paginate(client, "describe_instances", "Reservations", **kwargs)
    out = []
    for res in reservations:
        for inst in res.get("Instances", []):
            if (inst.get("State") or {}).get("Name") in ("terminated", "shutting-down"):
                continue
            out.append(inst)
    return sorted(out, key=lambda i: i["InstanceId"])


def read_encapsulation(module):
    # the kubernetes client costs about half a second to import: only when there is a kubeconfig to read
    from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.probes import k8s as _k8s

    try:
        client = _k8s.api_client(module.params["kubeconfig"], module.params["context"])
        api = _k8s.kubernetes.client.CustomObjectsApi(client)
        data = _k8s.K8s(client).json(api.list_cluster_custom_object, "list Calico IPPools",
                                     "crd.projectcalico.org", "v1", "ippools")
    except _k8s.K8sError as exc:
        module.fail_json(msg="kubeconfig: cannot read the Calico IPPools: %s" % exc)
    mode, text = sgcheck.encapsulation_from_ippools(data.get("items", []))
    return mode, text


def read_api_lb(module, client):
    """{name, found, subnets: [{SubnetId, CidrBlock}]} of the API load balancer ({} when none is asked for)."""
    name, subnet_ids = module.params["api_lb_name"], module.params["api_lb_subnet_ids"]
    if not subnet_ids and not name:
        return {}
    out = {"name": "" if subnet_ids else name, "found": True, "subnets": []}
    if not subnet_ids:
        elb = module.client("elbv2", retry_decorator=AWSRetry.jittered_backoff())
        try:
            lbs = elb.describe_load_balancers(aws_retry=True, Names=[name]).get("LoadBalancers", [])
        except is_boto3_error_code("LoadBalancerNotFound"):
            lbs = []
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:  # pylint: disable=duplicate-except
            module.fail_json_aws(exc, msg="api_lb_name: cannot read load balancer %s" % name)
        subnet_ids = sorted(set(z["SubnetId"] for lb in lbs for z in lb.get("AvailabilityZones", []) if z.get("SubnetId")))
        out["found"] = bool(lbs)
    if subnet_ids:
        try:
            subnets = _paginate(client, "describe_subnets", "Subnets", SubnetIds=subnet_ids)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            module.fail_json_aws(exc, msg="cannot read the API load balancer's subnets %s" % ", ".join(subnet_ids))
        out["subnets"] = sorted(({"SubnetId": sn["SubnetId"], "CidrBlock": sn.get("CidrBlock", "")} for sn in subnets),
                                key=lambda sn: sn["SubnetId"])
    return out


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            instance_ids=dict(type="list", elements="str"),
            filters=dict(type="dict"),
            calico_encapsulation=dict(type="str", default="IPIP", choices=list(sgcheck.ENCAPSULATIONS)),
            kubeconfig=dict(type="path"),
            context=dict(type="str"),
            fail_on_findings=dict(type="bool", default=True),
            api_lb_name=dict(type="str"),
            api_lb_subnet_ids=dict(type="list", elements="str"),
        ),
        required_one_of=[("instance_ids", "filters")],
        supports_check_mode=True,
    )
    encap, source = module.params["calico_encapsulation"], "parameter"
    if module.params["kubeconfig"]:
        mode, text = read_encapsulation(module)
        if mode:
            encap, source = mode, "cluster IPPools: %s" % text
        else:
            source = "parameter (%s)" % text
    client = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff())
    try:
        instances = read_instances(module, client)
        group_ids = sorted(set(g["GroupId"] for i in instances for g in i.get("SecurityGroups", [])))
        groups = {}
        if group_ids:
            for sg in _paginate(client, "describe_security_groups", "SecurityGroups", GroupIds=group_ids):
                groups[sg["GroupId"]] = sg
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        module.fail_json_aws(exc, msg="cannot read the nodes' instances and security groups")
    if not instances:
        which = "instance_ids %s" % module.params["instance_ids"] if module.params["instance_ids"] else \
            "filters %s" % module.params["filters"]
        module.fail_json(msg="%s: no instance matched; check the cluster tag / instance ids and the region" % which)
    api_lb = read_api_lb(module, client)

    findings = sgcheck.audit(instances, groups, encap, api_lb_subnets=api_lb.get("subnets"))
    summary = [dict(instance_id=i["InstanceId"], private_ip_address=i.get("PrivateIpAddress", ""),
                    subnet_id=i.get("SubnetId", ""), source_dest_check=i.get("SourceDestCheck", True),
                    security_groups=[g["GroupId"] for g in i.get("SecurityGroups", [])]) for i in instances]
    ok_text = "%d node(s), security group(s) %s, Calico encapsulation %s: no problem found" % (
        len(instances), ", ".join(group_ids), encap)
    if api_lb.get("subnets"):
        ok_text += "; tcp 6443 allowed from the API load balancer's subnets %s" % ", ".join(
            sn["SubnetId"] for sn in api_lb["subnets"])
    result = dict(findings=findings, instances=summary, security_groups=group_ids, calico_encapsulation=encap,
                  calico_encapsulation_source=source, api_lb=api_lb)
    result["evidence"] = sgcheck.evidence(instances, groups, encap)
    msg = summary_message("sg_audit", findings, ok_text)
    if api_lb and not api_lb["found"]:
        msg += "\napi_lb_name: no load balancer named %s: tcp 6443 from its subnets (API_LB_BLOCKED) was not checked" % (
            api_lb["name"])
    if errors(findings) and module.params["fail_on_findings"]:
        module.fail_json(msg=msg, **result)
    module.exit_json(changed=False, msg=msg, **result)


if __name__ == "__main__":
    main()
