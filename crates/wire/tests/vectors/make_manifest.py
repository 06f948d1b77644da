#!/usr/bin/env python3
"""make_manifest.py -- write MANIFEST.md and manifest.json for the pcap test
vectors in this directory by reading every pcap back (scapy rdpcap for
dissection, plus a plain reader of the classic pcap record headers).

Nothing here is typed in from memory: every field value in the manifest is
read from the captured bytes (the kernel picks UDP source ports, IP ids and
ICMP ids per run, so this is re-run by make_kernel_vectors.sh and
make_scapy_vectors.py after they write their pcaps). Checksums are verified
independently here (RFC 1071 sums) and reported as *_ok.

Run (from the repository root):
    .venv/bin/python crates/wire/tests/vectors/make_manifest.py
"""

import json
import os
import struct
import sys

from scapy.all import (
    ARP, BOOTP, DHCP, Dot1AD, Dot1Q, Ether, GRE, ICMP, IP, IPv6, Padding, Raw,
    UDP, checksum, conf, load_contrib,
)
from scapy.layers.dhcp import DHCPRevOptions
from scapy.layers.l2 import GRE_PPTP
from scapy.layers.vxlan import VXLAN
from scapy.packet import NoPayload

import lldpad_vectors  # this folder; no scapy

load_contrib("lldp")
from scapy.contrib.lldp import LLDPDU  # noqa: E402

# Malformed frames are dissected with strict checks off (scapy's LLDP strict
# mode raises on them); field values still come from the bytes.
conf.contribs["LLDP"].strict_mode_disable()

OUT = os.path.dirname(os.path.abspath(__file__))

KERNEL_CMD = "sudo bash make_kernel_vectors.sh"
SCAPY_CMD = ".venv/bin/python crates/wire/tests/vectors/make_scapy_vectors.py"

# How each file was made. Order here is the order in the manifest.
FILES = [
    ("kernel_vxlan_ipv4.pcap", "make_kernel_vectors.sh", KERNEL_CMD,
     "Linux kernel VXLAN devices (VNI 100, dstport 4789) in namespaces wv-h1 "
     "(underlay veth wvu1 192.0.2.1/24, vxlan wvvx1 10.0.5.7/24) and wv-h2 "
     "(wvu2 192.0.2.2/24, wvvx2 10.0.5.2/24). Captured with "
     "`tcpdump -i wvu1 -n -s 0 -U -c 8 -w ... udp port 4789` in wv-h1 while "
     "`ping -c 3 -i 0.2 10.0.5.2` ran in wv-h1. veth tx checksum offload was "
     "turned off so captured checksums are final."),
    ("kernel_vxlan_ipv6.pcap", "make_kernel_vectors.sh", KERNEL_CMD,
     "Same as kernel_vxlan_ipv4.pcap but the underlay is IPv6 "
     "(wvu1 2001:db8:1::1/64, wvu2 2001:db8:1::2/64, nodad), VNI 200, inner "
     "10.0.6.7/24 -> 10.0.6.2/24; kernel defaults (UDP checksum over IPv6 "
     "on)."),
    ("kernel_plain.pcap", "make_kernel_vectors.sh", KERNEL_CMD,
     "Untunnelled traffic on veth wvp1 (wv-p1, 10.0.7.1/24) <-> wvp2 "
     "(wv-p2, 10.0.7.2/24), captured on wvp1 with "
     "`tcpdump -i wvp1 -n -s 0 -U -c 10 -w ...` while wv-p1 ran "
     "`ping -c 3 -i 0.2 10.0.7.2` then `ping -R -c 1 10.0.7.2` (IPv4 "
     "Record Route option)."),
    ("scapy_nvgre.pcap", "make_scapy_vectors.py", SCAPY_CMD,
     "NVGRE (RFC 7637): GRE with only K set, protocol 0x6558, key = "
     "VSID 5001 << 8 | FlowID 7 = 0x00138907. scapy has no NVGRE layer; "
     "built as GRE(key_present=1, key=..., proto=0x6558)."),
    ("scapy_gre_key.pcap", "make_scapy_vectors.py", SCAPY_CMD,
     "GRE (RFC 2784/2890) with key 0x12345678: key only; C+K+S with "
     "scapy-computed checksum and sequence 42; protocol 0x0800 (IPv4 "
     "directly, no inner Ethernet)."),
    ("scapy_qinq.pcap", "make_scapy_vectors.py", SCAPY_CMD,
     "802.1Q single tag; 802.1ad S-tag + 802.1Q C-tag; 802.1ad only; and "
     "VXLAN whose inner frame is S-tag + C-tag + ARP."),
    ("scapy_arp.pcap", "make_scapy_vectors.py", SCAPY_CMD,
     "ARP request (zero-padded to the 60-byte Ethernet minimum), reply and "
     "gratuitous ARP (both unpadded, 42 bytes)."),
    ("scapy_dhcp.pcap", "make_scapy_vectors.py", SCAPY_CMD,
     "DHCP DORA. Options in ascending option-code order, ending with End "
     "(255), no Pad after End, BOOTP payload not padded, sname/file all "
     "zero, UDP checksums computed by scapy."),
    ("scapy_ipv6_udp.pcap", "make_scapy_vectors.py", SCAPY_CMD,
     "Ethernet/IPv6/UDP with payload \"weft\"; VXLAN over IPv6 carrying ARP."),
    ("scapy_lldp.pcap", "make_scapy_vectors.py", SCAPY_CMD,
     "LLDP: frame 0 is the exact LLDPDU (unpadded, 50 bytes); frame 1 is "
     "the same LLDPDU as scapy builds it on Ether, zero-padded by scapy to "
     "60 bytes (10 bytes after the End TLV)."),
    ("scapy_malformed.pcap", "make_scapy_vectors.py", SCAPY_CMD,
     "Deliberately broken frames; a parser must reject each cleanly (an "
     "error, no panic, no out-of-bounds read). Each frame is broken in "
     "exactly one way unless stated."),
]

