//! pcap capture of any port: a device wrapper that records every frame it passes.

use std::{
    io::{self, Write},
    os::fd::BorrowedFd,
    time::SystemTime,
};

use super::{Device, Medium, Offloads, Sent};
use crate::PacketBuf;

/// pcap link type for Ethernet frames.
const LINKTYPE_ETHERNET: u32 = 1;
/// pcap link type for a payload without link header, here a VXLAN or GRE payload (user type 0:
/// tshark can be told `-o "user_dlts.table:..."`); written for tunnel media.
const LINKTYPE_USER0: u32 = 147;

/// Writes classic pcap: a 24-byte file header, then a 16-byte header per record.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header for `linktype` frames.
    pub fn new(mut out: W, linktype: u32) -> io::Result<Self> {
        out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?;
        out.write_all(&0u32.to_le_bytes())?;
        out.write_all(&65_535u32.to_le_bytes())?;
        out.write_all(&linktype.to_le_bytes())?;
        Ok(Self { out })
    }

    /// Writes one frame stamped `since_epoch`.
    pub fn write(&mut self, since_epoch: core::time::Duration, frame: &[u8]) -> io::Result<()> {
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let secs = u32::try_from(since_epoch.as_secs()).unwrap_or(u32::MAX);
        self.out.write_all(&secs.to_le_bytes())?;
        self.out
            .write_all(&since_epoch.subsec_micros().to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(frame)
    }

    /// Flushes what was written.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A device that writes a copy of every received and sent frame to a pcap file.
#[derive(Debug)]
pub struct Capture<D: Device, W: Write + Send> {
    inner: D,
    writer: PcapWriter<W>,
}

impl<D: Device, W: Write + Send> Capture<D, W> {
    /// Wraps `inner`, writing its frames to `out`.
    pub fn new(inner: D, out: W) -> io::Result<Self> {
        let linktype = match inner.medium() {
            Medium::Ethernet => LINKTYPE_ETHERNET,
            Medium::Vxlan | Medium::Gre => LINKTYPE_USER0,
        };
        Ok(Self {
            inner,
            writer: PcapWriter::new(out, linktype)?,
        })
    }

    /// The wrapped device.
    pub fn into_inner(self) -> D {
        self.inner
    }

    fn record(&mut self, bufs: &[PacketBuf]) {
        // The capture's clock is the one place a backend reads the time.
        #[expect(clippy::disallowed_methods, reason = "backend code: pcap timestamps")]
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        for buf in bufs {
            // A failing capture file must not stop forwarding; the frame itself went through.
            if self.writer.write(now, buf.frame()).is_err() {
                break;
            }
        }
        let _ = self.writer.flush();
    }
}

impl<D: Device, W: Write + Send> Device for Capture<D, W> {
    fn recv(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let n = self.inner.recv(bufs)?;
        self.record(&bufs[..n]);
        Ok(n)
    }

    fn send(&mut self, bufs: &[PacketBuf]) -> io::Result<Sent> {
        let sent = self.inner.send(bufs)?;
        self.record(&bufs[..sent.frames.min(bufs.len())]);
        Ok(sent)
    }

    fn medium(&self) -> Medium {
        self.inner.medium()
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.inner.fd()
    }

    fn offloads(&self) -> Offloads {
        self.inner.offloads()
    }

    fn is_gone(&self, err: &io::Error) -> bool {
        self.inner.is_gone(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::memory;

    #[test]
    fn captures_both_directions_as_pcap() {
        let (device, peer) = memory::pair(Medium::Ethernet);
        let mut capture = Capture::new(device, Vec::new()).unwrap();
        peer.inject(&[0xaa; 60]);
        let mut bufs = vec![PacketBuf::new(); 2];
        assert_eq!(capture.recv(&mut bufs).unwrap(), 1);
        assert_eq!(capture.send(&bufs[..1]).unwrap(), Sent::first(&bufs, 1));
        let file = capture.writer.out;
        assert_eq!(file.len(), 24 + 2 * (16 + 60));
        assert_eq!(&file[..4], &0xa1b2_c3d4u32.to_le_bytes());
        assert_eq!(&file[20..24], &LINKTYPE_ETHERNET.to_le_bytes());
    }
}
