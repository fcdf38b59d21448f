//! Per-task limits from the command line: `--timeout SECS` and
//! `--max-memory SIZE`.
//!
//! They become the view's [`Limits`], which every task carries: an engine
//! applies the smaller of its own limits and the task's. Seconds may be
//! fractional (`0.05`); sizes take a K, M, G or T suffix in powers of 1024,
//! case-insensitive (`64M`, `1g`, `512KiB`), or are plain bytes.

use std::time::Duration;

use clap::Args;
use grid_proto::Limits;

/// The `--timeout` and `--max-memory` options.
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Wall-clock time limit of each task, in seconds (fractions allowed:
    /// 0.05). A task over it fails with a `wall time` limit error.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub timeout: Option<Duration>,

    /// Memory limit of each task's instance: bytes, or with a K, M, G or T
    /// suffix in powers of 1024 (512K, 64M, 1G). A task over it fails with a
    /// `memory` limit error.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_memory: Option<u64>,
}

impl LimitArgs {
    /// The limits every task of this run carries.
    pub fn limits(&self) -> Limits {
        Limits {
            wall_time_ms: self
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)),
            memory_bytes: self.max_memory,
            ..Limits::default()
        }
    }
}

impl LimitArgs {
    /// The options again, as arguments for another `grid` process.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(t) = self.timeout {
            args.extend(["--timeout".to_string(), t.as_secs_f64().to_string()]);
        }
        if let Some(m) = self.max_memory {
            args.extend(["--max-memory".to_string(), m.to_string()]);
        }
        args
    }
}

/// Parses a positive number of seconds, possibly fractional.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a positive number of seconds (e.g. 30 or 0.05)");
    let secs: f64 = text.trim().parse().map_err(|_| bad())?;
    if secs.is_nan() || secs <= 0.0 {
        return Err(bad());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

/// Parses a positive size in bytes: `4096`, `512K`, `64M`, `1G`, `2T`, with
/// an optional `B` or `iB` after the letter; powers of 1024.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "`{text}` is not a size: give bytes, or a number with K, M, G or T \
             (powers of 1024), e.g. 64M"
        )
    };
    let lower = text.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let number: u64 = digits.parse().map_err(|_| bad())?;
    let shift = match unit.trim_start() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    let bytes = number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))?;
    if bytes == 0 {
        return Err(format!("`{text}`: the size must be more than zero"));
    }
    Ok(bytes)
}

/// Parses a DUR: a whole number and a unit, `s`, `m`, `h` or `d`.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "`{text}` is not a duration: give a whole number and a unit, s, m, h or d \
             (45s, 30m, 1h, 2d)"
        )
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(bad)?;
    let (number, unit) = trimmed.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_powers_of_1024_in_any_case() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64mib"), Ok(64 << 20));
        assert_eq!(parse_size("64 MB"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2t"), Ok(2 << 40));
        assert_eq!(parse_size("100b"), Ok(100));
    }

    #[test]
    fn bad_sizes_say_what_is_expected() {
        for bad in ["", "M", "-1M", "1.5G", "12Q", "1 G B", "0x10"] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains("e.g. 64M"), "{bad}: {e}");
        }
        assert!(parse_size("0").unwrap_err().contains("more than zero"));
        assert!(
            parse_size("99999999999T")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn seconds_may_be_fractional_but_positive() {
        assert_eq!(parse_seconds("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_seconds("0.05"), Ok(Duration::from_millis(50)));
        for bad in ["0", "-1", "abc", "NaN", "inf", ""] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_round_to_whole_milliseconds_of_at_least_one() {
        let args = LimitArgs {
            timeout: Some(Duration::from_micros(200)),
            max_memory: Some(1 << 20),
        };
        let limits = args.limits();
        assert_eq!(limits.wall_time_ms, Some(1));
        assert_eq!(limits.memory_bytes, Some(1 << 20));
        assert_eq!(limits.fuel, None);
        let args = LimitArgs {
            timeout: Some(Duration::from_millis(50)),
            max_memory: None,
        };
        assert_eq!(args.limits().wall_time_ms, Some(50));
    }

    #[test]
    fn options_survive_the_trip_to_another_process() {
        let args = LimitArgs {
            timeout: Some(Duration::from_millis(1500)),
            max_memory: Some(64 << 20),
        };
        let text = args.to_args();
        assert_eq!(text, ["--timeout", "1.5", "--max-memory", "67108864"]);
        assert_eq!(parse_seconds(&text[1]), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_size(&text[3]), Ok(64 << 20));
    }
}
