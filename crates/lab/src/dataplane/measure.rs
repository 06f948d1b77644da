//! The three measurements on a built [`Topology`], and the parsers of the tools' output.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{IPERF_PORT, VM_IPS, VM_MACS, sleep, topology::Topology};
use crate::{Error, Result, pktgen};

/// Generator time before packets start being counted (start-up, queues filling).
const PPS_WARMUP: Duration = Duration::from_millis(500);
/// Generator time after counting stops (the counters are read while it still sends).
const PPS_TAIL: Duration = Duration::from_millis(300);
/// Time given to the previous measurement's load to drain before the next starts.
const SETTLE: Duration = Duration::from_millis(500);

/// One iperf3 TCP run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TcpSample {
    /// Receiver goodput, Gbit/s.
    pub gbps: f64,
    /// TCP retransmissions the sender counted.
    pub retransmits: u64,
    /// CPU of the weft switch processes over the run (weft only).
    pub switch_cpu: Option<SwitchCpu>,
}

impl TcpSample {
    /// One line for the progress log.
    pub fn describe(&self) -> String {
        format!(
            "{:.2} Gbit/s, {} retransmits{}",
            self.gbps,
            self.retransmits,
            cpu_text(self.switch_cpu)
        )
    }
}

/// One packets/s run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PpsSample {
    /// Frames VM2's NIC received per second over the counting window.
    pub received_pps: f64,
    /// Frames offered to VM1's NIC per second over the same window: its `tx_packets` plus
    /// `tx_dropped`.
    pub offered_pps: f64,
    /// Frames per second the generator handed VM1's NIC over its whole run, by its own count
    /// (taken or refused).
    pub generator_pps: f64,
    /// Per second over the window: frames VM1's NIC dropped on transmit (for a TAP: its queue
    /// was full because the switch did not read it fast enough).
    pub vm1_tx_dropped_pps: f64,
    /// Per second: UDP datagrams host2's kernel dropped because a socket's receive buffer was
    /// full (weft's VXLAN socket not read fast enough).
    pub host2_udp_dropped_pps: f64,
    /// Per second: frames VM2's NIC dropped on receive.
    pub vm2_rx_dropped_pps: f64,
    /// CPU of the weft switch processes over the window (weft only).
    pub switch_cpu: Option<SwitchCpu>,
}

impl PpsSample {
    /// One line for the progress log.
    pub fn describe(&self) -> String {
        format!(
            "received {:.0}/s of {:.0}/s offered (generator {:.0}/s; drops/s: VM1 NIC {:.0}, host2 UDP {:.0}, VM2 NIC {:.0}){}",
            self.received_pps,
            self.offered_pps,
            self.generator_pps,
            self.vm1_tx_dropped_pps,
            self.host2_udp_dropped_pps,
            self.vm2_rx_dropped_pps,
            cpu_text(self.switch_cpu)
        )
    }
}

/// One ping run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PingSample {
    /// Mean round trip time, microseconds.
    pub avg_us: f64,
    /// 99th percentile (nearest rank), microseconds.
    pub p99_us: f64,
    /// Echo requests without a reply, %.
    pub loss_pct: f64,
    /// CPU of the weft switch processes over the run (weft only): what busy polling costs.
    pub switch_cpu: Option<SwitchCpu>,
}

impl PingSample {
    /// One line for the progress log.
    pub fn describe(&self) -> String {
        format!(
            "avg {:.1} us, p99 {:.1} us, loss {:.1} %{}",
            self.avg_us,
            self.p99_us,
            self.loss_pct,
            cpu_text(self.switch_cpu)
        )
    }
}

/// CPU used by the two weft switch processes over a measurement, in % of one core.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwitchCpu {
    /// host1's and host2's switch: user + system time.
    pub total: [f64; 2],
    /// The part of it in the kernel: system calls on the TAP and UDP socket, and the
    /// receiving VM's network stack, which runs inside the switch's write to the TAP.
    pub system: [f64; 2],
}

