#!/usr/bin/env bash
# make_gso_vectors.sh -- capture what the Linux kernel makes of one TCP stream when it
# segments in software (GSO) and when it merges again (GRO), as test vectors for
# wire::gso (tests/gso_vectors.rs). None of these bytes come from weft's own code.
#
# Makes, in the directory this script lives in, for IPv4 (tcp4_*) and IPv6 (tcp6_*):
#   *_segments.pcap  the sender's veth, TSO off, GSO on, tx checksum off: the kernel's
#                    software GSO cuts every 64 KiB TCP super-frame into MSS-sized
#                    segments with finished checksums (what tcpdump sees is after that)
#   *_gro.pcap       the receiver's veth with GRO on: the kernel merges those segments
#                    into super-frames again (TCP checksum field = pseudo-header sum)
# and env.txt (kernel and tool versions).
#
# Run:   sudo bash make_gso_vectors.sh
# Needs: root, iproute2, tcpdump, ethtool, python3; kernel with netns and veth.
#
# Network safety: namespaces and interfaces start with "wg"; addresses are 10.0.7.0/24
# and 2001:db8:7::/64 inside namespaces without a default route. Torn down on exit.
set -euo pipefail

OUT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NAMESPACES=(wg-a wg-b)
TMP="$(mktemp -d /tmp/wg-vectors.XXXXXX)"
PIDS=()
BYTES=60000

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $EUID -eq 0 ]] || { echo "must run as root (sudo bash $0)" >&2; exit 1; }
for tool in ip tcpdump ethtool python3; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done

ip netns add wg-a
ip netns add wg-b
ip -n wg-a link set lo up
ip -n wg-b link set lo up
ip link add wga netns wg-a address 02:00:00:00:07:01 type veth peer name wgb netns wg-b address 02:00:00:00:07:02
ip -n wg-a link set wga addrgenmode none
ip -n wg-b link set wgb addrgenmode none
# Sender: no TSO, so the kernel's own software GSO segments at transmit, and no checksum
# offload, so it finishes the checksums there too.
ip netns exec wg-a ethtool -K wga tso off gso on tx off >/dev/null
# Receiver: GRO on a veth (it runs NAPI then), so the segments are merged before tcpdump.
ip netns exec wg-b ethtool -K wgb gro on >/dev/null
ip -n wg-a addr add 10.0.7.1/24 dev wga
ip -n wg-b addr add 10.0.7.2/24 dev wgb
ip -n wg-a -6 addr add 2001:db8:7::1/64 dev wga nodad
ip -n wg-b -6 addr add 2001:db8:7::2/64 dev wgb nodad
ip -n wg-a link set wga up
ip -n wg-b link set wgb up
# Fixed neighbours: no ARP or neighbour discovery in the captures.
ip -n wg-a neigh add 10.0.7.2 lladdr 02:00:00:00:07:02 dev wga
ip -n wg-b neigh add 10.0.7.1 lladdr 02:00:00:00:07:01 dev wgb
ip -n wg-a neigh add 2001:db8:7::2 lladdr 02:00:00:00:07:02 dev wga
ip -n wg-b neigh add 2001:db8:7::1 lladdr 02:00:00:00:07:01 dev wgb

cat > "$TMP/server.py" <<'PY'
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5201))
s.listen(1)
open(sys.argv[2], "w").write("ready\n")
c, _ = s.accept()
got = 0
while True:
    b = c.recv(1 << 16)
    if not b:
        break
    got += len(b)
print(got)
PY
cat > "$TMP/client.py" <<'PY'
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
n = int(sys.argv[2])
# Deterministic, non-repeating-looking payload.
data = bytes((i * 7 + i // 251) % 256 for i in range(n))
s = socket.create_connection((sys.argv[1], 5201))
s.sendall(data)
s.shutdown(socket.SHUT_WR)
s.recv(1)
s.close()
PY

wait_for() {
    for _ in $(seq 1 100); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "timed out waiting for $2 in $1" >&2
    return 1
}

capture() { # NAME SERVER_IP
    local name=$1 ip=$2
    ip netns exec wg-a tcpdump --immediate-mode -B 32768 -Z root -i wga -s 0 -U -n -w "$OUT/${name}_segments.pcap" tcp 2>"$TMP/a.log" &
    PIDS+=($!)
    local a=$!
    ip netns exec wg-b tcpdump --immediate-mode -B 32768 -Z root -i wgb -s 0 -U -n -w "$OUT/${name}_gro.pcap" tcp 2>"$TMP/b.log" &
    PIDS+=($!)
    local b=$!
    wait_for "$TMP/a.log" "listening on"
    wait_for "$TMP/b.log" "listening on"
    rm -f "$TMP/ready"
    ip netns exec wg-b python3 "$TMP/server.py" "$ip" "$TMP/ready" >"$TMP/got" &
    local server=$!
    wait_for "$TMP/ready" ready
    ip netns exec wg-a python3 "$TMP/client.py" "$ip" "$BYTES"
    wait "$server"
    sleep 0.3
    kill "$a" "$b"
    wait "$a" "$b" 2>/dev/null || true
    echo "$name: server got $(cat "$TMP/got") bytes"; grep -h "dropped" "$TMP/a.log" "$TMP/b.log" || true
}

capture tcp4 10.0.7.2
capture tcp6 2001:db8:7::2

{
    echo "kernel: $(uname -sr)"
    echo "iproute2: $(ip -V)"
    tcpdump --version 2>&1 | head -2
    echo "ethtool: $(ethtool --version)"
} >"$OUT/env.txt"
echo "wrote $OUT/tcp{4,6}_{segments,gro}.pcap"
