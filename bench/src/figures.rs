//! How measured figures are rounded and printed for the reports; a leaf module, so
//! the modules that measure need not depend on the ones that report.

/// Three decimals: milliseconds to the microsecond, seconds to the
/// millisecond.
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// `count` over `seconds`, to a tenth; `None` for no time at all.
pub fn rate_per_sec(count: u64, seconds: f64) -> Option<f64> {
    (seconds > 0.0).then(|| (count as f64 / seconds * 10.0).round() / 10.0)
}

/// A figure, or `n/a` when there is none.
pub fn display_option<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |value| value.to_string())
}
