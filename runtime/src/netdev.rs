//! Network counters of a process's network namespace, from `/proc/<pid>/net/dev`: read from
//! the host, the file shows the interfaces of the namespace the process is in.

use std::fs;
use std::io;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum NetDevError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("unexpected line in {path}: {line:?}")]
    Parse { path: PathBuf, line: String },
}

/// The sum over every interface but loopback in `pid`'s network namespace.
pub fn read(pid: u32) -> Result<NetStats, NetDevError> {
    let path = PathBuf::from(format!("/proc/{pid}/net/dev"));
    let content = fs::read_to_string(&path).map_err(|source| NetDevError::Read {
        path: path.clone(),
        source,
    })?;
    parse(&content).map_err(|line| NetDevError::Parse { path, line })
}

/// Two header lines, then `iface: rx_bytes rx_packets errs drop fifo frame compressed multicast
/// tx_bytes tx_packets ...`; a bad line is returned as the error.
fn parse(content: &str) -> Result<NetStats, String> {
    let mut stats = NetStats::default();
    for line in content.lines().skip(2) {
        let Some((iface, counters)) = line.split_once(':') else {
            return Err(line.to_string());
        };
        if iface.trim() == "lo" {
            continue;
        }
        let counters: Vec<u64> = counters
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| line.to_string())?;
        let [rx_bytes, rx_packets, _, _, _, _, _, _, tx_bytes, tx_packets, ..] = counters[..]
        else {
            return Err(line.to_string());
        };
        stats.rx_bytes += rx_bytes;
        stats.rx_packets += rx_packets;
        stats.tx_bytes += tx_bytes;
        stats.tx_packets += tx_packets;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORDED: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0: 5000000    4000    0    0    0     0          0         0   300000     2500    0    0    0     0       0          0
  eth1:     100       1    0    0    0     0          0         0      200        2    0    0    0     0       0          0
";

    #[test]
    fn sums_every_interface_but_loopback() {
        assert_eq!(
            parse(RECORDED).unwrap(),
            NetStats {
                rx_bytes: 5_000_100,
                rx_packets: 4001,
                tx_bytes: 300_200,
                tx_packets: 2502,
            }
        );
        assert!(parse("h\nh\n  eth0: 1 2 3\n").is_err());
    }

    #[test]
    fn reads_this_process() {
        read(std::process::id()).unwrap();
    }
}
