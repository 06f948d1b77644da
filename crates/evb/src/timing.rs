//! The four 802.1Qbg timer parameters the EVB TLV negotiates, and the timers derived from them.

use core::time::Duration;

/// R, RTE, RWD and RKA: what ECP and VDP time themselves by (802.1Qbg-2012 D.2.13).
///
/// Every time is 10 us x 2^exponent; the derived timeouts follow lldpad's reading of 41.5.5
/// (`shared/evb/PROTOCOL_NOTES.md` section 7.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timing {
    /// R: the most ECP retransmissions after the first transmission (0-7).
    pub max_retries: u8,
    /// RTE: the ECP acknowledgement timer exponent (0-31).
    pub rte: u8,
    /// RWD: the exponent of how long a bridge may take to answer a VDP request (0-31).
    pub rwd: u8,
    /// RKA: the exponent of the station's VDP keep-alive period (0-31).
    pub rka: u8,
}

impl Default for Timing {
    /// lldpad's defaults when nothing is configured: R 3, RTE 8, RWD 20, RKA 20.
    fn default() -> Self {
        Self {
            max_retries: 3,
            rte: 8,
            rwd: 20,
            rka: 20,
        }
    }
}

/// 10 us x 2^exponent, the unit of every 802.1Qbg timer (exponents above 31 count as 31).
pub(crate) fn exponent(exponent: u8) -> Duration {
    Duration::from_micros(10u64 << exponent.min(31))
}

impl Timing {
    /// How long ECP waits for an acknowledgement before it retransmits: T(RTE).
    pub fn ecp_ack_timeout(&self) -> Duration {
        exponent(self.rte)
    }

    /// How long a station waits for the bridge's answer to a VDP request or keep-alive:
    /// 1.5 x ((1 + 2R) x T(RTE) + T(RWD)) (17.45 s for R 3, RTE 14, RWD 20).
    pub fn station_response_wait(&self) -> Duration {
        self.one_and_a_half_round_trips(exponent(self.rwd))
    }

    /// How often a station refreshes each VSI: T(RKA).
    pub fn keep_alive(&self) -> Duration {
        exponent(self.rka)
    }

    /// How long a bridge keeps a VSI it hears nothing from:
    /// 1.5 x ((1 + 2R) x T(RTE) + T(RKA)).
    pub fn bridge_keep_alive_timeout(&self) -> Duration {
        self.one_and_a_half_round_trips(exponent(self.rka))
    }

    /// How long a bridge may take to decide on a request: T(RWD).
    pub fn resource_wait(&self) -> Duration {
        exponent(self.rwd)
    }

    /// 1.5 x ((1 + 2R) x T(RTE) + extra).
    fn one_and_a_half_round_trips(&self, extra: Duration) -> Duration {
        let retries = u32::from(self.max_retries.min(7)) * 2 + 1;
        let total = exponent(self.rte) * retries + extra;
        total + total / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_lldpad_figures() {
        // The values of PROTOCOL_NOTES 7.8, seen in the captures.
        let timing = Timing {
            max_retries: 3,
            rte: 14,
            rwd: 20,
            rka: 20,
        };
        assert_eq!(timing.ecp_ack_timeout(), Duration::from_micros(163_840));
        assert_eq!(timing.keep_alive(), Duration::from_micros(10_485_760));
        assert_eq!(timing.resource_wait(), Duration::from_micros(10_485_760));
        // 1.5 x (7 x 163.84 ms + 10485.76 ms) = 17448.96 ms.
        assert_eq!(
            timing.station_response_wait(),
            Duration::from_micros(17_448_960)
        );
        assert_eq!(
            timing.bridge_keep_alive_timeout(),
            Duration::from_micros(17_448_960)
        );
        assert_eq!(
            Timing::default().ecp_ack_timeout(),
            Duration::from_micros(2_560)
        );
        assert_eq!(exponent(200), exponent(31));
    }
}
