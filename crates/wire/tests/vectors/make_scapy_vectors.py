#!/usr/bin/env python3
"""make_scapy_vectors.py -- packet test vectors built with scapy (an
independent encoder, not weft's own code).

Makes, in the directory this script lives in (classic pcap, linktype 1
Ethernet, written with scapy's wrpcap):

  scapy_nvgre.pcap      NVGRE (RFC 7637) over IPv4 and IPv6 underlays
  scapy_gre_key.pcap    GRE (RFC 2784/2890) with key, with C+K+S, and carrying
                        IPv4 directly
  scapy_qinq.pcap       802.1Q, 802.1ad + 802.1Q (QinQ), 802.1ad only, and
                        QinQ inside VXLAN
  scapy_arp.pcap        ARP request (padded to 60), reply, gratuitous ARP
  scapy_dhcp.pcap       DHCP DISCOVER/OFFER/REQUEST/ACK
  scapy_ipv6_udp.pcap   Ethernet/IPv6/UDP, and VXLAN over IPv6
  scapy_lldp.pcap       LLDP (unpadded, and padded to 60)
  scapy_malformed.pcap  frames a parser must reject cleanly

then regenerates MANIFEST.md and manifest.json via make_manifest.py.

Run (from the repository root):
    .venv/bin/python crates/wire/tests/vectors/make_scapy_vectors.py
(or `../../../../.venv/bin/python make_scapy_vectors.py` from this directory).
Needs scapy (python3 -m venv .venv && .venv/bin/pip install scapy); no root,
sends nothing on any network. Output is deterministic: fixed MACs, IP ids,
ports, transaction ids and pcap timestamps; re-running overwrites the files
with identical bytes.

Address plan: underlay 192.0.2.0/24, 198.51.100.0/24 and 2001:db8::/32
(documentation ranges); tenant addresses 10.0.x.x; VM MACs fa:16:3e:xx:xx:xx,
host MACs 02:00:00:xx:xx:xx.
"""

import os
import struct
import subprocess
import sys

from scapy.all import (
    ARP, BOOTP, DHCP, Dot1AD, Dot1Q, Ether, GRE, ICMP, IP, IPv6, Padding, Raw,
    UDP, checksum, conf, load_contrib, mac2str, raw, wrpcap,
)
from scapy.layers.vxlan import VXLAN

load_contrib("lldp")
from scapy.contrib.lldp import (  # noqa: E402
    LLDPDUChassisID, LLDPDUEndOfLLDPDU, LLDPDUGenericOrganisationSpecific,
    LLDPDUPortID, LLDPDUSystemName, LLDPDUTimeToLive,
)

OUT = os.path.dirname(os.path.abspath(__file__))

# Fixed pcap timestamps: file N, frame i -> BASE_TS + i milliseconds.
BASE_TS = 1700000000

# Host (underlay) MACs and VM (tenant) MACs.
HOST1 = "02:00:00:00:00:01"
HOST2 = "02:00:00:00:00:02"
VM1 = "fa:16:3e:00:00:01"
VM2 = "fa:16:3e:00:00:02"
BCAST = "ff:ff:ff:ff:ff:ff"

# ICMP echo payload used everywhere (16 bytes, fixed).
PING_DATA = b"weft-test-vector"

NVGRE_VSID = 5001
NVGRE_FLOWID = 7
NVGRE_KEY = (NVGRE_VSID << 8) | NVGRE_FLOWID  # 0x00138907


def write(name, pkts):
    """Write pkts as classic pcap (linktype 1) with fixed timestamps."""
    frames = []
    for i, p in enumerate(pkts):
        # Freeze the bytes (checksums/lengths computed once) and re-dissect,
        # so what is written is exactly what a reader will see.
        b = raw(p)
        f = Ether(b)
        assert raw(f) == b, (name, i)
        f.time = BASE_TS + i / 1000.0
        frames.append(f)
    path = os.path.join(OUT, name)
    wrpcap(path, frames, linktype=1)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    assert magic == b"\xd4\xc3\xb2\xa1", (name, magic.hex())
    print(f"wrote {path} ({len(frames)} frames: "
          f"{', '.join(str(len(raw(f))) for f in frames)} bytes)")


