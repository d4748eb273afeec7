//! Parsing `--signal`: the numbers and names `kill(1)` accepts.

use std::str::FromStr;

use nix::sys::signal::Signal;

use crate::error::Error;

/// The highest real-time signal on Linux; nix names none of 32..=64, so those are numbers only.
const MAX_SIGNAL: i64 = 64;

/// Accepts `15`, `TERM`, `SIGTERM` or `sigterm` and returns the signal number.
pub fn parse(text: &str) -> Result<i32, Error> {
    if let Ok(number) = text.parse::<i64>() {
        return match i32::try_from(number) {
            Ok(signal) if (1..=MAX_SIGNAL).contains(&number) => Ok(signal),
            _ => Err(Error::SignalRange(number)),
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name)
        .map(|signal| signal as i32)
        .map_err(|_| Error::UnknownSignal(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_numbers_and_names_in_any_case() {
        assert_eq!(parse("15").unwrap(), 15);
        assert_eq!(parse("TERM").unwrap(), 15);
        assert_eq!(parse("SIGTERM").unwrap(), 15);
        assert_eq!(parse("sigkill").unwrap(), 9);
        assert_eq!(parse("hup").unwrap(), 1);
        assert_eq!(parse("64").unwrap(), 64);
    }

    #[test]
    fn rejects_out_of_range_numbers() {
        assert!(matches!(parse("0"), Err(Error::SignalRange(0))));
        assert!(matches!(parse("65"), Err(Error::SignalRange(65))));
        assert!(matches!(parse("-9"), Err(Error::SignalRange(-9))));
        assert!(matches!(
            parse("99999999999"),
            Err(Error::SignalRange(99999999999))
        ));
    }

    #[test]
    fn rejects_unknown_names() {
        for bogus in ["bogus", "SIG", "", "SIGSIGTERM", "TERM "] {
            match parse(bogus) {
                Err(Error::UnknownSignal(text)) => assert_eq!(text, bogus),
                other => panic!("{bogus:?} parsed as {other:?}"),
            }
        }
        assert_eq!(
            parse("bogus").unwrap_err().to_string(),
            "unknown signal \"bogus\": expected a number from 1 to 64 or a name such as TERM or SIGKILL"
        );
    }
}
