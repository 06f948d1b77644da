//! The figures of a run: medians, the side-by-side table, the goals, and JSON.

use std::{fmt::Write as _, time::Duration};

use serde_json::{Value, json};

use super::{
    Options, PingSample, PpsSample, SwitchCpu, TcpSample, UNDERLAY_MTU, VM_MTU, VNI, Variant,
    reference,
};

/// Median and range of a metric over the repeats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The median (mean of the middle two for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Summary {
    /// The summary of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let (min, max) = (*sorted.first()?, *sorted.last()?);
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            f64::midpoint(sorted[n / 2 - 1], sorted[n / 2])
        };
        Some(Self { median, min, max })
    }

    fn to_json(self, values: &[f64]) -> Value {
        json!({"median": self.median, "min": self.min, "max": self.max, "runs": values})
    }
}

/// The samples of one variant.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantReport {
    /// Which variant.
    pub variant: Variant,
    /// The TCP runs.
    pub tcp: Vec<TcpSample>,
    /// The packets/s runs.
    pub pps: Vec<PpsSample>,
    /// The ping runs.
    pub ping: Vec<PingSample>,
}

/// Which number of a variant's samples.
#[derive(Debug, Clone, Copy)]
enum Metric {
    TcpGbps,
    Retransmits,
    RxPps,
    OfferedPps,
    GeneratorPps,
    Vm1Dropped,
    Host2Dropped,
    Vm2Dropped,
    PingAvg,
    PingP99,
    PingLoss,
}

impl VariantReport {
    /// No samples yet.
    pub fn new(variant: Variant) -> Self {
        Self {
            variant,
            tcp: Vec::new(),
            pps: Vec::new(),
            ping: Vec::new(),
        }
    }

    #[expect(
        clippy::cast_precision_loss,
        reason = "retransmit counts stay far below 2^52"
    )]
    fn values(&self, metric: Metric) -> Vec<f64> {
        match metric {
            Metric::TcpGbps => self.tcp.iter().map(|s| s.gbps).collect(),
            Metric::Retransmits => self.tcp.iter().map(|s| s.retransmits as f64).collect(),
            Metric::RxPps => self.pps.iter().map(|s| s.received_pps).collect(),
            Metric::OfferedPps => self.pps.iter().map(|s| s.offered_pps).collect(),
            Metric::GeneratorPps => self.pps.iter().map(|s| s.generator_pps).collect(),
            Metric::Vm1Dropped => self.pps.iter().map(|s| s.vm1_tx_dropped_pps).collect(),
            Metric::Host2Dropped => self.pps.iter().map(|s| s.host2_udp_dropped_pps).collect(),
            Metric::Vm2Dropped => self.pps.iter().map(|s| s.vm2_rx_dropped_pps).collect(),
            Metric::PingAvg => self.ping.iter().map(|s| s.avg_us).collect(),
            Metric::PingP99 => self.ping.iter().map(|s| s.p99_us).collect(),
            Metric::PingLoss => self.ping.iter().map(|s| s.loss_pct).collect(),
        }
    }

    fn summary(&self, metric: Metric) -> Option<Summary> {
        Summary::of(&self.values(metric))
    }

    /// Median TCP goodput, Gbit/s.
    pub fn tcp_gbps(&self) -> Option<Summary> {
        self.summary(Metric::TcpGbps)
    }

    /// Median 64-byte packets/s received.
    pub fn rx_pps(&self) -> Option<Summary> {
        self.summary(Metric::RxPps)
    }

    /// Median packets/s offered to VM1's NIC (tx_packets + tx_dropped).
    pub fn offered_pps(&self) -> Option<Summary> {
        self.summary(Metric::OfferedPps)
    }

    /// Median ping average, µs.
    pub fn ping_avg_us(&self) -> Option<Summary> {
        self.summary(Metric::PingAvg)
    }

    /// Median ping p99, µs.
    pub fn ping_p99_us(&self) -> Option<Summary> {
        self.summary(Metric::PingP99)
    }

    /// Median CPU of the two weft switch processes during TCP, packets/s and ping; `None`
    /// for the other variants.
    fn switch_cpu(&self) -> Option<(SwitchCpu, SwitchCpu, SwitchCpu)> {
        let med = |values: Vec<SwitchCpu>| {
            let median = |get: &dyn Fn(&SwitchCpu) -> f64| {
                Summary::of(&values.iter().map(get).collect::<Vec<_>>()).map(|s| s.median)
            };
            Some(SwitchCpu {
                total: [median(&|c| c.total[0])?, median(&|c| c.total[1])?],
                system: [median(&|c| c.system[0])?, median(&|c| c.system[1])?],
            })
        };
        let tcp = med(self.tcp.iter().filter_map(|s| s.switch_cpu).collect())?;
        let pps = med(self.pps.iter().filter_map(|s| s.switch_cpu).collect())?;
        let ping = med(self.ping.iter().filter_map(|s| s.switch_cpu).collect())?;
        Some((tcp, pps, ping))
    }
}