MALFORMED = {
    ("scapy_malformed.pcap", 0):
        "IPv4 header checksum wrong (stored value = correct ^ 0x00ff); "
        "UDP checksum is correct",
    ("scapy_malformed.pcap", 1):
        "IPv4 IHL = 4 (16-byte header, below the 20-byte minimum); header "
        "checksum computed over the 20 bytes present so only IHL is wrong",
    ("scapy_malformed.pcap", 2):
        "IPv4 total length 200 but only 36 bytes of IPv4 are in the frame "
        "(header checksum correct for len=200; UDP length/checksum are "
        "those of the 16-byte datagram present)",
    ("scapy_malformed.pcap", 3):
        "UDP checksum wrong (stored value = correct ^ 0x00ff); IPv4 header "
        "is fine",
    ("scapy_malformed.pcap", 4):
        "frame truncated inside the IPv4 header: 14-byte Ethernet header + "
        "first 6 bytes of IPv4 (20 bytes in all)",
    ("scapy_malformed.pcap", 5):
        "VXLAN flags byte 0x00: I flag clear (VNI field still 5001); "
        "everything else valid",
    ("scapy_malformed.pcap", 6):
        "GRE version 1 (only version 0 is GRE/NVGRE; version 1 is "
        "PPTP enhanced GRE); otherwise an NVGRE-style header",
    ("scapy_malformed.pcap", 7):
        "LLDP System Name TLV says length 100 but only 4 bytes follow; the "
        "frame ends there with no End TLV",
}

ARP_OPS = {1: "request", 2: "reply"}
ICMP_TYPES = {0: "echo-reply", 8: "echo-request"}
DHCP_TYPES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE",
              5: "ACK", 6: "NAK", 7: "RELEASE", 8: "INFORM"}
LLDP_TLV_NAMES = {0: "End", 1: "ChassisID", 2: "PortID", 3: "TTL",
                  4: "PortDescription", 5: "SystemName",
                  6: "SystemDescription", 7: "SystemCapabilities",
                  8: "ManagementAddress", 127: "OrgSpecific"}


def hx(v, width):
    return "0x%0*x" % (width, v)


def mac(b):
    return ":".join("%02x" % x for x in b)


def ip4(b):
    return ".".join(str(x) for x in b)


def sum_ok(data):
    """RFC 1071: the one's complement sum over data (including the stored
    checksum) is 0xffff, i.e. scapy's checksum() of it is 0."""
    return checksum(bytes(data)) == 0


