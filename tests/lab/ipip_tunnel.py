"""A userspace IP-in-IP tunnel for the lab, run inside one node namespace (Calico's tunl0 in IPIP mode).

    python3 ipip_tunnel.py DEV POD_CIDR=NODE_IP [POD_CIDR=NODE_IP ...]

This kernel has no ipip (nor gre/vxlan) driver, so the tunnel device is a TUN device ``DEV`` and this
process does the encapsulation: a packet the node routes into ``DEV`` (towards another node's pod CIDR)
is sent to that node's IP as the payload of an IP protocol 4 packet through a raw socket (the kernel
writes the outer header: source = the node's own IP, protocol 4), and an IP protocol 4 packet arriving
from a known node is unwrapped and written into ``DEV``, from where the node routes the inner packet to
its pod. On the wire between the nodes this is real IP-in-IP: the outer packets cross the node's
INPUT chain, where the lab's security group stand-in (iptables chain KSG) filters them by protocol 4
and source node, as an EC2 security group does. Stops on SIGTERM.
"""

import fcntl
import ipaddress
import os
import select
import signal
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def main(argv):
    dev = argv[0]
    routes = []
    for spec in argv[1:]:
        cidr, node_ip = spec.split("=", 1)
        routes.append((ipaddress.ip_network(cidr), node_ip))
    nodes = {ip for _net, ip in routes}
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", dev.encode(), IFF_TUN | IFF_NO_PI))
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        ready, _w, _x = select.select([tun, raw], [], [])
        if tun in ready:
            pkt = os.read(tun, 65535)
            if len(pkt) >= 20 and pkt[0] >> 4 == 4:
                dst = ipaddress.ip_address(pkt[16:20])
                for net, node_ip in routes:
                    if dst in net:
                        try:
                            raw.sendto(pkt, (node_ip, 0))
                        except OSError:
                            pass  # like a tunnel: a packet that cannot be sent is lost
                        break
        if raw in ready:
            data, addr = raw.recvfrom(65535)
            ihl = (data[0] & 0x0F) * 4
            if addr[0] in nodes and len(data) > ihl + 20:
                os.write(tun, data[ihl:])


if __name__ == "__main__":
    main(sys.argv[1:])