/// One goal of the issue and whether this run met it.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    /// What the goal is.
    pub name: String,
    /// Whether weft met it in this run.
    pub met: bool,
    /// The figures compared.
    pub detail: String,
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// What was asked for.
    pub options: Options,
    /// Per variant, in the order asked for.
    pub variants: Vec<VariantReport>,
    /// How long the whole run took.
    pub elapsed: Duration,
}

/// A number with three significant figures or so, k/M for packet rates.
fn rate(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.0}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

impl Report {
    /// The samples of `variant`, if it ran.
    pub fn variant(&self, variant: Variant) -> Option<&VariantReport> {
        self.variants.iter().find(|v| v.variant == variant)
    }

    /// weft's median over the kernel's for a metric, if both ran.
    fn ratio(&self, get: impl Fn(&VariantReport) -> Option<Summary>) -> Option<f64> {
        let weft = get(self.variant(Variant::Weft)?)?.median;
        let kernel = get(self.variant(Variant::Kernel)?)?.median;
        (kernel > 0.0).then_some(weft / kernel)
    }

    /// The goals that this run's variants can decide.
    pub fn goals(&self) -> Vec<Goal> {
        let mut goals = Vec::new();
        let Some(weft) = self.variant(Variant::Weft) else {
            return goals;
        };
        let kernel = self.variant(Variant::Kernel);
        let (w_tcp, w_ping) = (weft.tcp_gbps(), weft.ping_avg_us());
        if let (Some(w), Some(k)) = (w_tcp, kernel.and_then(VariantReport::tcp_gbps)) {
            goals.push(Goal {
                name: "TCP throughput at or above the kernel's".into(),
                met: w.median >= k.median,
                detail: format!(
                    "weft {:.2} vs kernel {:.2} Gbit/s ({:.2}x)",
                    w.median,
                    k.median,
                    w.median / k.median
                ),
            });
        }
        if let (Some(w), Some(k)) = (w_ping, kernel.and_then(VariantReport::ping_avg_us)) {
            goals.push(Goal {
                name: format!(
                    "ping average within {}x of the kernel's",
                    reference::PING_FACTOR
                ),
                met: w.median <= reference::PING_FACTOR * k.median,
                detail: format!(
                    "weft {:.0} vs kernel {:.0} us ({:.2}x)",
                    w.median,
                    k.median,
                    w.median / k.median
                ),
            });
        }
        if let Some(w) = w_tcp {
            let floor = reference::OVS_FACTOR * reference::OVS_TCP_GBPS;
            goals.push(Goal {
                name: format!(
                    "TCP at least {}x OVS userspace's {} Gbit/s (reference run)",
                    reference::OVS_FACTOR,
                    reference::OVS_TCP_GBPS
                ),
                met: w.median >= floor,
                detail: format!(
                    "weft {:.2} Gbit/s = {:.1}x OVS (needs >= {floor:.2})",
                    w.median,
                    w.median / reference::OVS_TCP_GBPS
                ),
            });
        }
        if let Some(w) = w_ping {
            let ceiling = reference::OVS_PING_US / reference::OVS_FACTOR;
            goals.push(Goal {
                name: format!(
                    "ping at most 1/{} of OVS userspace's {} us (reference run)",
                    reference::OVS_FACTOR,
                    reference::OVS_PING_US
                ),
                met: w.median <= ceiling,
                detail: format!(
                    "weft {:.0} us = OVS/{:.1} (needs <= {ceiling:.0})",
                    w.median,
                    reference::OVS_PING_US / w.median
                ),
            });
        }
        goals
    }

