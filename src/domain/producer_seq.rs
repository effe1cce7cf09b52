//! A producer's sequence number for its deltas (`seq`).

use std::fmt;

use serde::{Deserialize, Deserializer, de};

/// A delta's `seq`: a whole number the store keeps exactly. Stores hold it
/// as a signed 64-bit integer, so the range ends at `i64::MAX`; a larger
/// number would come back wrapped (negative) after a restart, and every
/// retry would then count as new text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProducerSeq(u64);

impl ProducerSeq {
    pub const MAX: u64 = i64::MAX as u64;

    pub fn get(self) -> u64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for ProducerSeq {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl de::Visitor<'_> for Visitor {
            type Value = ProducerSeq;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a whole number from 0 to {}", ProducerSeq::MAX)
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<ProducerSeq, E> {
                if value > ProducerSeq::MAX {
                    return Err(E::invalid_value(de::Unexpected::Unsigned(value), &self));
                }
                Ok(ProducerSeq(value))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<ProducerSeq, E> {
                u64::try_from(value)
                    .map(ProducerSeq)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
            }
        }

        deserializer.deserialize_u64(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ProducerSeq, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn a_seq_is_a_whole_number_a_signed_64_bit_column_keeps_exactly() {
        assert_eq!(parse("0"), Ok(ProducerSeq(0)));
        assert_eq!(
            parse("9223372036854775807"),
            Ok(ProducerSeq(i64::MAX as u64))
        );
        for refused in [
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "-1",
            "1.5",
            "\"3\"",
        ] {
            let error = parse(refused).expect_err(refused);
            assert!(
                error.contains("a whole number from 0 to 9223372036854775807"),
                "{refused}: {error}"
            );
        }
    }
}