def inner_icmp(src_mac, dst_mac, src_ip, dst_ip, ip_id, icmp_id, seq):
    return (Ether(src=src_mac, dst=dst_mac)
            / IP(src=src_ip, dst=dst_ip, id=ip_id, flags="DF", ttl=64)
            / ICMP(type=8, id=icmp_id, seq=seq) / Raw(PING_DATA))


def arp_who_has(src_mac, src_ip, dst_ip):
    return (Ether(src=src_mac, dst=BCAST)
            / ARP(op=1, hwsrc=src_mac, psrc=src_ip,
                  hwdst="00:00:00:00:00:00", pdst=dst_ip))


# ---------------------------------------------------------------------------
def nvgre():
    gre = dict(key_present=1, key=NVGRE_KEY, proto=0x6558)
    return [
        # 0: IPv4 underlay, inner ICMP echo request
        Ether(src=HOST1, dst=HOST2)
        / IP(src="192.0.2.1", dst="192.0.2.2", id=0x1001, ttl=64, proto=47)
        / GRE(**gre)
        / inner_icmp(VM1, VM2, "10.0.0.1", "10.0.0.2", 0x2001, 0x0100, 1),
        # 1: IPv4 underlay, inner ARP who-has
        Ether(src=HOST1, dst=HOST2)
        / IP(src="192.0.2.1", dst="192.0.2.2", id=0x1002, ttl=64, proto=47)
        / GRE(**gre)
        / arp_who_has(VM1, "10.0.0.1", "10.0.0.2"),
        # 2: IPv6 underlay, inner ICMP echo request
        Ether(src=HOST1, dst=HOST2)
        / IPv6(src="2001:db8::1", dst="2001:db8::2", nh=47, hlim=64)
        / GRE(**gre)
        / inner_icmp(VM1, VM2, "10.0.0.1", "10.0.0.2", 0x2002, 0x0100, 2),
    ]


# ---------------------------------------------------------------------------
def gre_key():
    return [
        # 0: key only (K), transparent Ethernet bridging
        Ether(src=HOST1, dst=HOST2)
        / IP(src="198.51.100.1", dst="198.51.100.2", id=0x1101, ttl=64, proto=47)
        / GRE(key_present=1, key=0x12345678, proto=0x6558)
        / inner_icmp(VM1, VM2, "10.0.1.1", "10.0.1.2", 0x2101, 0x0200, 1),
        # 1: checksum + key + sequence (C, K, S); scapy computes the checksum
        Ether(src=HOST1, dst=HOST2)
        / IP(src="198.51.100.1", dst="198.51.100.2", id=0x1102, ttl=64, proto=47)
        / GRE(chksum_present=1, key_present=1, seqnum_present=1,
              key=0x12345678, sequence_number=42, proto=0x6558)
        / inner_icmp(VM1, VM2, "10.0.1.1", "10.0.1.2", 0x2102, 0x0200, 2),
        # 2: key only, protocol 0x0800: GRE carrying IPv4 directly (no inner
        #    Ethernet)
        Ether(src=HOST1, dst=HOST2)
        / IP(src="198.51.100.1", dst="198.51.100.2", id=0x1103, ttl=64, proto=47)
        / GRE(key_present=1, key=0x12345678, proto=0x0800)
        / IP(src="10.0.1.1", dst="10.0.1.2", id=0x2103, flags="DF", ttl=64)
        / ICMP(type=8, id=0x0200, seq=3) / Raw(PING_DATA),
    ]


