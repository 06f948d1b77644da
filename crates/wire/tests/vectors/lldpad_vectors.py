#!/usr/bin/env python3
"""lldpad_vectors.py -- the lldpad captures among the test vectors.

The `lldpad_*.pcap` files (pcapng) are real 802.1Qbg exchanges with lldpad
1.1+git20221028 (Debian 12) as the station, copied unchanged from
`shared/evb/captures/` (see its README.md); `lldpad_*.txt` beside each is the
output of that folder's own scapy-based decoder (`tools/decode_evb.py`), one
line per frame, which `tests/evb_vectors.rs` uses as the independent oracle.

make_manifest.py calls `entries()` and `markdown()` so the section survives a
regeneration. Run on its own (plain python3, no scapy) to update just this
section of manifest.json and MANIFEST.md in place:
    python3 crates/wire/tests/vectors/lldpad_vectors.py
"""

import hashlib
import json
import os
import struct

OUT = os.path.dirname(os.path.abspath(__file__))
SOURCE = "../shared/evb/captures"
HEADING = "## lldpad captures (802.1Qbg: EVB, CDCP, ECP, VDP)"

# (file stem, what it shows), in capture order.
LLDPAD = [
    ("01-station-alone",
     "lldpad station with nothing on the bridge side: LLDP with the EVB TLV every 30 s "
     "(RRSTAT unknown), one VDP Associate sent four times 164 ms apart (ECP retries), the "
     "TTL-0 shutdown LLDPDU."),
    ("02-lldpad-station-vs-lldpad-bridge",
     "lldpad against lldpad as bridge: the EVB negotiation (RRCAP/RRCTRL, ROL), then "
     "associate, keep-alives, pre-associate, pre-associate-RR, associate, VID-only filters, "
     "three de-associates; the bridge echoes VID 0."),
    ("03-lldpad-station-vs-scapy-bridge",
     "lldpad against a scapy bridge simulator: VID assignment (0 -> 10), M and S hints, "
     "reject (De-Associate + 0x42), Keep (0x63), hard error (0x54), an unsolicited bridge "
     "De-Associate, and a bridge CDCP TLV <1,1> <2,100>."),
    ("04-no-bridge-lldp-and-vdp-timeout",
     "a bridge that sends no LLDP and ends its VDPDUs with an End TLV; one request is ACKed "
     "by ECP but never answered by VDP."),
    ("05-groupid-filters-rr-off",
     "group IDs negotiated (BGID/SGID), reflective relay off; GroupID/MAC/VID (two entries) "
     "and GroupID/VID (PCP 5) filters; CDCP in an LLDPDU to 01-80-C2-00-00-03."),
    ("06-draft02-evb-tlv",
     "the draft 0.2 EVB TLV (OUI 00-1B-3F) from lldpad and from a crafted bridge."),
    ("07-bridge-restart-ecp-seq-reuse",
     "the bridge simulator restarts and reuses ECP sequence number 1: lldpad ACKs its "
     "response but drops it as a duplicate."),
]


def pcapng_frames(path):
    """The number of Enhanced Packet Blocks in a little-endian pcapng file."""
    with open(path, "rb") as fh:
        data = fh.read()
    offset, frames = 0, 0
    while offset < len(data):
        block_type, length = struct.unpack_from("<II", data, offset)
        if block_type == 0x0A0D0D0A:
            (magic,) = struct.unpack_from("<I", data, offset + 8)
            assert magic == 0x1A2B3C4D, f"{path}: big-endian pcapng not expected"
        elif block_type == 6:
            frames += 1
        assert length >= 12 and length % 4 == 0, f"{path}: bad block at {offset}"
        offset += length
    return frames


def entries():
    out = []
    for stem, how in LLDPAD:
        name = f"lldpad_{stem}.pcap"
        path = os.path.join(OUT, name)
        with open(path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        with open(os.path.join(OUT, f"lldpad_{stem}.txt")) as fh:
            lines = len(fh.read().splitlines())
        frames = pcapng_frames(path)
        assert frames == lines, f"{name}: {frames} frames, {lines} decoded lines"
        out.append({"file": name, "format": "pcapng", "copied_from": f"{SOURCE}/{stem}.pcap",
                    "oracle": f"lldpad_{stem}.txt", "frames": frames, "sha256": digest,
                    "how": how})
    return out


def markdown(items):
    md = [HEADING, "",
          "Real exchanges with lldpad 1.1+git20221028 (Debian 12) as the 802.1Qbg station, "
          f"captured with tshark on the bridge end of a veth pair and copied unchanged from "
          f"`{SOURCE}/` (its README.md tells how they were made; field meanings in "
          "`shared/evb/PROTOCOL_NOTES.md`). These files are **pcapng**, not classic pcap, and "
          "`tests/vectors.rs` does not dissect them: `tests/evb_vectors.rs` does, re-emitting "
          "every EVB/CDCP TLV and ECP/VDP PDU byte for byte and comparing each frame with the "
          "line the capture author's own scapy decoder wrote for it (`lldpad_*.txt`, copied "
          f"from `{SOURCE}/decoded/`).", "",
          "| file | frames | sha256 | what it shows |",
          "|---|---|---|---|"]
    for e in items:
        md.append(f"| `{e['file']}` | {e['frames']} | `{e['sha256'][:16]}` | {e['how']} |")
    md.append("")
    return md


def main():
    items = entries()
    manifest_path = os.path.join(OUT, "manifest.json")
    with open(manifest_path) as fh:
        manifest = json.load(fh)
    manifest["lldpad_captures"] = items
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=False)
        fh.write("\n")
    md_path = os.path.join(OUT, "MANIFEST.md")
    with open(md_path) as fh:
        md = fh.read()
    if HEADING in md:
        md = md[:md.index(HEADING)]
    md = md.rstrip("\n") + "\n\n" + "\n".join(markdown(items))
    with open(md_path, "w") as fh:
        fh.write(md)
    print(f"updated manifest.json and MANIFEST.md ({len(items)} lldpad captures)")


if __name__ == "__main__":
    main()