# ---------------------------------------------------------------------------
# pcap container, read directly (not via scapy) to check the format
def read_pcap_records(path):
    with open(path, "rb") as fh:
        data = fh.read()
    magic = data[:4]
    if magic != b"\xd4\xc3\xb2\xa1":
        raise SystemExit(f"{path}: not a little-endian classic pcap "
                         f"(magic {magic.hex()})")
    vmaj, vmin, _tz, _sig, snaplen, linktype = struct.unpack("<HHiIII", data[4:24])
    if linktype != 1:
        raise SystemExit(f"{path}: linktype {linktype}, want 1 (Ethernet)")
    recs, off = [], 24
    while off < len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[off:off + 16])
        recs.append({"ts_sec": sec, "ts_usec": usec, "caplen": incl,
                     "wirelen": orig, "bytes": data[off + 16:off + 16 + incl]})
        off += 16 + incl
    header = {"magic": "d4c3b2a1", "version": f"{vmaj}.{vmin}",
              "snaplen": snaplen, "linktype": linktype}
    return header, recs


# ---------------------------------------------------------------------------
# per-layer descriptions
def d_ether(l):
    b = l.original
    return {"proto": "eth", "dst": l.dst, "src": l.src,
            "type": hx(struct.unpack("!H", b[12:14])[0], 4)}


def d_vlan(l, tpid):
    return {"proto": "dot1ad" if tpid == 0x88A8 else "dot1q",
            "tpid": hx(tpid, 4), "pcp": l.prio, "dei": l.dei, "vid": l.vlan,
            "type": hx(l.type, 4)}


def d_arp(l):
    b = l.original
    return {"proto": "arp", "htype": l.hwtype, "ptype": hx(l.ptype, 4),
            "hlen": l.hwlen, "plen": l.plen, "op": l.op,
            "op_name": ARP_OPS.get(l.op, "?"), "sha": mac(b[8:14]),
            "spa": ip4(b[14:18]), "tha": mac(b[18:24]), "tpa": ip4(b[24:28]),
            "gratuitous": ip4(b[14:18]) == ip4(b[24:28])}


def d_ipv4(l):
    b = l.original
    ihl = b[0] & 0x0F
    d = {"proto": "ipv4", "version": b[0] >> 4, "ihl": ihl,
         "tos": hx(b[1], 2), "total_length": l.len, "id": l.id,
         "id_hex": hx(l.id, 4), "df": int(bool(l.flags.DF)),
         "mf": int(bool(l.flags.MF)), "frag_offset": l.frag, "ttl": l.ttl,
         "protocol": l.proto, "checksum": hx(l.chksum, 4),
         "checksum_ok": (sum_ok(b[:max(ihl, 5) * 4])
                         if len(b) >= max(ihl, 5) * 4 else None),
         "src": l.src, "dst": l.dst}
    opts = b[20:ihl * 4] if ihl > 5 else b""
    if opts:
        d["options_hex"] = opts.hex()
        d["options"] = []
        for o in l.options:
            od = {"type": o.option, "name": type(o).__name__.replace("IPOption_", "")}
            if hasattr(o, "length") and o.length is not None:
                od["length"] = o.length
            if hasattr(o, "pointer"):
                od["pointer"] = o.pointer
            if hasattr(o, "routers"):
                od["routers"] = list(o.routers)
            d["options"].append(od)
    d["bytes_in_frame"] = len(b)  # from the IPv4 header to the frame end
    return d


def d_ipv6(l):
    return {"proto": "ipv6", "version": l.version,
            "traffic_class": hx(l.tc, 2), "flow_label": hx(l.fl, 5),
            "payload_length": l.plen, "next_header": l.nh,
            "hop_limit": l.hlim, "src": l.src, "dst": l.dst}


def l4_pseudo(l, proto, length):
    ip = l.underlayer
    if isinstance(ip, IP):
        return (bytes(map(int, ip.src.split("."))) +
                bytes(map(int, ip.dst.split("."))) +
                struct.pack("!BBH", 0, proto, length))
    if isinstance(ip, IPv6):
        import ipaddress
        return (ipaddress.IPv6Address(ip.src).packed +
                ipaddress.IPv6Address(ip.dst).packed +
                struct.pack("!IxxxB", length, proto))
    return None


def d_udp(l):
    b = l.original
    d = {"proto": "udp", "sport": l.sport, "dport": l.dport,
         "length": l.len, "checksum": hx(l.chksum, 4)}
    if l.chksum == 0 and isinstance(l.underlayer, IP):
        d["checksum_ok"] = None
        d["checksum_note"] = "zero (not computed), allowed over IPv4"
    elif len(b) < l.len:
        d["checksum_ok"] = None
        d["checksum_note"] = "datagram truncated, cannot verify"
    else:
        d["checksum_ok"] = sum_ok(l4_pseudo(l, 17, l.len) + b[:l.len])
    return d


