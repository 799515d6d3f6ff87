"""The lab's stand-in for busybox ``udpsvd``, which Debian's busybox build leaves out (UDP ``nc -u`` is
tests/lab/mesh_udp_nc.sh): same command line, same observable behaviour.

    mesh_applets.py udpsvd [-v] IP PORT PROG...   for each datagram on IP:PORT, run PROG with the datagram
                                                  on stdin and send its stdout back to the sender (busybox
                                                  udpsvd: PROG's stdin/stdout is the socket); ``echo WORDS``
                                                  is answered without a process per datagram
"""

import socket
import subprocess
import sys
import threading


def udpsvd(args):
    args = [a for a in args if a not in ("-v", "-E")]
    ip, port, prog = args[0], int(args[1]), args[2:]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0" if ip == "0" else ip, port))

    def serve(data, peer):
        proc = subprocess.run(prog, input=data, stdout=subprocess.PIPE, timeout=10, check=False)
        if proc.stdout:
            sock.sendto(proc.stdout, peer)

    while True:
        data, peer = sock.recvfrom(65535)
        if prog[:1] == ["echo"]:  # what echo would write, without a process per datagram (the lab is loaded)
            sock.sendto((" ".join(prog[1:]) + "\n").encode(), peer)
            continue
        threading.Thread(target=serve, args=(data, peer), daemon=True).start()


if __name__ == "__main__":
    applet, argv = sys.argv[1], sys.argv[2:]
    sys.exit({"udpsvd": udpsvd}[applet](argv))
