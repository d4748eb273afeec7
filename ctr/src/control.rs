//! `ctr containers pause|resume|update`: steering a running container, and the size syntax
//! (`512M`, `64MiB`, `1g`) its limits are given in.

use protocol::{Resources, UpdateRequest};

use crate::error::Error;
use crate::{Global, UpdateArgs};

pub fn pause(global: &Global, id: &str) -> Result<(), Error> {
    global.connect()?.pause(&global.namespace, id)?;
    Ok(())
}

pub fn resume(global: &Global, id: &str) -> Result<(), Error> {
    global.connect()?.resume(&global.namespace, id)?;
    Ok(())
}

/// Every value is parsed before anything is sent, so a bad one changes nothing.
pub fn update(global: &Global, args: &UpdateArgs) -> Result<(), Error> {
    let resources = Resources {
        memory: args
            .memory_limit
            .as_deref()
            .map(|v| size("--memory-limit", v))
            .transpose()?,
        memory_swap: args
            .memory_swap
            .as_deref()
            .map(|v| size_or_unlimited("--memory-swap", v))
            .transpose()?,
        cpu_shares: args
            .cpu_shares
            .as_deref()
            .map(|v| number("--cpu-shares", v))
            .transpose()?,
        cpu_quota: args
            .cpu_quota
            .as_deref()
            .map(|v| signed("--cpu-quota", v))
            .transpose()?,
        cpu_period: args
            .cpu_period
            .as_deref()
            .map(|v| number("--cpu-period", v))
            .transpose()?,
        cpuset_cpus: args.cpuset_cpus.clone(),
        pids_limit: args
            .pids_limit
            .as_deref()
            .map(|v| signed("--pids-limit", v))
            .transpose()?,
        blkio_weight: args
            .blkio_weight
            .as_deref()
            .map(|v| number("--blkio-weight", v))
            .transpose()?,
    };
    if resources == Resources::default() {
        return Err(Error::NothingToUpdate);
    }
    let request = UpdateRequest {
        namespace: global.namespace.clone(),
        id: args.id.clone(),
        resources,
    };
    global.connect()?.update(request)?;
    Ok(())
}

/// Bytes, with an optional binary suffix: `1048576`, `512k`, `64M`, `64MiB`, `2G`, `1t`.
pub fn size(flag: &'static str, text: &str) -> Result<u64, Error> {
    let bad = || Error::Size {
        flag,
        value: text.to_string(),
    };
    let lower = text.trim().to_ascii_lowercase();
    let unit_at = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(unit_at);
    let shift = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    let value: u64 = digits.parse().map_err(|_| bad())?;
    value.checked_mul(1 << shift).ok_or_else(bad)
}

/// A size, or `-1` for unlimited.
fn size_or_unlimited(flag: &'static str, text: &str) -> Result<i64, Error> {
    if text.trim() == "-1" {
        return Ok(-1);
    }
    i64::try_from(size(flag, text)?).map_err(|_| Error::Size {
        flag,
        value: text.to_string(),
    })
}

fn number(flag: &'static str, text: &str) -> Result<u64, Error> {
    text.trim().parse().map_err(|_| Error::Number {
        flag,
        value: text.to_string(),
        expected: "a whole number",
    })
}

/// A number, or `-1` for unlimited.
fn signed(flag: &'static str, text: &str) -> Result<i64, Error> {
    text.trim()
        .parse()
        .ok()
        .filter(|&n: &i64| n >= -1)
        .ok_or_else(|| Error::Number {
            flag,
            value: text.to_string(),
            expected: "a whole number, or -1 for unlimited",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(size("f", "1048576").unwrap(), 1 << 20);
        assert_eq!(size("f", "512k").unwrap(), 512 << 10);
        assert_eq!(size("f", "64M").unwrap(), 64 << 20);
        assert_eq!(size("f", "64MiB").unwrap(), 64 << 20);
        assert_eq!(size("f", "64mb").unwrap(), 64 << 20);
        assert_eq!(size("f", "2G").unwrap(), 2 << 30);
        assert_eq!(size_or_unlimited("f", "-1").unwrap(), -1);
    }

    #[test]
    fn nonsense_sizes_name_the_flag() {
        for bad in ["lots", "", "M", "12X", "1.5G", "-5", "99999999999T"] {
            let err = size("--memory-limit", bad).unwrap_err().to_string();
            assert!(err.contains("--memory-limit"), "{err}");
        }
        assert_eq!(
            size("--memory-limit", "lots").unwrap_err().to_string(),
            "invalid --memory-limit \"lots\": expected bytes, optionally with a suffix k, M, G or T (512M)"
        );
        assert!(signed("--pids-limit", "-2").is_err());
        assert_eq!(signed("--pids-limit", "-1").unwrap(), -1);
        assert!(number("--cpu-shares", "x").is_err());
    }
}