# ---------------------------------------------------------------------------
def qinq():
    vm_a, vm_b = "fa:16:3e:00:05:07", "fa:16:3e:00:05:02"
    return [
        # 0: single 802.1Q tag, VLAN 1 (as from a VLAN-aware VM)
        Ether(src=vm_a, dst=vm_b, type=0x8100)
        / Dot1Q(prio=0, dei=0, vlan=1, type=0x0800)
        / IP(src="10.0.5.7", dst="10.0.5.2", id=0x3001, flags="DF", ttl=64)
        / ICMP(type=8, id=0x0300, seq=1) / Raw(PING_DATA),
        # 1: 802.1ad S-tag 100 PCP 3 + 802.1Q C-tag 200 DEI 1 + IPv4/UDP
        Ether(src=vm_a, dst=vm_b, type=0x88A8)
        / Dot1AD(prio=3, dei=0, vlan=100, type=0x8100)
        / Dot1Q(prio=0, dei=1, vlan=200, type=0x0800)
        / IP(src="10.0.5.7", dst="10.0.5.2", id=0x3002, flags="DF", ttl=64)
        / UDP(sport=40000, dport=7000) / Raw(b"qinq"),
        # 2: 802.1ad only (S-tag 100) carrying ARP who-has (broadcast)
        Ether(src=vm_a, dst=BCAST, type=0x88A8)
        / Dot1AD(prio=0, dei=0, vlan=100, type=0x0806)
        / ARP(op=1, hwsrc=vm_a, psrc="10.0.5.7",
              hwdst="00:00:00:00:00:00", pdst="10.0.5.2"),
        # 3: VXLAN (IPv4 underlay, VNI 5001) whose inner frame is
        #    S-tag 100 + C-tag 200 + ARP who-has
        Ether(src=HOST1, dst=HOST2)
        / IP(src="192.0.2.1", dst="192.0.2.2", id=0x3004, ttl=64)
        / UDP(sport=49152, dport=4789)
        / VXLAN(flags=0x08, vni=5001)
        / Ether(src=vm_a, dst=BCAST, type=0x88A8)
        / Dot1AD(prio=0, dei=0, vlan=100, type=0x8100)
        / Dot1Q(prio=0, dei=0, vlan=200, type=0x0806)
        / ARP(op=1, hwsrc=vm_a, psrc="10.0.5.7",
              hwdst="00:00:00:00:00:00", pdst="10.0.5.2"),
    ]


# ---------------------------------------------------------------------------
def arp():
    return [
        # 0: who-has, broadcast, padded with 18 zero bytes to 60 bytes
        arp_who_has(VM1, "10.0.2.1", "10.0.2.2") / Padding(b"\x00" * 18),
        # 1: is-at reply, unicast, not padded (42 bytes)
        Ether(src=VM2, dst=VM1)
        / ARP(op=2, hwsrc=VM2, psrc="10.0.2.2", hwdst=VM1, pdst="10.0.2.1"),
        # 2: gratuitous ARP (request form, sender IP == target IP),
        #    broadcast, not padded (42 bytes)
        Ether(src=VM2, dst=BCAST)
        / ARP(op=1, hwsrc=VM2, psrc="10.0.2.2",
              hwdst="00:00:00:00:00:00", pdst="10.0.2.2"),
    ]


# ---------------------------------------------------------------------------
def dhcp():
    client = "fa:16:3e:11:22:33"
    server = "02:00:00:00:05:01"
    xid = 0x3903F326
    chaddr = mac2str(client)  # scapy zero-pads chaddr to 16 bytes
    prl = [1, 3, 6, 26, 51, 54, 121]
    routes = ["10.0.0.0/16:10.0.5.1", "0.0.0.0/0:10.0.5.1"]
    # Options strictly in ascending option-code order, then 'end', no 'pad'.
    server_opts = lambda mtype: [  # noqa: E731
        ("subnet_mask", "255.255.255.0"),              # 1
        ("router", "10.0.5.1"),                        # 3
        ("name_server", "10.0.5.1", "10.0.5.3"),       # 6
        ("interface-mtu", 1450),                       # 26
        ("lease_time", 86400),                         # 51
        ("message-type", mtype),                       # 53
        ("server_id", "10.0.5.1"),                     # 54
        ("classless_static_routes", routes),           # 121
        "end",
    ]

    def client_pkt(ip_id, opts):
        return (Ether(src=client, dst=BCAST)
                / IP(src="0.0.0.0", dst="255.255.255.255", id=ip_id, ttl=64)
                / UDP(sport=68, dport=67)
                / BOOTP(op=1, xid=xid, flags=0, chaddr=chaddr)
                / DHCP(options=opts))

    def server_pkt(ip_id, opts):
        return (Ether(src=server, dst=client)
                / IP(src="10.0.5.1", dst="10.0.5.7", id=ip_id, ttl=64)
                / UDP(sport=67, dport=68)
                / BOOTP(op=2, xid=xid, flags=0, yiaddr="10.0.5.7",
                        siaddr="10.0.5.1", chaddr=chaddr)
                / DHCP(options=opts))

    return [
        client_pkt(0x4001, [("message-type", "discover"),      # 53
                            ("param_req_list", prl),           # 55
                            "end"]),
        server_pkt(0x4002, server_opts("offer")),
        client_pkt(0x4003, [("requested_addr", "10.0.5.7"),    # 50
                            ("message-type", "request"),       # 53
                            ("server_id", "10.0.5.1"),         # 54
                            ("param_req_list", prl),           # 55
                            "end"]),
        server_pkt(0x4004, server_opts("ack")),
    ]