def d_icmp(l):
    ip = l.underlayer
    b = l.original
    if isinstance(ip, IP):
        n = ip.len - (ip.ihl * 4)
        b = b[:n]
    d = {"proto": "icmp", "type": l.type,
         "type_name": ICMP_TYPES.get(l.type, "?"), "code": l.code,
         "checksum": hx(l.chksum, 4), "checksum_ok": sum_ok(b)}
    if l.type in (0, 8):
        d["id"] = l.id
        d["id_hex"] = hx(l.id, 4)
        d["seq"] = l.seq
        d["payload_length"] = len(b) - 8
        if l.payload and isinstance(l.payload, Raw) and l.payload.load == b"weft-test-vector":
            d["payload_ascii"] = "weft-test-vector"
    return d


def d_vxlan(l):
    b = l.original
    return {"proto": "vxlan", "flags": hx(b[0], 2), "i_flag": bool(b[0] & 0x08),
            "reserved1": hx(int.from_bytes(b[1:4], "big"), 6),
            "vni": int.from_bytes(b[4:7], "big"), "reserved2": hx(b[7], 2)}


def d_gre(l, fname):
    b = l.original
    w = struct.unpack("!H", b[0:2])[0]
    c, r, k, s = (w >> 15) & 1, (w >> 14) & 1, (w >> 13) & 1, (w >> 12) & 1
    d = {"proto": "gre", "c": c, "r": r, "k": k, "s": s,
         "recursion": (w >> 8) & 7, "flags_reserved": (w >> 3) & 0x1F,
         "version": w & 7, "protocol": hx(struct.unpack("!H", b[2:4])[0], 4)}
    off = 4
    if c or r:
        d["checksum"] = hx(struct.unpack("!H", b[4:6])[0], 4)
        d["reserved1"] = struct.unpack("!H", b[6:8])[0]
        if c:
            d["checksum_ok"] = sum_ok(b)  # header + payload, RFC 2784
        off = 8
    if k:
        key = struct.unpack("!I", b[off:off + 4])[0]
        d["key"] = key
        d["key_hex"] = hx(key, 8)
        if fname == "scapy_nvgre.pcap":
            d["nvgre_vsid"] = key >> 8
            d["nvgre_flowid"] = key & 0xFF
        off += 4
    if s:
        d["seq"] = struct.unpack("!I", b[off:off + 4])[0]
        off += 4
    d["header_length"] = off
    return d


def d_dhcp(bootp):
    b = bootp.original
    d = {"proto": "dhcp", "op": b[0], "htype": b[1], "hlen": b[2],
         "hops": b[3], "xid": hx(struct.unpack("!I", b[4:8])[0], 8),
         "secs": struct.unpack("!H", b[8:10])[0],
         "flags": hx(struct.unpack("!H", b[10:12])[0], 4),
         "ciaddr": ip4(b[12:16]), "yiaddr": ip4(b[16:20]),
         "siaddr": ip4(b[20:24]), "giaddr": ip4(b[24:28]),
         "chaddr": mac(b[28:34]), "chaddr_padding_zero": b[34:44] == bytes(10),
         "sname_zero": b[44:108] == bytes(64), "file_zero": b[108:236] == bytes(128),
         "magic_cookie": b[236:240].hex(), "bootp_length": len(b)}
    raw_opts = b[240:]
    d["options_hex"] = raw_opts.hex()
    opts = []
    dh = bootp.getlayer(DHCP)
    # codes / lengths from the bytes; decoded values from scapy
    i, vals = 0, [o for o in dh.options]
    codes = []
    while i < len(raw_opts):
        code = raw_opts[i]
        if code in (0, 255):
            codes.append((code, None))
            i += 1
            if code == 255:
                break
            continue
        codes.append((code, raw_opts[i + 1]))
        i += 2 + raw_opts[i + 1]
    d["bytes_after_end"] = len(raw_opts) - i
    for (code, ln), v in zip(codes, vals):
        od = {"code": code}
        if code == 255:
            od["name"] = "end"
        elif code == 0:
            od["name"] = "pad"
        else:
            od["length"] = ln
            name, *values = v
            od["name"] = name
            if name == "message-type":
                od["value"] = values[0]
                od["value_name"] = DHCP_TYPES.get(values[0], "?")
                d["message_type"] = values[0]
                d["message_type_name"] = DHCP_TYPES.get(values[0], "?")
            elif name == "classless_static_routes":
                routes = values[0] if len(values) == 1 and isinstance(values[0], list) else values
                # scapy renders each route as "dest/len:router"
                od["value"] = [{"destination": r.split(":")[0], "router": r.split(":")[1]}
                               for r in routes]
            else:
                od["value"] = values if len(values) > 1 else values[0]
                if name == "param_req_list":
                    od["value"] = list(values[0]) if isinstance(values[0], (list, bytes)) else values
            assert DHCPRevOptions.get(name, (code,))[0] == code, (name, code)
        opts.append(od)
    d["options"] = opts
    d["option_codes"] = [o["code"] for o in opts]
    return d


