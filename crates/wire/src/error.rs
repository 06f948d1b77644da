//! The one error type of the wire crate: why bytes could not be parsed or emitted.

/// Why a buffer could not be parsed as, or emitted into, a wire format.
///
/// Each variant is a drop reason a data plane counts; [`Error::as_str`] is its counter name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
pub enum Error {
    /// The buffer ends before the header, or before the length a header field states.
    #[error("truncated")]
    Truncated,
    /// A length field holds an impossible value (shorter than its own header, say).
    #[error("bad length field")]
    BadLength,
    /// A version field holds a version this crate does not speak.
    #[error("unsupported version")]
    BadVersion,
    /// A checksum does not match the data it covers.
    #[error("bad checksum")]
    BadChecksum,
    /// A flag that must be set is clear, or one that must be clear is set.
    #[error("bad flags")]
    BadFlags,
    /// A TLV type appears where the format does not allow it, or out of its required order.
    #[error("unexpected TLV")]
    UnknownTlv,
    /// Well-formed, but a variant of the format weft does not handle.
    #[error("unsupported")]
    Unsupported,
    /// The output buffer, or the headroom in front of a frame, is too small.
    #[error("no room in buffer")]
    NoRoom,
}

impl Error {
    /// Every variant, in declaration order (for counter tables).
    pub const ALL: [Self; 8] = [
        Self::Truncated,
        Self::BadLength,
        Self::BadVersion,
        Self::BadChecksum,
        Self::BadFlags,
        Self::UnknownTlv,
        Self::Unsupported,
        Self::NoRoom,
    ];

    /// A short, stable, snake_case name, used as a drop counter label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::BadLength => "bad_length",
            Self::BadVersion => "bad_version",
            Self::BadChecksum => "bad_checksum",
            Self::BadFlags => "bad_flags",
            Self::UnknownTlv => "unknown_tlv",
            Self::Unsupported => "unsupported",
            Self::NoRoom => "no_room",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = Error::ALL.iter().map(|e| e.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Error::ALL.len());
    }
}