# ---------------------------------------------------------------------------
def ipv6_udp():
    return [
        # 0: plain IPv6/UDP, payload "weft"
        Ether(src=HOST1, dst=HOST2)
        / IPv6(src="2001:db8::10", dst="2001:db8::20", hlim=64)
        / UDP(sport=5000, dport=6000) / Raw(b"weft"),
        # 1: VXLAN over IPv6 (VNI 5001) carrying an inner ARP who-has
        Ether(src=HOST1, dst=HOST2)
        / IPv6(src="2001:db8::10", dst="2001:db8::20", hlim=64)
        / UDP(sport=49153, dport=4789)
        / VXLAN(flags=0x08, vni=5001)
        / arp_who_has(VM1, "10.0.3.1", "10.0.3.2"),
    ]


# ---------------------------------------------------------------------------
def lldp_pdu():
    return (LLDPDUChassisID(subtype=4, id=HOST1)            # MAC address
            / LLDPDUPortID(subtype=5, id=b"eth0")            # interface name
            / LLDPDUTimeToLive(ttl=120)
            / LLDPDUSystemName(system_name=b"tor1")
            / LLDPDUGenericOrganisationSpecific(             # IEEE 802.1
                org_code=0x0080C2, subtype=0x01, data=b"\x00\x01")  # PVID 1
            / LLDPDUEndOfLLDPDU())


def lldp_tlv_bytes(tlvs):
    """Bytes of LLDP TLVs alone. scapy's LLDP layer, when built on top of
    Ether, zero-pads the frame to 60 bytes by itself; building the TLVs with
    no lower layer (strict mode off) gives the exact, unpadded bytes."""
    conf.contribs["LLDP"].strict_mode_disable()
    try:
        return raw(tlvs)
    finally:
        conf.contribs["LLDP"].strict_mode_enable()


def lldp():
    hdr = lambda: Ether(src=HOST1, dst="01:80:c2:00:00:0e", type=0x88CC)  # noqa: E731
    return [
        # 0: exact LLDPDU, no Ethernet padding (14 + 36 = 50 bytes)
        hdr() / Raw(lldp_tlv_bytes(lldp_pdu())),
        # 1: the same LLDPDU built on Ether, which scapy zero-pads to 60 bytes
        #    (10 bytes after the End TLV, as a NIC would pad it)
        hdr() / lldp_pdu(),
    ]