def d_lldp(b):
    """LLDPDU TLVs, parsed from the bytes after the ethertype."""
    tlvs, off, err = [], 0, None
    while off < len(b):
        if off + 2 > len(b):
            err = "TLV header truncated"
            break
        hdr = struct.unpack("!H", b[off:off + 2])[0]
        t, ln = hdr >> 9, hdr & 0x1FF
        v = b[off + 2:off + 2 + ln]
        tlv = {"type": t, "name": LLDP_TLV_NAMES.get(t, "?"), "length": ln}
        if len(v) < ln:
            tlv["available"] = len(v)
            tlv["error"] = "length runs past end of frame"
            tlvs.append(tlv)
            err = tlv["error"]
            off = len(b)
            break
        if t == 1:
            tlv["subtype"] = v[0]
            tlv["value"] = mac(v[1:]) if v[0] == 4 else v[1:].hex()
        elif t == 2:
            tlv["subtype"] = v[0]
            tlv["value"] = v[1:].decode("ascii", "replace") if v[0] in (1, 5, 7) else v[1:].hex()
        elif t == 3:
            tlv["value"] = struct.unpack("!H", v)[0]
        elif t in (4, 5, 6):
            tlv["value"] = v.decode("ascii", "replace")
        elif t == 127:
            tlv["oui"] = "-".join("%02X" % x for x in v[0:3])
            tlv["subtype"] = v[3]
            tlv["info_hex"] = v[4:].hex()
            if v[0:3] == b"\x00\x80\xc2" and v[3] == 1:
                tlv["port_vlan_id"] = struct.unpack("!H", v[4:6])[0]
        tlvs.append(tlv)
        off += 2 + ln
        if t == 0:
            break
    d = {"proto": "lldp", "tlvs": tlvs}
    if err:
        d["error"] = err
    trailing = b[off:]
    return d, trailing


def describe(pkt, frame, fname):
    layers = []
    l = pkt
    while l is not None and not isinstance(l, NoPayload):
        if isinstance(l, Ether):
            layers.append(d_ether(l))
        elif isinstance(l, (Dot1AD, Dot1Q)):
            # TPID = the type field of the layer below (Ether or outer tag)
            layers.append(d_vlan(l, l.underlayer.type))
        elif isinstance(l, ARP):
            layers.append(d_arp(l))
        elif isinstance(l, IP):
            d = d_ipv4(l)
            layers.append(d)
            if d["ihl"] < 5:
                d["error"] = "IHL < 5"
                d["checksum_note"] = "verdict over the first 20 bytes"
                rest = l.original[20:]
                layers.append({"proto": "undecoded", "length": len(rest),
                               "hex": rest.hex()})
                break
            if d["total_length"] > len(l.original):
                d["error"] = "total length exceeds frame"
        elif isinstance(l, IPv6):
            layers.append(d_ipv6(l))
        elif isinstance(l, UDP):
            layers.append(d_udp(l))
        elif isinstance(l, ICMP):
            layers.append(d_icmp(l))
            break  # echo payload is described inside the icmp entry
        elif isinstance(l, VXLAN):
            layers.append(d_vxlan(l))
        elif isinstance(l, (GRE, GRE_PPTP)):
            d = d_gre(l, fname)
            layers.append(d)
            inner = l.original[d["header_length"]:]
            if d["protocol"] == "0x6558":
                l = Ether(inner)
            elif d["protocol"] == "0x0800":
                l = IP(inner)
            else:
                break
            continue
        elif isinstance(l, BOOTP):
            layers.append(d_dhcp(l))
            break
        elif isinstance(l, LLDPDU) or (isinstance(l, Raw) and layers
                                       and layers[-1].get("type") == "0x88cc"):
            d, trailing = d_lldp(l.original)
            layers.append(d)
            if trailing:
                layers.append({"proto": "eth_padding", "length": len(trailing),
                               "all_zero": trailing == bytes(len(trailing))})
            break
        elif isinstance(l, Padding):
            layers.append({"proto": "eth_padding", "length": len(l.load),
                           "all_zero": l.load == bytes(len(l.load))})
        elif isinstance(l, Raw):
            prev = layers[-1] if layers else {}
            if prev.get("proto") == "eth" and prev.get("type") == "0x0800":
                layers.append({"proto": "ipv4_truncated", "length": len(l.load),
                               "hex": l.load.hex(),
                               "error": "IPv4 header truncated (%d of 20 bytes)" % len(l.load)})
            else:
                d = {"proto": "payload", "length": len(l.load), "hex": l.load.hex()}
                try:
                    txt = l.load.decode("ascii")
                    if txt.isprintable():
                        d["ascii"] = txt
                except UnicodeDecodeError:
                    pass
                layers.append(d)
        else:
            layers.append({"proto": "unknown:" + type(l).__name__,
                           "length": len(l.original) if l.original else None})
        l = l.payload
    return layers


