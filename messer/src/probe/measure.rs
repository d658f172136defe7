//! Figures a probe adds to a sample beyond CPU: each is declared once as a
//! column and given per reading as a [`Measure`], which the sample turns into
//! a value using the real length of the window.

use crate::base::table::{Column, Kind};

/// How one extra column is computed from a reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// A count gained during the window, reported per second of the window.
    PerSecond(f64),
    /// Bytes gained during the window, reported in MiB per second.
    MibPerSecond(f64),
    /// Nanoseconds gained during the window, as percent of the window (may
    /// exceed 100 when summed over threads).
    PercentOfWindow(f64),
    /// The mean of `sum / count` scaled by `scale`; missing when `count` is 0.
    Mean { sum: f64, count: f64, scale: f64 },
    /// A value as is (a gauge, or a count within the window).
    Value(f64),
    /// A cumulative integer count (stored as integer).
    Total(u64),
    /// Not known in this window.
    Missing,
}

/// Declares an F64 column.
pub fn float(name: impl Into<String>) -> Column {
    Column::new(name, Kind::F64)
}

/// Declares an I64 column (for [`Measure::Total`]).
pub fn integer(name: impl Into<String>) -> Column {
    Column::new(name, Kind::I64)
}

impl Measure {
    /// The value over a window of `window_ns`; NaN where it has no meaning.
    pub fn value(self, window_ns: u64) -> f64 {
        let secs = window_ns as f64 / 1e9;
        let per_window = |x: f64| if window_ns == 0 { f64::NAN } else { x / secs };
        match self {
            Measure::PerSecond(n) => per_window(n),
            Measure::MibPerSecond(b) => per_window(b / (1024.0 * 1024.0)),
            Measure::PercentOfWindow(ns) => {
                if window_ns == 0 {
                    f64::NAN
                } else {
                    ns / window_ns as f64 * 100.0
                }
            }
            Measure::Mean { sum, count, scale } => {
                if count == 0.0 {
                    f64::NAN
                } else {
                    sum / count * scale
                }
            }
            Measure::Value(v) => v,
            Measure::Total(n) => n as f64,
            Measure::Missing => f64::NAN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_use_the_real_window() {
        assert_eq!(Measure::PerSecond(10.0).value(500_000_000), 20.0);
        assert_eq!(Measure::MibPerSecond(1024.0 * 1024.0).value(250_000_000), 4.0);
        assert_eq!(Measure::PercentOfWindow(250_000_000.0).value(500_000_000), 50.0);
        assert!(Measure::PerSecond(1.0).value(0).is_nan());
    }

    #[test]
    fn a_mean_of_nothing_is_missing() {
        assert!(Measure::Mean { sum: 0.0, count: 0.0, scale: 1.0 }.value(1).is_nan());
        assert_eq!(Measure::Mean { sum: 6e6, count: 3.0, scale: 1e-6 }.value(1), 2.0);
        assert!(Measure::Missing.value(1).is_nan());
    }
}
