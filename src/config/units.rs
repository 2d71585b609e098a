//! Human-readable units used in the configuration file: durations (`"7d"`, `"1h"`) and byte
//! sizes (`"1MiB"`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

/// A duration written the way people write them: `"30d"`, `"12h"`, `"5m"`, `"1h 30m"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = humantime::parse_duration(s.trim()).map_err(|e| {
            format!("invalid duration {s:?} ({e}): write a number and a unit, e.g. \"30d\", \"12h\", \"5m\" or \"90s\"")
        })?;
        Ok(Self(parsed))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// A size in bytes: `"1MiB"`, `"512KiB"`, `"2MB"`, `"4096"` or the integer `4096`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let bad = || {
            format!(
                "invalid size {s:?}: write a whole number and a unit, e.g. \"1MiB\", \"512KiB\" or \"65536\""
            )
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let multiplier: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => return Err(bad()),
        };
        n.checked_mul(multiplier).map(Self).ok_or_else(bad)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n if n >= 1 << 20 && n % (1 << 20) == 0 => write!(f, "{}MiB", n >> 20),
            n if n >= 1 << 10 && n % (1 << 10) == 0 => write!(f, "{}KiB", n >> 10),
            n => write!(f, "{n}B"),
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as \"1MiB\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(
            "30d".parse::<HumanDuration>().unwrap().0,
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(
            "1h 30m".parse::<HumanDuration>().unwrap().0,
            Duration::from_secs(5_400)
        );
        assert_eq!(
            "5m".parse::<HumanDuration>().unwrap().0,
            Duration::from_secs(300)
        );
    }

    #[test]
    fn a_bad_duration_says_how_to_write_one() {
        let err = "7x".parse::<HumanDuration>().unwrap_err();
        assert!(err.contains("\"7x\""), "{err}");
        assert!(err.contains("\"30d\""), "{err}");
        assert!("".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn sizes_accept_binary_and_decimal_units() {
        assert_eq!("1MiB".parse::<ByteSize>().unwrap().0, 1_048_576);
        assert_eq!("512KiB".parse::<ByteSize>().unwrap().0, 524_288);
        assert_eq!("2MB".parse::<ByteSize>().unwrap().0, 2_000_000);
        assert_eq!("65536".parse::<ByteSize>().unwrap().0, 65_536);
        assert_eq!(ByteSize(1_048_576).to_string(), "1MiB");
    }

    #[test]
    fn bad_sizes_are_refused() {
        for bad in [
            "",
            "MiB",
            "1.5MiB",
            "1 parsec",
            "-1",
            "99999999999999999999GiB",
        ] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad:?} was accepted");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_duration_reads_back_from_how_it_is_shown(secs in 0u64..100 * 365 * 86_400) {
            let d = HumanDuration::from_secs(secs);
            prop_assert_eq!(d.to_string().parse::<HumanDuration>(), Ok(d));
        }

        #[test]
        fn a_size_reads_back_from_how_it_is_shown(n in any::<u64>()) {
            let size = ByteSize(n);
            prop_assert_eq!(size.to_string().parse::<ByteSize>(), Ok(size));
        }

        #[test]
        fn any_text_is_a_duration_or_a_message_naming_it(s in ".{0,24}") {
            if let Err(e) = s.parse::<HumanDuration>() {
                prop_assert!(e.contains("invalid duration"), "{}", e);
            }
        }
    }
}
