#!/usr/bin/env bash
# The lab's stand-in for busybox `nc [-w SEC] -u HOST PORT` (Debian's busybox nc has no UDP): stdin goes
# out as one datagram, what comes back within SEC seconds is printed. bash's /dev/udp and coreutils, so
# dozens can start at once on a loaded machine (a Python start each would not keep up).
wait=1
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -w) wait="$2"; shift 2 ;;
    -u) shift ;;
    *) args+=("$1"); shift ;;
  esac
done
exec 3<>"/dev/udp/${args[0]}/${args[1]}" || exit 1
/bin/cat >&3 || exit 1
# head reads a whole datagram in one read(); it stops after the reply's 3 bytes ("ok\n") or the wait
exec /usr/bin/timeout "$wait" /usr/bin/head -c 3 <&3