# ---------------------------------------------------------------------------
def malformed():
    frames = []

    # 0: IPv4 header checksum wrong (correct value with its low byte flipped)
    good = Ether(raw(Ether(src=HOST1, dst=HOST2)
                     / IP(src="192.0.2.1", dst="192.0.2.2", id=0x5001, ttl=64)
                     / UDP(sport=5000, dport=6000) / Raw(b"bad ip csum")))
    frames.append(Ether(src=HOST1, dst=HOST2)
                  / IP(src="192.0.2.1", dst="192.0.2.2", id=0x5001, ttl=64,
                       chksum=good[IP].chksum ^ 0x00FF)
                  / UDP(sport=5000, dport=6000) / Raw(b"bad ip csum"))

    # 1: IPv4 with IHL=4 (16-byte header, below the 20-byte minimum). The
    #    20 bytes are otherwise a normal header; the checksum is computed over
    #    those 20 bytes with IHL=4 in place.
    b = bytearray(raw(Ether(src=HOST1, dst=HOST2)
                      / IP(src="192.0.2.1", dst="192.0.2.2", id=0x5002, ttl=64)
                      / UDP(sport=5000, dport=6000) / Raw(b"ihl is four")))
    b[14] = 0x44
    b[24:26] = b"\x00\x00"
    b[24:26] = struct.pack("!H", checksum(bytes(b[14:34])))
    frames.append(Ether(bytes(b)))

    # 2: IPv4 total length 200, but the frame carries only 20+8+8 bytes of IP
    #    (header checksum is correct for len=200). The UDP length (16) and
    #    checksum are those of the 16-byte datagram actually present; scapy
    #    would otherwise derive the pseudo-header length from IP len (180),
    #    so the checksum is taken from a well-formed twin.
    twin = Ether(raw(Ether(src=HOST1, dst=HOST2)
                     / IP(src="192.0.2.1", dst="192.0.2.2", id=0x5003, ttl=64)
                     / UDP(sport=5000, dport=6000) / Raw(b"too long")))
    frames.append(Ether(src=HOST1, dst=HOST2)
                  / IP(src="192.0.2.1", dst="192.0.2.2", id=0x5003, ttl=64, len=200)
                  / UDP(sport=5000, dport=6000, len=16, chksum=twin[UDP].chksum)
                  / Raw(b"too long"))

    # 3: UDP checksum wrong (correct value with its low byte flipped)
    good = Ether(raw(Ether(src=HOST1, dst=HOST2)
                     / IP(src="192.0.2.1", dst="192.0.2.2", id=0x5004, ttl=64)
                     / UDP(sport=5000, dport=6000) / Raw(b"bad udp csum")))
    frames.append(Ether(src=HOST1, dst=HOST2)
                  / IP(src="192.0.2.1", dst="192.0.2.2", id=0x5004, ttl=64)
                  / UDP(sport=5000, dport=6000, chksum=good[UDP].chksum ^ 0x00FF)
                  / Raw(b"bad udp csum"))

    # 4: truncated in the middle of the IPv4 header: 14 bytes Ethernet +
    #    first 6 bytes of an IPv4 header = 20 bytes in all
    full = raw(Ether(src=HOST1, dst=HOST2)
               / IP(src="192.0.2.1", dst="192.0.2.2", id=0x5005, ttl=64)
               / UDP(sport=5000, dport=6000) / Raw(b"truncated"))
    frames.append(Ether(full[:20]))

    # 5: VXLAN with the I flag clear (flags byte 0x00), VNI 5001, inner ARP
    frames.append(Ether(src=HOST1, dst=HOST2)
                  / IP(src="192.0.2.1", dst="192.0.2.2", id=0x5006, ttl=64)
                  / UDP(sport=49152, dport=4789)
                  / VXLAN(flags=0x00, vni=5001)
                  / arp_who_has(VM1, "10.0.0.1", "10.0.0.2"))

    # 6: GRE version 1 (K bit set, proto 0x6558, key = NVGRE key); only
    #    version 0 is valid for GRE/NVGRE
    frames.append(Ether(src=HOST1, dst=HOST2)
                  / IP(src="192.0.2.1", dst="192.0.2.2", id=0x5007, ttl=64, proto=47)
                  / GRE(key_present=1, version=1, key=NVGRE_KEY, proto=0x6558)
                  / arp_who_has(VM1, "10.0.0.1", "10.0.0.2"))

    # 7: LLDP whose System Name TLV claims 100 bytes but only 4 follow (the
    #    frame ends there; no End TLV)
    good = lldp_tlv_bytes(LLDPDUChassisID(subtype=4, id=HOST1)
                          / LLDPDUPortID(subtype=5, id=b"eth0")
                          / LLDPDUTimeToLive(ttl=120))
    sysname_tlv = struct.pack("!H", (5 << 9) | 100) + b"tor1"
    frames.append(Ether(raw(Ether(src=HOST1, dst="01:80:c2:00:00:0e", type=0x88CC))
                        + good + sysname_tlv))
    return frames


def main():
    write("scapy_nvgre.pcap", nvgre())
    write("scapy_gre_key.pcap", gre_key())
    write("scapy_qinq.pcap", qinq())
    write("scapy_arp.pcap", arp())
    write("scapy_dhcp.pcap", dhcp())
    write("scapy_ipv6_udp.pcap", ipv6_udp())
    write("scapy_lldp.pcap", lldp())
    write("scapy_malformed.pcap", malformed())
    manifest = os.path.join(OUT, "make_manifest.py")
    if os.path.exists(manifest):
        subprocess.run([sys.executable, manifest], check=True)


if __name__ == "__main__":
    main()
