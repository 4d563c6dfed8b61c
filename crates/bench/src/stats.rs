//! Latency samples and the percentiles reported from them.

use std::time::Duration;

/// Latencies recorded by one or more workers, in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    micros: Vec<u64>,
}

impl Samples {
    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        self.micros
            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Adds another worker's samples to these.
    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
    }

    /// How many latencies were recorded.
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// The `q` quantile (0.0–1.0) in milliseconds, nearest-rank; 0 when empty.
    pub fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.micros.is_empty() {
            return 0.0;
        }
        self.micros.sort_unstable();
        let last = self.micros.len() - 1;
        // Nearest rank: the smallest sample with at least q of them at or below it.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((q.clamp(0.0, 1.0) * self.micros.len() as f64).ceil() as usize)
            .saturating_sub(1)
            .min(last);
        #[allow(clippy::cast_precision_loss)]
        let ms = self.micros[rank] as f64 / 1000.0;
        ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let mut samples = Samples::default();
        assert_eq!(samples.quantile_ms(0.5), 0.0);
        for ms in 1..=100 {
            samples.record(Duration::from_millis(ms));
        }
        assert_eq!(samples.len(), 100);
        assert_eq!(samples.quantile_ms(0.5), 50.0);
        assert_eq!(samples.quantile_ms(0.99), 99.0);
        assert_eq!(samples.quantile_ms(1.0), 100.0);
    }
}
