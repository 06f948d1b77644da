#!/usr/bin/env bash
# make_kernel_vectors.sh -- capture packet test vectors produced by the Linux
# kernel (an independent peer, not weft's own code).
#
# Makes, in the directory this script lives in:
#   kernel_vxlan_ipv4.pcap  VXLAN (VNI 100) over an IPv4 underlay: encapsulated
#                           ARP request/reply + 3x ICMP echo request/reply
#   kernel_vxlan_ipv6.pcap  VXLAN (VNI 200) over an IPv6 underlay: same traffic
#   kernel_plain.pcap       untunnelled Ethernet/ARP/IPv4/ICMP between two
#                           namespaces, plus one ping with the IPv4 Record
#                           Route option (ping -R)
# and kernel_capture_env.txt (kernel/tool versions used), then (if the
# repository's .venv or $PYTHON has scapy) regenerates MANIFEST.md and
# manifest.json via make_manifest.py, since the kernel picks UDP source ports,
# IP ids and ICMP ids that change from run to run.
#
# Run:   sudo bash make_kernel_vectors.sh
# Needs: root, iproute2, tcpdump, iputils-ping, ethtool; kernel with netns,
#        veth, vxlan.
#
# Network safety: every namespace/interface created here starts with "wv";
# underlay addresses are documentation ranges (192.0.2.0/24, 2001:db8::/32);
# 10.0.x.x only lives inside the namespaces made here; namespaces have no
# default route. Everything is torn down on exit (trap), even on failure.
# Re-running overwrites the pcaps.
set -euo pipefail

OUT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NAMESPACES=(wv-h1 wv-h2 wv-p1 wv-p2)
TMP="$(mktemp -d /tmp/wv-vectors.XXXXXX)"
TCPDUMP_PID=""

cleanup() {
    if [[ -n "$TCPDUMP_PID" ]] && kill -0 "$TCPDUMP_PID" 2>/dev/null; then
        kill "$TCPDUMP_PID" 2>/dev/null || true
        wait "$TCPDUMP_PID" 2>/dev/null || true
    fi
    for ns in "${NAMESPACES[@]}"; do
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $EUID -eq 0 ]] || { echo "must run as root (sudo bash $0)" >&2; exit 1; }
for tool in ip tcpdump ping ethtool; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

# Start from a clean slate in case an earlier run was killed hard (SIGKILL).
for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done

# new_ns NAME V6(0|1): a namespace with only loopback. IPv6 is disabled unless
# it is needed for the underlay, so no MLD/RS/ND noise appears.
new_ns() {
    ip netns add "$1"
    ip -n "$1" link set lo up
    if [[ "$2" == 0 ]]; then
        ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
        ip netns exec "$1" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
    fi
}

# veth_pair NS1 IF1 MAC1 NS2 IF2 MAC2: a veth joining two namespaces, fixed
# MACs, no IPv6 link-local generation, tx checksum offload off so the
# checksums seen by tcpdump are the real ones written on the wire.
veth_pair() {
    ip link add "$2" netns "$1" address "$3" type veth peer name "$5" netns "$4" address "$6"
    ip -n "$1" link set "$2" addrgenmode none
    ip -n "$4" link set "$5" addrgenmode none
    ip netns exec "$1" ethtool -K "$2" tx off >/dev/null
    ip netns exec "$4" ethtool -K "$5" tx off >/dev/null
    ip -n "$1" link set "$2" up
    ip -n "$4" link set "$5" up
}

# vxlan_dev NS NAME MAC VNI LOCAL REMOTE INNER_CIDR
vxlan_dev() {
    ip -n "$1" link add "$2" address "$3" type vxlan id "$4" dstport 4789 \
        local "$5" remote "$6"
    ip -n "$1" link set "$2" addrgenmode none
    ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1" 2>/dev/null || true
    ip -n "$1" addr add "$7" dev "$2"
    ip -n "$1" link set "$2" up
}

# start_capture NS IFACE FILE COUNT FILTER...: tcpdump in the background,
# full snaplen, packet-buffered, stop after COUNT packets. Waits until it is
# listening.
start_capture() {
    local ns="$1" ifc="$2" file="$3" count="$4"; shift 4
    rm -f "$file"
    timeout 30 ip netns exec "$ns" tcpdump -i "$ifc" -n -s 0 -U -Z root \
        -c "$count" -w "$file" "$@" 2>"$TMP/tcpdump.err" &
    TCPDUMP_PID=$!
    for _ in $(seq 1 50); do
        grep -q "listening on" "$TMP/tcpdump.err" 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$TMP/tcpdump.err" >&2
    echo "tcpdump did not start" >&2
    exit 1
}

# finish_capture FILE DEST COUNT: wait for tcpdump to stop by itself (after
# COUNT packets), check the count, move the file into place.
finish_capture() {
    local file="$1" dest="$2" count="$3"
    if ! wait "$TCPDUMP_PID"; then
        cat "$TMP/tcpdump.err" >&2
        echo "tcpdump failed or timed out before $count packets ($dest)" >&2
        exit 1
    fi
    TCPDUMP_PID=""
    grep -q "^$count packets captured" "$TMP/tcpdump.err" || {
        cat "$TMP/tcpdump.err" >&2; echo "unexpected packet count for $dest" >&2; exit 1; }
    chmod 0644 "$file"
    mv -f "$file" "$OUT/$dest"
    echo "wrote $OUT/$dest ($count packets)"
}