fn cpu_text(cpu: Option<SwitchCpu>) -> String {
    cpu.map_or_else(String::new, |c| {
        format!(
            ", weft switch CPU host1 {:.0} % (system {:.0} %), host2 {:.0} % (system {:.0} %)",
            c.total[0], c.system[0], c.total[1], c.system[1]
        )
    })
}

/// Reads the iperf3 client's JSON: (receiver goodput Gbit/s, retransmits).
pub(super) fn parse_iperf(json: &str) -> Result<(f64, u64)> {
    let value: Value = serde_json::from_str(json)
        .map_err(|err| Error::Failed(format!("iperf3 -J output is not JSON ({err}): {json}")))?;
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        return Err(Error::Failed(format!("iperf3: {error}")));
    }
    let end = &value["end"];
    let bps = end["sum_received"]["bits_per_second"]
        .as_f64()
        .ok_or_else(|| Error::Failed("iperf3 output has no end.sum_received".into()))?;
    let retransmits = end["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
    Ok((bps / 1e9, retransmits))
}

/// Reads ping's per-reply `time=0.069 ms` lines: (avg µs, p99 µs, loss %) for `sent`
/// requests; an error without any reply.
pub(super) fn parse_ping(output: &str, sent: u32) -> Result<PingSample> {
    let mut times: Vec<f64> = output
        .lines()
        .filter_map(|line| {
            let rest = &line[line.find("time=")? + 5..];
            let (value, unit) = rest.split_once(' ')?;
            let value: f64 = value.parse().ok()?;
            match unit.trim() {
                "ms" => Some(value * 1000.0),
                "s" => Some(value * 1e6),
                "us" | "usec" => Some(value),
                _ => None,
            }
        })
        .collect();
    if times.is_empty() {
        return Err(Error::Failed(format!("ping: no replies: {output}")));
    }
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let avg = times.iter().sum::<f64>() / count_f64(n);
    // Nearest rank: the smallest value with at least 99 % of the values at or below it.
    let rank = (n * 99).div_ceil(100).max(1);
    let p99 = times[rank - 1];
    let received = u32::try_from(n).unwrap_or(u32::MAX).min(sent);
    let loss = if sent == 0 {
        0.0
    } else {
        100.0 * f64::from(sent - received) / f64::from(sent)
    };
    Ok(PingSample {
        avg_us: avg,
        p99_us: p99,
        loss_pct: loss,
        switch_cpu: None,
    })
}

#[expect(
    clippy::cast_precision_loss,
    reason = "counts of pings and packets stay far below 2^52"
)]
fn count_f64(n: impl TryInto<u64>) -> f64 {
    n.try_into().unwrap_or(u64::MAX) as f64
}

/// True when `/proc/<pid>/net/tcp` (the namespace of `pid`) has a listening socket on
/// `port`.
fn listening(pid: u32, port: u16) -> bool {
    let want = format!(":{port:04X}");
    ["tcp", "tcp6"].iter().any(|file| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).is_ok_and(|text| {
            text.lines().skip(1).any(|line| {
                let mut fields = line.split_whitespace();
                let local = fields.nth(1).unwrap_or("");
                let state = fields.nth(1).unwrap_or("");
                local.ends_with(&want) && state == "0A"
            })
        })
    })
}

/// The (utime, stime) of a process, in seconds.
fn cpu_seconds(pid: u32) -> Option<[f64; 2]> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields start after the last ')'.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = f64::from(u32::try_from(hz).ok().filter(|&h| h > 0)?);
    Some([count_f64(user) / hz, count_f64(system) / hz])
}

/// Packet counters read in one go.
struct Counters {
    /// When VM2's counters were read.
    at: Instant,
    /// When VM1's counters were read.
    vm1_at: Instant,
    vm1_tx: u64,
    vm2_rx: u64,
    vm2_rx_dropped: u64,
    vm1_tx_dropped: u64,
    host2_udp_rcvbuf: u64,
    switch_cpu: Option<[[f64; 2]; 2]>,
}