# ---------------------------------------------------------------------------
# one-line text per layer for MANIFEST.md
def fmt_layer(d):
    p = d["proto"]
    if p == "eth":
        return f"Ethernet {d['src']} → {d['dst']}, type {d['type']}"
    if p in ("dot1q", "dot1ad"):
        name = "802.1ad S-tag" if p == "dot1ad" else "802.1Q tag"
        return (f"{name} (TPID {d['tpid']}) PCP {d['pcp']} DEI {d['dei']} "
                f"VID {d['vid']}, type {d['type']}")
    if p == "arp":
        g = ", gratuitous" if d["gratuitous"] else ""
        return (f"ARP {d['op_name']} (op {d['op']}{g}) sha {d['sha']} spa {d['spa']} "
                f"tha {d['tha']} tpa {d['tpa']}")
    if p == "ipv4":
        s = (f"IPv4 {d['src']} → {d['dst']}, proto {d['protocol']}, TTL {d['ttl']}, "
             f"id {d['id_hex']}, DF {d['df']}, IHL {d['ihl']}, len {d['total_length']}, "
             f"tos {d['tos']}, csum {d['checksum']} ({ok(d['checksum_ok'])})")
        if "options" in d:
            s += ", options " + "; ".join(
                f"{o['name']}(type {o['type']}" + (f", len {o['length']}" if "length" in o else "")
                + (f", ptr {o['pointer']}" if "pointer" in o else "")
                + (f", routes {','.join(o['routers'])}" if "routers" in o else "") + ")"
                for o in d["options"])
        if "error" in d:
            s += f" **[{d['error']}]**"
        return s
    if p == "ipv6":
        return (f"IPv6 {d['src']} → {d['dst']}, next header {d['next_header']}, "
                f"hop limit {d['hop_limit']}, flow label {d['flow_label']}, "
                f"tc {d['traffic_class']}, payload len {d['payload_length']}")
    if p == "udp":
        s = (f"UDP {d['sport']} → {d['dport']}, len {d['length']}, csum {d['checksum']} "
             f"({ok(d['checksum_ok'])})")
        if "checksum_note" in d:
            s += f" [{d['checksum_note']}]"
        return s
    if p == "vxlan":
        return (f"VXLAN flags {d['flags']} (I={int(d['i_flag'])}), VNI {d['vni']}, "
                f"reserved {d['reserved1']}/{d['reserved2']}")
    if p == "gre":
        s = (f"GRE C={d['c']} R={d['r']} K={d['k']} S={d['s']} ver {d['version']}, "
             f"proto {d['protocol']}")
        if "checksum" in d:
            s += f", csum {d['checksum']} ({ok(d.get('checksum_ok'))})"
        if "key" in d:
            s += f", key {d['key_hex']}"
            if "nvgre_vsid" in d:
                s += f" (VSID {d['nvgre_vsid']}, FlowID {d['nvgre_flowid']})"
        if "seq" in d:
            s += f", seq {d['seq']}"
        return s
    if p == "icmp":
        s = (f"ICMP {d['type_name']} (type {d['type']} code {d['code']}), "
             f"csum {d['checksum']} ({ok(d['checksum_ok'])})")
        if "id" in d:
            s += f", id {d['id_hex']} ({d['id']}), seq {d['seq']}, {d['payload_length']} B data"
            if "payload_ascii" in d:
                s += f" \"{d['payload_ascii']}\""
        return s
    if p == "dhcp":
        opts = []
        for o in d["options"]:
            if o["code"] in (0, 255):
                opts.append(f"{o['code']}")
            elif o["code"] == 53:
                opts.append(f"53={o['value']}({o['value_name']})")
            else:
                v = o["value"]
                if o["code"] == 121:
                    v = ",".join(f"{r['destination']} via {r['router']}" for r in v)
                elif isinstance(v, list):
                    v = ",".join(map(str, v))
                opts.append(f"{o['code']}={v}")
        return (f"DHCP {d.get('message_type_name', '?')} op {d['op']}, xid {d['xid']}, "
                f"flags {d['flags']}, ciaddr {d['ciaddr']}, yiaddr {d['yiaddr']}, "
                f"siaddr {d['siaddr']}, giaddr {d['giaddr']}, chaddr {d['chaddr']}, "
                f"sname/file zero {d['sname_zero'] and d['file_zero']}, "
                f"BOOTP {d['bootp_length']} B; options: {' '.join(opts)}")
    if p == "lldp":
        parts = []
        for t in d["tlvs"]:
            s = f"{t['name']}({t['type']}) len {t['length']}"
            if "error" in t:
                s += f" **[{t['error']}: {t['available']} B available]**"
            elif t["type"] in (1, 2):
                s += f" subtype {t['subtype']} \"{t['value']}\""
            elif t["type"] in (3, 4, 5, 6):
                s += f" \"{t['value']}\"" if isinstance(t["value"], str) else f" {t['value']}"
            elif t["type"] == 127:
                s += f" OUI {t['oui']} subtype {t['subtype']}"
                if "port_vlan_id" in t:
                    s += f" PVID {t['port_vlan_id']}"
            parts.append(s)
        return "LLDP " + "; ".join(parts)
    if p == "eth_padding":
        return f"Ethernet padding {d['length']} B ({'zeros' if d['all_zero'] else 'non-zero'})"
    if p == "payload":
        a = f" \"{d['ascii']}\"" if "ascii" in d else ""
        return f"payload {d['length']} B{a} (hex {d['hex']})"
    if p in ("undecoded", "ipv4_truncated"):
        e = f" **[{d['error']}]**" if "error" in d else ""
        return f"{p} {d['length']} B (hex {d['hex']}){e}"
    return json.dumps(d)


