//! Building the frames engines send, and the LLDP transmit schedule the EVB agent and CDCP
//! share.

use core::time::Duration;

use wire::{
    EtherType, MacAddr, ethernet,
    lldp::{self, ChassisIdSubtype, PortIdSubtype, TlvWriter},
};

use crate::Instant;

/// The longest frame an engine writes: a 1500-byte payload and its Ethernet header. A
/// `poll_transmit` buffer of this size never drops a frame.
pub const MAX_FRAME_LEN: usize = ethernet::HEADER_LEN + 1500;

/// A frame `poll_transmit` wrote into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transmit {
    /// The frame's length: `buf[..len]` is the whole Ethernet frame, unpadded.
    pub len: usize,
}

/// Writes an Ethernet header for `body_len` bytes of payload and returns the payload's bytes;
/// `None` when `buf` is too short.
pub(crate) fn ethernet(
    buf: &mut [u8],
    dst: MacAddr,
    src: MacAddr,
    ethertype: EtherType,
    body_len: usize,
) -> Option<&mut [u8]> {
    let frame = buf.get_mut(..ethernet::HEADER_LEN + body_len)?;
    ethernet::Repr {
        src_addr: src,
        dst_addr: dst,
        ethertype,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut *frame));
    Some(&mut frame[ethernet::HEADER_LEN..])
}

/// Writes an LLDPDU from `src` to `dst`: Chassis ID and Port ID both the MAC address (as
/// lldpad does), TTL, the TLVs `optional` writes, End. Returns the frame length, `None` when
/// `buf` is too short.
pub(crate) fn lldpdu(
    buf: &mut [u8],
    dst: MacAddr,
    src: MacAddr,
    ttl: u16,
    optional: impl FnOnce(&mut TlvWriter<'_>) -> wire::Result<()>,
) -> Option<usize> {
    let body = ethernet(buf, dst, src, EtherType::LLDP, 0)?;
    debug_assert!(body.is_empty());
    let rest = buf.get_mut(ethernet::HEADER_LEN..)?;
    let mut writer = TlvWriter::new(rest);
    let mut chassis = [0; 7];
    chassis[0] = ChassisIdSubtype::MAC_ADDRESS.0;
    chassis[1..].copy_from_slice(&src.0);
    writer.write(lldp::TlvType::CHASSIS_ID, &chassis).ok()?;
    let mut port = [0; 7];
    port[0] = PortIdSubtype::MAC_ADDRESS.0;
    port[1..].copy_from_slice(&src.0);
    writer.write(lldp::TlvType::PORT_ID, &port).ok()?;
    writer.write(lldp::TlvType::TTL, &ttl.to_be_bytes()).ok()?;
    optional(&mut writer).ok()?;
    writer.write_end().ok()?;
    Some(ethernet::HEADER_LEN + writer.len())
}

/// LLDP's defaults (802.1AB-2016 §9.2.5): an LLDPDU every 30 s, held for 4 x 30 s.
pub(crate) const TX_INTERVAL: Duration = Duration::from_secs(30);
/// The TTL an LLDP agent advertises, in seconds.
pub(crate) const TTL_SECS: u16 = 120;
/// The shortest gap between two LLDPDUs sent because something changed. lldpad answers every
/// received EVB TLV at once, which makes two lldpads ping-pong about once a second; weft sends
/// on change (at most this often) and on the 30 s timer, never in reply to a reception.
pub(crate) const MIN_CHANGE_GAP: Duration = Duration::from_secs(1);

/// When an LLDP agent sends: at once when its content changes (at most every
/// [`MIN_CHANGE_GAP`]), and every [`TX_INTERVAL`] anyway.
#[derive(Debug, Clone)]
pub(crate) struct TxSchedule {
    changed: bool,
    last_sent: Option<Instant>,
    next_periodic: Instant,
}

impl TxSchedule {
    /// A schedule that sends at the first chance.
    pub(crate) const fn new() -> Self {
        Self {
            changed: true,
            last_sent: None,
            next_periodic: Instant::ZERO,
        }
    }

    /// Notes that the content to send changed.
    pub(crate) fn changed(&mut self) {
        self.changed = true;
    }

    /// When the next LLDPDU is due.
    pub(crate) fn deadline(&self) -> Instant {
        match (self.changed, self.last_sent) {
            (true, None) => Instant::ZERO,
            (true, Some(last)) => (last + MIN_CHANGE_GAP).min(self.next_periodic),
            (false, _) => self.next_periodic,
        }
    }

    /// True when an LLDPDU is due at `now`.
    pub(crate) fn due(&self, now: Instant) -> bool {
        now >= self.deadline()
    }

    /// Notes that an LLDPDU went out at `now`.
    pub(crate) fn sent(&mut self, now: Instant) {
        self.changed = false;
        self.last_sent = Some(now);
        self.next_periodic = now + TX_INTERVAL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_schedule_change_and_periodic() {
        let mut schedule = TxSchedule::new();
        assert!(schedule.due(Instant::ZERO));
        schedule.sent(Instant::from_secs(5));
        assert_eq!(schedule.deadline(), Instant::from_secs(35));
        schedule.changed();
        assert_eq!(schedule.deadline(), Instant::from_secs(6));
        assert!(!schedule.due(Instant::from_millis(5_500)));
        assert!(schedule.due(Instant::from_secs(6)));
        schedule.sent(Instant::from_secs(6));
        assert!(!schedule.due(Instant::from_secs(35)));
        assert!(schedule.due(Instant::from_secs(36)));
    }

    #[test]
    fn test_lldpdu_layout() {
        let src = MacAddr([0x52, 0x54, 0, 0, 0x5e, 0x01]);
        let mut buf = [0xa5; 64];
        let len = lldpdu(
            &mut buf,
            lldp::NEAREST_CUSTOMER_BRIDGE,
            src,
            120,
            |_| Ok(()),
        )
        .unwrap();
        // The station's LLDPDU of capture 01 without its EVB TLV.
        assert_eq!(
            buf[..len],
            [
                0x01, 0x80, 0xc2, 0x00, 0x00, 0x00, 0x52, 0x54, 0x00, 0x00, 0x5e, 0x01, 0x88, 0xcc,
                0x02, 0x07, 0x04, 0x52, 0x54, 0x00, 0x00, 0x5e, 0x01, 0x04, 0x07, 0x03, 0x52, 0x54,
                0x00, 0x00, 0x5e, 0x01, 0x06, 0x02, 0x00, 0x78, 0x00, 0x00
            ]
        );
        assert_eq!(
            lldpdu(
                &mut buf[..30],
                lldp::NEAREST_CUSTOMER_BRIDGE,
                src,
                120,
                |_| Ok(())
            ),
            None
        );
    }
}