impl Topology {
    /// (user, system) CPU seconds of the two weft switches, `None` for other variants.
    fn switch_cpu_seconds(&self) -> Option<[[f64; 2]; 2]> {
        if self.switches.len() != 2 {
            return None;
        }
        let pid = |i: usize| self.lab.pid(self.switches[i].proc);
        Some([cpu_seconds(pid(0)?)?, cpu_seconds(pid(1)?)?])
    }

    /// One `cat` of several counter files inside `ns`, as numbers.
    fn read_counters(&self, ns: &str, files: &[String]) -> Result<Vec<u64>> {
        let mut args = vec!["cat"];
        args.extend(files.iter().map(String::as_str));
        let text = self.lab.exec(ns, &args)?;
        text.lines()
            .map(|l| {
                l.trim()
                    .parse()
                    .map_err(|_| Error::Failed(format!("{ns}: counter {l:?} in {files:?}")))
            })
            .collect()
    }

    /// `RcvbufErrors` of the UDP line of `/proc/net/snmp` in host2 (0 without hosts).
    fn host2_udp_rcvbuf(&self) -> Result<u64> {
        let Some(h2) = self.host_ns.get(1) else {
            return Ok(0);
        };
        let snmp = self.lab.exec(h2, &["cat", "/proc/net/snmp"])?;
        let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
        let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
            return Ok(0);
        };
        let column = names.split_whitespace().position(|n| n == "RcvbufErrors");
        Ok(column
            .and_then(|c| values.split_whitespace().nth(c))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    fn counters(&self) -> Result<Counters> {
        let stat = |ns: &str, name: &str| format!("/sys/class/net/{ns}/statistics/{name}");
        let before = Instant::now();
        let vm2 = self.read_counters(
            &self.vm_ns[1],
            &[
                stat(&self.vm_nic[1], "rx_packets"),
                stat(&self.vm_nic[1], "rx_dropped"),
            ],
        )?;
        let after = Instant::now();
        let vm1 = self.read_counters(
            &self.vm_ns[0],
            &[
                stat(&self.vm_nic[0], "tx_packets"),
                stat(&self.vm_nic[0], "tx_dropped"),
            ],
        )?;
        let vm1_after = Instant::now();
        let host2_udp_rcvbuf = self.host2_udp_rcvbuf()?;
        Ok(Counters {
            // The moment a count was read: the middle of its `cat`.
            at: before + (after - before) / 2,
            vm1_at: after + (vm1_after - after) / 2,
            vm1_tx: vm1[0] + vm1[1],
            vm2_rx: vm2[0],
            vm2_rx_dropped: vm2[1],
            vm1_tx_dropped: vm1[1],
            host2_udp_rcvbuf,
            switch_cpu: self.switch_cpu_seconds(),
        })
    }

    /// One iperf3 TCP stream VM1 -> VM2 for `secs` seconds.
    pub(super) fn tcp(&mut self, secs: u32) -> Result<TcpSample> {
        sleep(SETTLE)?;
        self.check_switches()?;
        let dst = VM_IPS[1].to_string();
        let port = IPERF_PORT.to_string();
        let vm2 = self.vm_ns[1].clone();
        let server = self.lab.spawn(
            &vm2,
            &["iperf3", "-s", "-1", "-B", &dst, "-p", &port],
            "iperf3-server.log",
        )?;
        let pid = self.lab.pid(server).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !listening(pid, IPERF_PORT) {
            if self.lab.try_wait(server).is_some() || Instant::now() >= deadline {
                self.lab.stop(server);
                return Err(Error::Failed(format!(
                    "iperf3 server in VM2 did not start: {}",
                    self.lab.log("iperf3-server.log")
                )));
            }
            sleep(Duration::from_millis(10))?;
        }
        let cpu0 = self.switch_cpu_seconds();
        let t0 = Instant::now();
        let secs_s = secs.to_string();
        let vm1 = self.vm_ns[0].clone();
        let client = self.lab.run_in(
            &vm1,
            &["iperf3", "-c", &dst, "-p", &port, "-t", &secs_s, "-J"],
            Duration::from_secs(u64::from(secs) + 30),
        );
        let switch_cpu = cpu_share(cpu0, self.switch_cpu_seconds(), t0.elapsed());
        if self.lab.wait(server, Duration::from_secs(5))?.is_none() {
            self.lab.stop(server);
        }
        let client = client?;
        let (gbps, retransmits) = parse_iperf(&client.stdout).map_err(|err| {
            Error::Failed(format!(
                "variant {}: {err} ({}){}",
                self.variant,
                client.stderr.trim(),
                self.switch_logs()
            ))
        })?;
        Ok(TcpSample {
            gbps,
            retransmits,
            switch_cpu,
        })
    }

    /// [`pktgen`] in VM1 sending 64-byte frames to VM2 as fast as VM1's NIC takes them;
    /// what VM2's NIC receives is counted over `secs` seconds in the middle of the run.
    pub(super) fn pps(&mut self, secs: f64, weft_exe: &Path) -> Result<PpsSample> {
        sleep(SETTLE)?;
        self.check_switches()?;
        let window = Duration::try_from_secs_f64(secs)
            .map_err(|_| Error::Failed(format!("--pps-secs {secs}")))?;
        let total = PPS_WARMUP + window + PPS_TAIL;
        let exe = weft_exe
            .to_str()
            .ok_or_else(|| Error::Failed(format!("{}: not UTF-8", weft_exe.display())))?;
        let (src_ip, dst_ip) = (VM_IPS[0].to_string(), VM_IPS[1].to_string());
        let total_s = format!("{:.3}", total.as_secs_f64());
        let (vm1, nic1) = (self.vm_ns[0].clone(), self.vm_nic[0].clone());
        let log = "pktgen.log";
        let gen_proc = self.lab.spawn(
            &vm1,
            &[
                exe,
                "bench",
                "pktgen",
                "--ifname",
                &nic1,
                "--dst-mac",
                VM_MACS[1],
                "--src-ip",
                &src_ip,
                "--dst-ip",
                &dst_ip,
                "--secs",
                &total_s,
            ],
            log,
        )?;
        let result = (|| {
            sleep(PPS_WARMUP)?;
            let before = self.counters()?;
            sleep(window)?;
            let after = self.counters()?;
            Ok::<_, Error>((before, after))
        })();
        let exited = self.lab.wait(gen_proc, total + Duration::from_secs(10));
        let status = match exited {
            Ok(Some(status)) => status,
            Ok(None) => {
                self.lab.stop(gen_proc);
                return Err(Error::Failed(format!(
                    "the packet generator did not stop: {}",
                    self.lab.log(log)
                )));
            }
            Err(err) => {
                self.lab.stop(gen_proc);
                return Err(err);
            }
        };
        let (before, after) = result?;
        let output = self.lab.log(log);
        let stats = match pktgen::Stats::parse(&output) {
            Some(stats) if status.success() => stats,
            _ => {
                return Err(Error::Failed(format!(
                    "the packet generator failed ({status}): {}",
                    output.trim()
                )));
            }
        };
        let elapsed = after.at.saturating_duration_since(before.at);
        let vm1_elapsed = after.vm1_at.saturating_duration_since(before.vm1_at);
        let per_second = |a: u64, b: u64, over: Duration| {
            let secs = over.as_secs_f64();
            if secs > 0.0 {
                count_f64(b.saturating_sub(a)) / secs
            } else {
                0.0
            }
        };
        let rate = |a: u64, b: u64| per_second(a, b, elapsed);
        Ok(PpsSample {
            received_pps: rate(before.vm2_rx, after.vm2_rx),
            offered_pps: per_second(before.vm1_tx, after.vm1_tx, vm1_elapsed),
            generator_pps: stats.offered_pps(),
            vm1_tx_dropped_pps: rate(before.vm1_tx_dropped, after.vm1_tx_dropped),
            host2_udp_dropped_pps: rate(before.host2_udp_rcvbuf, after.host2_udp_rcvbuf),
            vm2_rx_dropped_pps: rate(before.vm2_rx_dropped, after.vm2_rx_dropped),
            switch_cpu: cpu_share(before.switch_cpu, after.switch_cpu, elapsed),
        })
    }

    /// `ping -c count -i 0.01` VM1 -> VM2.
    pub(super) fn ping(&mut self, count: u32) -> Result<PingSample> {
        sleep(SETTLE)?;
        self.check_switches()?;
        let (dst, count_s) = (VM_IPS[1].to_string(), count.to_string());
        let vm1 = self.vm_ns[0].clone();
        let timeout = Duration::from_millis(u64::from(count) * 10) + Duration::from_secs(15);
        let cpu0 = self.switch_cpu_seconds();
        let t0 = Instant::now();
        let finished = self.lab.run_in(
            &vm1,
            &["ping", "-c", &count_s, "-i", "0.01", "-W", "1", &dst],
            timeout,
        )?;
        let switch_cpu = cpu_share(cpu0, self.switch_cpu_seconds(), t0.elapsed());
        let sample = parse_ping(&finished.stdout, count).map_err(|err| {
            Error::Failed(format!(
                "variant {}: {err}{}{}",
                self.variant,
                finished.stderr,
                self.switch_logs()
            ))
        })?;
        Ok(PingSample {
            switch_cpu,
            ..sample
        })
    }
}

/// CPU seconds between two readings as % of one core over `elapsed`.
fn cpu_share(
    before: Option<[[f64; 2]; 2]>,
    after: Option<[[f64; 2]; 2]>,
    elapsed: Duration,
) -> Option<SwitchCpu> {
    let (before, after) = (before?, after?);
    let secs = elapsed.as_secs_f64();
    let pct = |host: usize, kind: usize| 100.0 * (after[host][kind] - before[host][kind]) / secs;
    (secs > 0.0).then(|| SwitchCpu {
        total: [pct(0, 0) + pct(0, 1), pct(1, 0) + pct(1, 1)],
        system: [pct(0, 1), pct(1, 1)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ping_times_give_average_and_nearest_rank_p99() {
        let mut out = String::from("PING 198.18.0.2 (198.18.0.2) 56(84) bytes of data.\n");
        for i in 1..=100 {
            out.push_str(&format!(
                "64 bytes from 198.18.0.2: icmp_seq={i} ttl=64 time=0.{i:03} ms\n"
            ));
        }
        out.push_str("--- 198.18.0.2 ping statistics ---\n");
        let s = parse_ping(&out, 200).unwrap();
        assert!((s.avg_us - 50.5).abs() < 1e-9);
        assert!((s.p99_us - 99.0).abs() < 1e-9);
        assert!((s.loss_pct - 50.0).abs() < 1e-9);
        let one = parse_ping("64 bytes from x: icmp_seq=1 ttl=64 time=1.25 ms\n", 1).unwrap();
        assert!((one.p99_us - 1250.0).abs() < 1e-9);
        assert!(parse_ping("no answer", 5).is_err());
    }

    #[test]
    fn test_iperf_json_gives_receiver_goodput() {
        let json = r#"{"start":{},"end":{"sum_sent":{"bits_per_second":2.1e10,"retransmits":7},
            "sum_received":{"bits_per_second":1.55e10}}}"#;
        let (gbps, rtx) = parse_iperf(json).unwrap();
        assert!((gbps - 15.5).abs() < 1e-9);
        assert_eq!(rtx, 7);
        let err = parse_iperf(r#"{"error":"unable to connect to server"}"#).unwrap_err();
        assert!(err.to_string().contains("unable to connect"));
        assert!(parse_iperf("not json").is_err());
    }
}