###########################################################################
# 1. VXLAN over IPv4 underlay, VNI 100
#    wv-h1: wvu1 02:00:00:00:01:01 192.0.2.1/24, wvvx1 fa:16:3e:00:05:07 10.0.5.7/24
#    wv-h2: wvu2 02:00:00:00:01:02 192.0.2.2/24, wvvx2 fa:16:3e:00:05:02 10.0.5.2/24
###########################################################################
new_ns wv-h1 0
new_ns wv-h2 0
veth_pair wv-h1 wvu1 02:00:00:00:01:01 wv-h2 wvu2 02:00:00:00:01:02
ip -n wv-h1 addr add 192.0.2.1/24 dev wvu1
ip -n wv-h2 addr add 192.0.2.2/24 dev wvu2
vxlan_dev wv-h1 wvvx1 fa:16:3e:00:05:07 100 192.0.2.1 192.0.2.2 10.0.5.7/24
vxlan_dev wv-h2 wvvx2 fa:16:3e:00:05:02 100 192.0.2.2 192.0.2.1 10.0.5.2/24
# Resolve the underlay neighbour first so only VXLAN traffic is captured.
ip netns exec wv-h1 ping -q -c 1 -W 2 192.0.2.2 >/dev/null

# ARP request + reply + 3 x (echo request + reply) = 8 frames
start_capture wv-h1 wvu1 "$TMP/v4.pcap" 8 udp port 4789
ip netns exec wv-h1 ping -c 3 -i 0.2 -W 2 10.0.5.2
finish_capture "$TMP/v4.pcap" kernel_vxlan_ipv4.pcap 8
ip netns del wv-h1; ip netns del wv-h2

###########################################################################
# 2. VXLAN over IPv6 underlay, VNI 200 (kernel defaults: real UDP checksum)
#    wv-h1: wvu1 02:00:00:00:02:01 2001:db8:1::1/64, wvvx1 fa:16:3e:00:06:07 10.0.6.7/24
#    wv-h2: wvu2 02:00:00:00:02:02 2001:db8:1::2/64, wvvx2 fa:16:3e:00:06:02 10.0.6.2/24
###########################################################################
new_ns wv-h1 1
new_ns wv-h2 1
veth_pair wv-h1 wvu1 02:00:00:00:02:01 wv-h2 wvu2 02:00:00:00:02:02
ip -n wv-h1 addr add 2001:db8:1::1/64 dev wvu1 nodad
ip -n wv-h2 addr add 2001:db8:1::2/64 dev wvu2 nodad
vxlan_dev wv-h1 wvvx1 fa:16:3e:00:06:07 200 2001:db8:1::1 2001:db8:1::2 10.0.6.7/24
vxlan_dev wv-h2 wvvx2 fa:16:3e:00:06:02 200 2001:db8:1::2 2001:db8:1::1 10.0.6.2/24
ip netns exec wv-h1 ping -q -c 1 -W 2 2001:db8:1::2 >/dev/null

start_capture wv-h1 wvu1 "$TMP/v6.pcap" 8 udp port 4789
ip netns exec wv-h1 ping -c 3 -i 0.2 -W 2 10.0.6.2
finish_capture "$TMP/v6.pcap" kernel_vxlan_ipv6.pcap 8
ip netns del wv-h1; ip netns del wv-h2

###########################################################################
# 3. Plain (untunnelled) traffic on a veth
#    wv-p1: wvp1 02:00:00:00:07:01 10.0.7.1/24
#    wv-p2: wvp2 02:00:00:00:07:02 10.0.7.2/24
#    ARP request + reply, 3 x echo, then 1 x echo with Record Route = 10 frames
###########################################################################
new_ns wv-p1 0
new_ns wv-p2 0
veth_pair wv-p1 wvp1 02:00:00:00:07:01 wv-p2 wvp2 02:00:00:00:07:02
ip -n wv-p1 addr add 10.0.7.1/24 dev wvp1
ip -n wv-p2 addr add 10.0.7.2/24 dev wvp2

start_capture wv-p1 wvp1 "$TMP/plain.pcap" 10
ip netns exec wv-p1 ping -c 3 -i 0.2 -W 2 10.0.7.2
ip netns exec wv-p1 ping -R -c 1 -W 2 10.0.7.2
finish_capture "$TMP/plain.pcap" kernel_plain.pcap 10
ip netns del wv-p1; ip netns del wv-p2

###########################################################################
# Manifest (reads every pcap back; kernel-chosen values change per run)
###########################################################################
{
    echo "kernel: $(uname -sr)"
    echo "iproute2: $(ip -V)"
    echo "tcpdump: $(tcpdump --version 2>&1 | head -n 1)"
    echo "$(tcpdump --version 2>&1 | sed -n 2p)"
    echo "ping: $(ping -V 2>&1 | head -n 1)"
} > "$OUT/kernel_capture_env.txt"

# Python with scapy: $PYTHON, else the repository's .venv (four levels up).
PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" && -x "$OUT/../../../../.venv/bin/python" ]]; then
    PYTHON="$OUT/../../../../.venv/bin/python"
fi
if [[ -n "$PYTHON" ]] && "$PYTHON" -c 'import scapy' 2>/dev/null; then
    "$PYTHON" "$OUT/make_manifest.py"
else
    echo "note: no python with scapy found; run make_manifest.py to refresh MANIFEST.md/manifest.json" >&2
fi