    /// The side-by-side table with the goals, as text.
    pub fn table(&self) -> String {
        let repeats = self.options.repeats;
        let cell = |s: Option<Summary>, fmt: &dyn Fn(f64) -> String| match s {
            None => "-".to_owned(),
            Some(s) if repeats > 1 => {
                format!("{} [{}-{}]", fmt(s.median), fmt(s.min), fmt(s.max))
            }
            Some(s) => fmt(s.median),
        };
        let gbps = |v: f64| format!("{v:.2}");
        let us = |v: f64| format!("{v:.0}");
        let whole = |v: f64| format!("{v:.0}");
        let pct = |v: f64| format!("{v:.1}");
        let has_ratio =
            self.variant(Variant::Weft).is_some() && self.variant(Variant::Kernel).is_some();

        let mut header = vec![String::new()];
        header.extend(self.variants.iter().map(|v| v.variant.name().to_owned()));
        if has_ratio {
            header.push("weft/kernel".into());
        }
        let mut rows = vec![header];
        let mut row = |label: &str, metric: Metric, fmt: &dyn Fn(f64) -> String, ratio: bool| {
            let mut cells = vec![label.to_owned()];
            cells.extend(self.variants.iter().map(|v| cell(v.summary(metric), fmt)));
            if has_ratio {
                cells.push(if ratio {
                    self.ratio(|v| v.summary(metric))
                        .map_or_else(|| "-".into(), |r| format!("{r:.2}"))
                } else {
                    String::new()
                });
            }
            rows.push(cells);
        };
        row("TCP throughput, Gbit/s", Metric::TcpGbps, &gbps, true);
        row("  TCP retransmits", Metric::Retransmits, &whole, false);
        row("64 B packets/s received", Metric::RxPps, &rate, true);
        row("  offered to VM1's NIC", Metric::OfferedPps, &rate, false);
        row(
            "  dropped at VM1's NIC /s",
            Metric::Vm1Dropped,
            &rate,
            false,
        );
        row(
            "  dropped in host2, UDP /s",
            Metric::Host2Dropped,
            &rate,
            false,
        );
        row(
            "  dropped at VM2's NIC /s",
            Metric::Vm2Dropped,
            &rate,
            false,
        );
        row("ping avg, us", Metric::PingAvg, &us, true);
        row("ping p99, us", Metric::PingP99, &us, true);
        row("  ping loss, %", Metric::PingLoss, &pct, false);
        if let Some((tcp, pps, ping)) = self
            .variant(Variant::Weft)
            .and_then(VariantReport::switch_cpu)
        {
            let mut cpu_row = |label: &str, cpu: [f64; 2]| {
                let mut cells = vec![label.to_owned()];
                cells.extend(self.variants.iter().map(|v| {
                    if v.variant == Variant::Weft {
                        format!("{:.0} / {:.0}", cpu[0], cpu[1])
                    } else {
                        "-".to_owned()
                    }
                }));
                if has_ratio {
                    cells.push(String::new());
                }
                rows.push(cells);
            };
            cpu_row("weft switch CPU % h1 / h2, TCP", tcp.total);
            cpu_row("  of which system", tcp.system);
            cpu_row("weft switch CPU % h1 / h2, pps", pps.total);
            cpu_row("  of which system", pps.system);
            cpu_row("weft switch CPU % h1 / h2, ping", ping.total);
        }

        let mut out = String::new();
        let _ = writeln!(
            out,
            "weft bench dataplane: 2 hosts x 1 VM, VXLAN VNI {VNI} over a veth underlay; \
             VM MTU {VM_MTU}, underlay MTU {UNDERLAY_MTU} (as dataplane_baseline.sh)"
        );
        let _ = writeln!(
            out,
            "{} repeat(s), interleaved; median{}; TCP {} s iperf3, 64 B frames {} s, ping x {} every 10 ms; run took {:.0} s",
            repeats,
            if repeats > 1 { " [min-max]" } else { "" },
            self.options.tcp_secs,
            self.options.pps_secs,
            self.options.ping_count,
            self.elapsed.as_secs_f64()
        );
        if self.options.weft_idle_ports > 0 {
            let _ = writeln!(
                out,
                "weft switches with {} idle VM ports each besides the VM's",
                self.options.weft_idle_ports
            );
        }
        if self.options.weft_busy_poll_us > 0 {
            let _ = writeln!(
                out,
                "weft switches with busy_poll_us = {} (see the CPU rows)",
                self.options.weft_busy_poll_us
            );
        }
        out.push('\n');
        out.push_str(&columns(&rows));

        let goals = self.goals();
        if !goals.is_empty() {
            out.push_str("\nGoals (weft against the kernel in this run; OVS userspace from the reference run):\n");
            for goal in &goals {
                let _ = writeln!(
                    out,
                    "  [{}] {}: {}",
                    if goal.met { "met" } else { "NOT MET" },
                    goal.name,
                    goal.detail
                );
            }
        }
        if let Some(note) = self.generator_note() {
            let _ = writeln!(out, "\n{note}");
        }
        out
    }

