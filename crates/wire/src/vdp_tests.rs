use super::*;

/// The VSI Manager ID TLV lldpad sends for `mgrid2=evmgr1`.
const MANAGER: [u8; 18] = [
    0x0a, 0x10, b'e', b'v', b'm', b'g', b'r', b'1', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// An Associate request from lldpad (capture 03 frame 11): type 5 v4, UUID aaaaaaaa-...-01,
/// one MAC/VID entry 52:54:00:8e:aa:11 with VID 0 ("assign one").
static ASSOC_VSI: [u8; 35] = [
    0x06, 0x21, // Associate, 33 bytes
    0x00, // status: request
    0x00, 0x00, 0x05, 0x04, 0x05, // type 5, version 4, UUID
    0xaa, 0xaa, 0xaa, 0xaa, 0x00, 0x00, 0x40, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x02, 0x00, 0x01, // MAC/VID, one entry
    0x52, 0x54, 0x00, 0x8e, 0xaa, 0x11, 0x00, 0x00,
];

/// The GroupID/MAC/VID request of capture 05 frame 13: two entries, group 77, VID 0.
static GROUP_MAC_VSI: [u8; 51] = [
    0x06, 0x31, 0x00, 0x00, 0x00, 0x08, 0x01, 0x05, 0x44, 0x44, 0x44, 0x44, 0x00, 0x00, 0x40, 0x00,
    0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x44, 0x04, 0x00, 0x02, 0x00, 0x00, 0x00, 0x4d, 0x52,
    0x54, 0x00, 0x8e, 0xaa, 0x44, 0x00, 0x00, 0x00, 0x00, 0x00, 0x4d, 0x52, 0x54, 0x00, 0x8e, 0xaa,
    0x45, 0x00, 0x00,
];

/// The GroupID/VID request of capture 05 frame 18: group 88, PCP 5, VID 40.
static GROUP_VSI: [u8; 33] = [
    0x06, 0x1f, 0x00, 0x00, 0x00, 0x09, 0x01, 0x05, 0x33, 0x33, 0x33, 0x33, 0x00, 0x00, 0x40, 0x00,
    0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x33, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x58, 0x50,
    0x28,
];

fn vdpdu(vsi: &[u8]) -> Vec<u8> {
    let mut bytes = MANAGER.to_vec();
    bytes.extend_from_slice(vsi);
    bytes
}

fn uuid(last: u8, fill: u8) -> Id16 {
    let mut id = [0; 16];
    id[..4].fill(fill);
    id[6] = 0x40;
    id[8] = 0x80;
    id[15] = last;
    Id16(id)
}

fn assoc() -> Vsi {
    Vsi {
        mode: Mode::Associate,
        status: Status::REQUEST,
        type_id: 5,
        type_version: 4,
        id_format: VsiIdFormat::UUID,
        id: uuid(0x01, 0xaa),
        filters: Filters::MacVid(vec![(
            MacAddr([0x52, 0x54, 0x00, 0x8e, 0xaa, 0x11]),
            Vlan::new(0),
        )]),
    }
}

fn repr() -> Repr {
    Repr {
        manager_id: Id16::from_name("evmgr1").unwrap(),
        tlvs: vec![Tlv::Vsi(assoc())],
        end: false,
    }
}

#[test]
fn test_deconstruct() {
    let packet = VsiPacket::new_checked(&ASSOC_VSI[2..]).unwrap();
    assert_eq!(packet.status(), 0);
    assert_eq!(packet.type_id(), 5);
    assert_eq!(packet.type_version(), 4);
    assert_eq!(packet.id_format(), VsiIdFormat::UUID);
    assert_eq!(packet.id(), uuid(0x01, 0xaa));
    assert_eq!(packet.filter_format(), FilterFormat::MAC_VID);
    assert_eq!(packet.entry_count(), 1);
    assert_eq!(packet.entries(), &ASSOC_VSI[27..]);
}

#[test]
fn test_construct() {
    let mut bytes = [0xa5; 33];
    let mut packet = VsiPacket::new_unchecked(&mut bytes[..]);
    packet.set_status(0);
    packet.set_type_id(0xff00_0005);
    packet.set_type_version(4);
    packet.set_id_format(VsiIdFormat::UUID);
    packet.set_id(uuid(0x01, 0xaa));
    packet.set_filter_format(FilterFormat::MAC_VID);
    packet.set_entry_count(1);
    packet
        .entries_mut()
        .copy_from_slice(&[0x52, 0x54, 0x00, 0x8e, 0xaa, 0x11, 0x00, 0x00]);
    assert_eq!(bytes, ASSOC_VSI[2..]);
}

#[test]
fn test_parse() {
    let bytes = vdpdu(&ASSOC_VSI);
    let parsed = Repr::parse(&bytes).unwrap();
    assert_eq!(parsed, repr());
    assert_eq!(parsed.vsis().count(), 1);
    assert_eq!(
        parsed.to_string(),
        "vdp mgr evmgr1 | assoc req type 5 v4 uuid aaaaaaaa-0000-4000-8000-000000000001 \
         mac-vid [52:54:00:8e:aa:11 vid 0]"
    );
}

#[test]
fn test_emit() {
    let repr = repr();
    assert_eq!(repr.buffer_len(), 53);
    let mut bytes = [0xa5; 54];
    assert_eq!(repr.emit(&mut bytes), Ok(53));
    assert_eq!(bytes[..53], vdpdu(&ASSOC_VSI)[..]);
    assert_eq!(bytes[53], 0xa5);
    assert_eq!(repr.emit(&mut bytes[..52]), Err(Error::NoRoom));
}

#[test]
fn test_response_with_assigned_vid_and_end() {
    // Capture 04 frame 5: the bridge's answer carries VID 20 and an End TLV.
    let mut vsi = ASSOC_VSI;
    vsi[2] = 0x40;
    vsi[34] = 20;
    let mut bytes = vdpdu(&vsi);
    bytes.extend_from_slice(&[0x00, 0x00]);
    let parsed = Repr::parse(&bytes).unwrap();
    assert!(parsed.end);
    let Tlv::Vsi(answer) = &parsed.tlvs[0] else {
        panic!("a VSI TLV")
    };
    assert_eq!(answer.status, Status::SUCCESS);
    assert_eq!(answer.filters.vlans().collect::<Vec<_>>(), [Vlan::new(20)]);
    let mut out = vec![0xa5; parsed.buffer_len()];
    assert_eq!(parsed.emit(&mut out), Ok(bytes.len()));
    assert_eq!(out, bytes);
    // Padding after the End TLV is not read.
    bytes.extend_from_slice(&[0x12; 7]);
    assert_eq!(Repr::parse(&bytes), Ok(parsed));
}

#[test]
fn test_group_filters() {
    let parsed = Repr::parse(&vdpdu(&GROUP_MAC_VSI)).unwrap();
    let vsi = parsed.vsis().next().unwrap();
    assert_eq!(
        vsi.filters,
        Filters::GroupMacVid(vec![
            (
                77,
                MacAddr([0x52, 0x54, 0x00, 0x8e, 0xaa, 0x44]),
                Vlan::new(0)
            ),
            (
                77,
                MacAddr([0x52, 0x54, 0x00, 0x8e, 0xaa, 0x45]),
                Vlan::new(0)
            ),
        ])
    );
    assert_eq!(vsi.filters.macs().count(), 2);
    assert!(vsi.filters.format().has_group_ids());
    let mut out = vec![0; parsed.buffer_len()];
    parsed.emit(&mut out).unwrap();
    assert_eq!(out, vdpdu(&GROUP_MAC_VSI));

    let parsed = Repr::parse(&vdpdu(&GROUP_VSI)).unwrap();
    let vsi = parsed.vsis().next().unwrap();
    let vlan = Vlan {
        ps: false,
        pcp: 5,
        vid: 40,
    };
    assert_eq!(vsi.filters, Filters::GroupVid(vec![(88, vlan)]));
    assert_eq!(vlan.to_word(), 0x5028);
    assert!(
        vsi.to_string()
            .ends_with("group-vid [group 88 vid 40 pcp 5]")
    );
    let mut out = vec![0; parsed.buffer_len()];
    parsed.emit(&mut out).unwrap();
    assert_eq!(out, vdpdu(&GROUP_VSI));
}

#[test]
fn test_vid_only_and_mutation() {
    let mut vsi = Vsi {
        mode: Mode::PreAssociate,
        status: Status::Request {
            migrate_from: false,
            migrate_to: true,
        },
        filters: Filters::Vid(vec![Vlan::new(0), Vlan::new(300)]),
        ..assoc()
    };
    vsi.filters.for_each_vlan_mut(|vlan| {
        if vlan.vid == 0 {
            vlan.vid = 10;
        }
    });
    assert_eq!(
        vsi.filters.vlans().map(|v| v.vid).collect::<Vec<_>>(),
        [10, 300]
    );
    assert_eq!(vsi.filters.macs().count(), 0);
    let repr = Repr {
        tlvs: vec![Tlv::Vsi(vsi.clone())],
        ..repr()
    };
    let mut out = vec![0; repr.buffer_len()];
    repr.emit(&mut out).unwrap();
    assert_eq!(out[18..21], [0x02, 0x1d, 0x10]);
    assert_eq!(Repr::parse(&out), Ok(repr));
    assert_eq!(
        vsi.answer(Mode::Deassociate, Status::SUCCESS).mode,
        Mode::Deassociate
    );
}

#[test]
fn test_status_octets() {
    // Octets seen in captures 03 and 05.
    let cases = [
        (0x00, Status::REQUEST),
        (
            0x10,
            Status::Request {
                migrate_from: false,
                migrate_to: true,
            },
        ),
        (
            0x20,
            Status::Request {
                migrate_from: true,
                migrate_to: false,
            },
        ),
        (0x40, Status::SUCCESS),
        (
            0x42,
            Status::Response {
                keep: false,
                hard_error: false,
                reason: Reason::INSUFFICIENT_RESOURCES,
            },
        ),
        (
            0x54,
            Status::Response {
                keep: false,
                hard_error: true,
                reason: Reason::OTHER_FAILURE,
            },
        ),
        (
            0x63,
            Status::Response {
                keep: true,
                hard_error: false,
                reason: Reason::VSI_MANAGER_UNREACHABLE,
            },
        ),
    ];
    for (octet, status) in cases {
        assert_eq!(Status::from_octet(octet), status, "{octet:#x}");
        assert_eq!(status.to_octet(), octet);
    }
    assert!(Status::SUCCESS.is_response());
    assert!(!Status::REQUEST.is_response());
    // Bit 7 and a request's low bits are ignored.
    assert_eq!(Status::from_octet(0x8f), Status::REQUEST);
    assert_eq!(
        Status::from_octet(0x63).to_string(),
        "resp vsi-manager-unreachable keep"
    );
    assert_eq!(
        Status::from_octet(0x30).to_string(),
        "req M S",
        "both hints"
    );
}

#[test]
fn test_truncated() {
    let bytes = vdpdu(&ASSOC_VSI);
    for len in [0, 1, 2, 17, 19, 30, 52] {
        assert_eq!(Repr::parse(&bytes[..len]), Err(Error::Truncated), "{len}");
    }
    // Just the Manager ID is a valid (empty) VDPDU.
    assert_eq!(Repr::parse(&bytes[..18]).unwrap().tlvs, []);
    assert_eq!(
        VsiPacket::new_checked(&ASSOC_VSI[2..26]).unwrap_err(),
        Error::Truncated
    );
}

#[test]
fn test_count_disagrees_with_length() {
    // Two entries announced, one present.
    let mut vsi = ASSOC_VSI;
    vsi[26] = 2;
    assert_eq!(Repr::parse(&vdpdu(&vsi)), Err(Error::BadLength));
    // No entry announced, one present.
    vsi[26] = 0;
    assert_eq!(Repr::parse(&vdpdu(&vsi)), Err(Error::BadLength));
    // No entry at all.
    let mut bytes = MANAGER.to_vec();
    bytes.extend_from_slice(&[0x06, 0x19]);
    bytes.extend_from_slice(&ASSOC_VSI[2..27]);
    bytes[18 + 2 + 25 - 2..].copy_from_slice(&[0, 0]);
    assert_eq!(Repr::parse(&bytes), Err(Error::BadLength));
}

#[test]
fn test_unknown_filter_format_and_mode() {
    let mut vsi = ASSOC_VSI;
    vsi[24] = 9;
    assert_eq!(Repr::parse(&vdpdu(&vsi)), Err(Error::Unsupported));
    // TLV type 6 is not a mode: skipped and kept, like an org TLV.
    let mut vsi = ASSOC_VSI;
    vsi[0] = 0x0c;
    let parsed = Repr::parse(&vdpdu(&vsi)).unwrap();
    assert_eq!(
        parsed.tlvs,
        [Tlv::Other {
            kind: TlvType(6),
            data: ASSOC_VSI[2..].to_vec()
        }]
    );
    let mut out = vec![0; parsed.buffer_len()];
    parsed.emit(&mut out).unwrap();
    assert_eq!(out, vdpdu(&vsi));
    assert_eq!(parsed.vsis().count(), 0);
    assert!(parsed.to_string().ends_with("| 0x6 len 33"));
}

#[test]
fn test_manager_id_rules() {
    // A VSI TLV first.
    assert_eq!(Repr::parse(&ASSOC_VSI), Err(Error::UnknownTlv));
    // A Manager ID of 15 octets.
    let mut bytes = vec![0x0a, 0x0f];
    bytes.extend_from_slice(&MANAGER[2..17]);
    assert_eq!(Repr::parse(&bytes), Err(Error::BadLength));
    // Two Manager IDs.
    let mut bytes = vdpdu(&MANAGER);
    bytes.extend_from_slice(&ASSOC_VSI);
    assert_eq!(Repr::parse(&bytes), Err(Error::UnknownTlv));
    // An End TLV with a length.
    let mut bytes = vdpdu(&ASSOC_VSI);
    bytes.extend_from_slice(&[0x00, 0x01, 0x00]);
    assert_eq!(Repr::parse(&bytes), Err(Error::BadLength));
}

#[test]
fn test_emit_refuses() {
    let mut out = [0u8; 1500];
    let empty = Repr {
        tlvs: vec![Tlv::Vsi(Vsi {
            filters: Filters::Vid(vec![]),
            ..assoc()
        })],
        ..repr()
    };
    assert_eq!(empty.emit(&mut out), Err(Error::BadLength));
    let too_many = Repr {
        tlvs: vec![Tlv::Vsi(Vsi {
            filters: Filters::GroupMacVid(vec![(1, MacAddr([2, 0, 0, 0, 0, 1]), Vlan::new(2)); 41]),
            ..assoc()
        })],
        ..repr()
    };
    assert_eq!(too_many.emit(&mut out), Err(Error::BadLength));
    for kind in [0, 3, 5] {
        let other = Repr {
            tlvs: vec![Tlv::Other {
                kind: TlvType(kind),
                data: vec![],
            }],
            ..repr()
        };
        assert_eq!(other.emit(&mut out), Err(Error::UnknownTlv), "{kind}");
    }
    let wide = Repr {
        tlvs: vec![Tlv::Other {
            kind: TlvType(200),
            data: vec![],
        }],
        ..repr()
    };
    assert_eq!(wide.emit(&mut out), Err(Error::Unsupported));
    // 40 GroupID/MAC/VID entries are the most that fit: 25 + 40 x 12 = 505.
    let most = Repr {
        tlvs: vec![Tlv::Vsi(Vsi {
            filters: Filters::GroupMacVid(vec![(1, MacAddr([2, 0, 0, 0, 0, 1]), Vlan::new(2)); 40]),
            ..assoc()
        })],
        ..repr()
    };
    let len = most.emit(&mut out).unwrap();
    assert_eq!(Repr::parse(&out[..len]), Ok(most));
}

#[test]
fn test_ids_display() {
    let mac = Id16::from_mac(MacAddr([0x52, 0x54, 0, 1, 2, 3]));
    assert_eq!(
        mac.display(VsiIdFormat::MAC).to_string(),
        "52:54:00:01:02:03"
    );
    let mut v4 = [0; 16];
    v4[10] = 0xff;
    v4[11] = 0xff;
    v4[12..].copy_from_slice(&[192, 0, 2, 9]);
    assert_eq!(Id16(v4).display(VsiIdFormat::IPV4).to_string(), "192.0.2.9");
    assert_eq!(
        Id16(v4).display(VsiIdFormat::IPV6).to_string(),
        "::ffff:192.0.2.9"
    );
    assert_eq!(
        Id16(v4).display(VsiIdFormat::LOCAL).to_string(),
        "00000000000000000000ffffc0000209"
    );
    assert_eq!(Id16(v4).to_string(), "00000000000000000000ffffc0000209");
    assert_eq!(Id16::from_name("evmgr1").unwrap().to_string(), "evmgr1");
    assert_eq!(Id16::from_name("0123456789abcdefg"), None);
    assert_eq!(
        Id16::from_name("").unwrap().to_string(),
        "00000000000000000000000000000000"
    );
    assert_eq!(Mode::from_tlv_type(TlvType::MANAGER_ID), None);
    for mode in Mode::ALL {
        assert_eq!(Mode::from_tlv_type(mode.tlv_type()), Some(mode));
    }
}