def ok(v):
    return {True: "ok", False: "BAD", None: "n/a"}[v]


# ---------------------------------------------------------------------------
def main():
    from scapy.utils import rdpcap

    manifest = {"generated_by": "make_manifest.py", "files": []}
    md = ["# Packet-capture test vectors",
          "",
          "Classic pcap files (magic `d4 c3 b2 a1`, little-endian, version 2.4, "
          "linktype 1 = Ethernet, no FCS) made by independent peers: the Linux "
          "kernel (captured with tcpdump) and scapy. None of these bytes come "
          "from weft's own code.",
          "",
          "This file and `manifest.json` are generated by `make_manifest.py`, "
          "which reads every pcap back (scapy `rdpcap` for dissection, its own "
          "reader for the pcap record headers, its own RFC 1071 sums for the "
          "checksum verdicts). Do not edit them by hand; re-run:",
          "",
          "```",
          "sudo bash crates/wire/tests/vectors/make_kernel_vectors.sh   # kernel_*.pcap, then the manifest",
          ".venv/bin/python crates/wire/tests/vectors/make_scapy_vectors.py   # scapy_*.pcap, then the manifest",
          ".venv/bin/python crates/wire/tests/vectors/make_manifest.py   # manifest only",
          "```",
          "",
          "The kernel captures change on every run (the kernel picks VXLAN UDP "
          "source ports, IP ids, ICMP ids and timestamps); the values below are "
          "those of the committed files. The scapy files are byte-for-byte "
          "deterministic.",
          "",
          "Conventions: index is 0-based; `len` is the captured frame length in "
          "bytes (always equal to the original length; snaplen is not limiting); "
          "layers are listed outer to inner; `ok`/`BAD` are checksum verdicts "
          "computed from the bytes; IP ids and ICMP ids are shown in hex with "
          "decimal in parentheses where useful. Addresses: underlay "
          "192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32 (documentation ranges); "
          "tenant 10.0.x.x; VM MACs fa:16:3e:*, host MACs 02:00:00:*.",
          ""]
    env_path = os.path.join(OUT, "kernel_capture_env.txt")
    if os.path.exists(env_path):
        with open(env_path) as fh:
            env = fh.read().strip()
        md += ["Kernel captures were taken with (from `kernel_capture_env.txt`):", "",
               "```", env, "```", ""]
        manifest["kernel_capture_env"] = env.splitlines()

    for fname, script, cmd, how in FILES:
        path = os.path.join(OUT, fname)
        if not os.path.exists(path):
            print(f"warning: {fname} missing, skipped", file=sys.stderr)
            continue
        header, recs = read_pcap_records(path)
        pkts = rdpcap(path)
        assert len(pkts) == len(recs)
        frames = []
        for i, (p, r) in enumerate(zip(pkts, recs)):
            assert bytes(p) == r["bytes"], (fname, i)
            layers = describe(Ether(r["bytes"]), r, fname)
            fr = {"file": fname, "index": i, "len": r["caplen"],
                  "wirelen": r["wirelen"], "layers": layers}
            if (fname, i) in MALFORMED:
                fr["malformed"] = MALFORMED[(fname, i)]
            frames.append(fr)
        sanity_checks(fname, frames)
        manifest["files"].append({"file": fname, "made_by": script,
                                  "command": cmd, "how": how,
                                  "pcap": header, "frames": frames})
        md += [f"## {fname}", "",
               f"Made by `{script}`: `{cmd}`. {how}", "",
               f"pcap header: magic d4c3b2a1, version {header['version']}, "
               f"snaplen {header['snaplen']}, linktype {header['linktype']}; "
               f"{len(frames)} frames.", "",
               "| # | len | layers (outer → inner) |" +
               (" what is wrong |" if fname == "scapy_malformed.pcap" else ""),
               "|---|-----|------------------------|" +
               ("---------------|" if fname == "scapy_malformed.pcap" else "")]
        for fr in frames:
            cell = "<br>".join(fmt_layer(d).replace("|", "\\|") for d in fr["layers"])
            row = f"| {fr['index']} | {fr['len']} | {cell} |"
            if fname == "scapy_malformed.pcap":
                row += f" {fr.get('malformed', '')} |"
            md.append(row)
        md.append("")

    # The lldpad captures (pcapng, copied from shared/evb/captures) are listed, not dissected.
    lldpad = lldpad_vectors.entries()
    manifest["lldpad_captures"] = lldpad
    md += lldpad_vectors.markdown(lldpad)

    with open(os.path.join(OUT, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=False)
        fh.write("\n")
    with open(os.path.join(OUT, "MANIFEST.md"), "w") as fh:
        fh.write("\n".join(md))
    print(f"wrote {os.path.join(OUT, 'MANIFEST.md')} and manifest.json "
          f"({sum(len(f['frames']) for f in manifest['files'])} frames)")


def sanity_checks(fname, frames):
    """Fail loudly if a well-formed file has a bad checksum, or a malformed
    frame is not broken the way MALFORMED says."""
    def find(fr, proto):
        return [d for d in fr["layers"] if d["proto"] == proto]
    for fr in frames:
        key = (fname, fr["index"])
        if fname != "scapy_malformed.pcap":
            for d in fr["layers"]:
                if d.get("checksum_ok") is False:
                    raise SystemExit(f"{key}: bad {d['proto']} checksum")
                if "error" in d:
                    raise SystemExit(f"{key}: {d['error']}")
            if fname == "scapy_dhcp.pcap":
                dh = find(fr, "dhcp")[0]
                codes = dh["option_codes"]
                assert codes[-1] == 255 and codes[:-1] == sorted(codes[:-1]), codes
                assert 0 not in codes and dh["bytes_after_end"] == 0, key
            continue
        i = fr["index"]
        ip = find(fr, "ipv4")
        if i == 0:
            assert ip[0]["checksum_ok"] is False and find(fr, "udp")[0]["checksum_ok"], key
        elif i == 1:
            assert ip[0]["ihl"] == 4, key
        elif i == 2:
            assert ip[0]["total_length"] == 200 and ip[0]["checksum_ok"], key
        elif i == 3:
            assert ip[0]["checksum_ok"] and find(fr, "udp")[0]["checksum_ok"] is False, key
        elif i == 4:
            assert fr["len"] == 20 and find(fr, "ipv4_truncated"), key
        elif i == 5:
            assert find(fr, "vxlan")[0]["i_flag"] is False, key
        elif i == 6:
            assert find(fr, "gre")[0]["version"] == 1, key
        elif i == 7:
            assert "error" in find(fr, "lldp")[0], key


if __name__ == "__main__":
    main()