    /// Whether the generator could offer more than weft carried (judged on the direct veth).
    fn generator_note(&self) -> Option<String> {
        let weft = self.variant(Variant::Weft)?.rx_pps()?.median;
        let direct = self.variant(Variant::Direct)?.rx_pps()?.median;
        let offered = self.variant(Variant::Weft)?.offered_pps()?.median;
        Some(if direct > weft && offered > weft {
            format!(
                "Generator check: the direct veth received {} packets/s, {:.1}x what weft carried, \
                 and the generator offered weft's VM1 NIC {}/s: weft, not the generator, is the limit.",
                rate(direct),
                direct / weft,
                rate(offered)
            )
        } else {
            format!(
                "Generator check: WARNING: the direct veth received {}/s and weft {}/s with {}/s offered: \
                 the generator may be the limit of weft's packets/s figure.",
                rate(direct),
                rate(weft),
                rate(offered)
            )
        })
    }

    /// Everything as JSON (`weft bench dataplane --json`).
    pub fn to_json(&self) -> Value {
        let metrics = [
            ("tcp_gbps", Metric::TcpGbps),
            ("tcp_retransmits", Metric::Retransmits),
            ("rx_pps", Metric::RxPps),
            ("offered_pps", Metric::OfferedPps),
            ("generator_pps", Metric::GeneratorPps),
            ("vm1_nic_tx_dropped_pps", Metric::Vm1Dropped),
            ("host2_udp_rcvbuf_dropped_pps", Metric::Host2Dropped),
            ("vm2_nic_rx_dropped_pps", Metric::Vm2Dropped),
            ("ping_avg_us", Metric::PingAvg),
            ("ping_p99_us", Metric::PingP99),
            ("ping_loss_pct", Metric::PingLoss),
        ];
        let mut variants = serde_json::Map::new();
        for v in &self.variants {
            let mut m = serde_json::Map::new();
            for (name, metric) in metrics {
                let values = v.values(metric);
                if let Some(s) = Summary::of(&values) {
                    m.insert(name.into(), s.to_json(&values));
                }
            }
            if let Some((tcp, pps, ping)) = v.switch_cpu() {
                let cpu = |c: SwitchCpu| {
                    json!({"host1": c.total[0], "host2": c.total[1],
                           "host1_system": c.system[0], "host2_system": c.system[1]})
                };
                m.insert(
                    "switch_cpu_pct".into(),
                    json!({"tcp": cpu(tcp), "pps": cpu(pps), "ping": cpu(ping)}),
                );
            }
            variants.insert(v.variant.name().into(), Value::Object(m));
        }
        let ratio = |get: fn(&VariantReport) -> Option<Summary>| self.ratio(get);
        json!({
            "topology": {
                "vni": VNI, "vm_mtu": VM_MTU, "underlay_mtu": UNDERLAY_MTU,
                "frame_bytes": crate::pktgen::FRAME_LEN,
            },
            "options": {
                "repeats": self.options.repeats,
                "tcp_secs": self.options.tcp_secs,
                "pps_secs": self.options.pps_secs,
                "ping_count": self.options.ping_count,
                "weft_busy_poll_us": self.options.weft_busy_poll_us,
                "weft_idle_ports": self.options.weft_idle_ports,
                "variants": self.options.variants.iter().map(|v| v.name()).collect::<Vec<_>>(),
            },
            "variants": variants,
            "weft_over_kernel": {
                "tcp_gbps": ratio(VariantReport::tcp_gbps),
                "rx_pps": ratio(VariantReport::rx_pps),
                "ping_avg_us": ratio(VariantReport::ping_avg_us),
                "ping_p99_us": ratio(VariantReport::ping_p99_us),
            },
            "reference": {
                "ovs_userspace_tcp_gbps": reference::OVS_TCP_GBPS,
                "ovs_userspace_ping_us": reference::OVS_PING_US,
            },
            "goals": self.goals().iter().map(|g| json!({
                "goal": g.name, "met": g.met, "detail": g.detail,
            })).collect::<Vec<_>>(),
            "elapsed_secs": self.elapsed.as_secs_f64(),
        })
    }
}

/// Rows as columns: the first left-aligned, the rest right-aligned, two spaces apart.
fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, (text, width)) in row.iter().zip(&widths).enumerate() {
            if c == 0 {
                let _ = write!(line, "{text:<width$}");
            } else {
                let _ = write!(line, "  {text:>width$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut weft = VariantReport::new(Variant::Weft);
        let mut kernel = VariantReport::new(Variant::Kernel);
        for (g, us) in [(2.0, 90.0), (2.5, 80.0), (2.2, 100.0)] {
            weft.tcp.push(TcpSample {
                gbps: g,
                retransmits: 0,
                switch_cpu: Some(SwitchCpu {
                    total: [90.0, 80.0],
                    system: [70.0, 60.0],
                }),
            });
            weft.ping.push(PingSample {
                avg_us: us,
                p99_us: us * 2.0,
                loss_pct: 0.0,
                switch_cpu: Some(SwitchCpu {
                    total: [3.0, 2.0],
                    system: [2.0, 1.0],
                }),
            });
            kernel.tcp.push(TcpSample {
                gbps: g * 5.0,
                retransmits: 3,
                switch_cpu: None,
            });
            kernel.ping.push(PingSample {
                avg_us: 70.0,
                p99_us: 120.0,
                loss_pct: 0.0,
                switch_cpu: None,
            });
        }
        for v in [&mut weft, &mut kernel] {
            v.pps.push(PpsSample {
                received_pps: 300e3,
                offered_pps: 1.2e6,
                generator_pps: 1.1e6,
                vm1_tx_dropped_pps: 800e3,
                host2_udp_dropped_pps: 0.0,
                vm2_rx_dropped_pps: 0.0,
                switch_cpu: Some(SwitchCpu {
                    total: [100.0, 60.0],
                    system: [80.0, 50.0],
                }),
            });
        }
        Report {
            options: Options {
                variants: vec![Variant::Weft, Variant::Kernel],
                ..Options::default()
            },
            variants: vec![weft, kernel],
            elapsed: Duration::from_secs(100),
        }
    }

    #[test]
    fn test_summary_takes_the_median() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Summary::of(&[1.0, 4.0]).unwrap().median, 2.5);
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn test_goals_compare_weft_with_kernel_and_ovs() {
        let goals = report().goals();
        assert_eq!(goals.len(), 4);
        // TCP 2.2 vs 11: not met; ping 90 vs 70 = 1.29x: met; 2.2 < 5.3: not met; 90 > 77.
        let met: Vec<bool> = goals.iter().map(|g| g.met).collect();
        assert_eq!(met, [false, true, false, false]);
        assert!(goals[0].detail.contains("0.20x"), "{}", goals[0].detail);
    }

    #[test]
    fn test_table_and_json_show_every_variant() {
        let r = report();
        let table = r.table();
        for needle in [
            "weft",
            "kernel",
            "weft/kernel",
            "2.20 [2.00-2.50]",
            "0.20",
            "NOT MET",
        ] {
            assert!(table.contains(needle), "{needle} missing in\n{table}");
        }
        let json = r.to_json();
        assert_eq!(json["variants"]["weft"]["tcp_gbps"]["median"], 2.2);
        assert_eq!(json["goals"].as_array().unwrap().len(), 4);
        assert!((json["weft_over_kernel"]["tcp_gbps"].as_f64().unwrap() - 0.2).abs() < 1e-9);
    }
}
