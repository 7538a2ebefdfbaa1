//! A histogram over `[-r, r]` that widens itself: when a value falls outside, the range
//! doubles and pairs of bins merge, so no sample is lost and no second pass is needed.

/// Bins of the histogram; a multiple of 4 so that halving keeps bin edges aligned.
pub(crate) const BINS: usize = 2048;

/// Counts of values in `BINS` equal bins over `[-radius, radius]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Histogram {
    radius: f32,
    counts: Vec<u64>,
    /// Values seen while the radius was still zero (all of them exactly zero).
    zeros: u64,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Self { radius: 0.0, counts: vec![0; BINS], zeros: 0 }
    }

    /// Adds finite values (callers check finiteness).
    pub(crate) fn add(&mut self, values: impl Iterator<Item = f32> + Clone) {
        let absmax = values.clone().fold(0.0_f32, |a, v| a.max(v.abs()));
        if absmax > self.radius {
            self.grow(absmax);
        }
        if self.radius == 0.0 {
            self.zeros += values.count() as u64;
            return;
        }
        let per_unit = BINS as f32 / (2.0 * self.radius);
        for v in values {
            let i = ((v + self.radius) * per_unit) as usize;
            self.counts[i.min(BINS - 1)] += 1;
        }
    }

    /// Widens the range to cover `absmax`, merging bins pairwise per doubling.
    fn grow(&mut self, absmax: f32) {
        if self.radius == 0.0 {
            self.radius = absmax;
            // Zeros seen so far land in the bin that holds 0.
            self.counts[BINS / 2] += std::mem::take(&mut self.zeros);
            return;
        }
        while self.radius < absmax {
            let mut merged = vec![0u64; BINS];
            for (j, &c) in self.counts.iter().enumerate() {
                merged[BINS / 4 + j / 2] += c;
            }
            self.counts = merged;
            self.radius *= 2.0;
        }
    }

    /// Half-width of the covered range.
    #[cfg(test)]
    fn radius(&self) -> f32 {
        self.radius
    }

    /// Width of one bin.
    pub(crate) fn bin_width(&self) -> f32 {
        2.0 * self.radius / BINS as f32
    }

    /// Centre of bin `i`.
    pub(crate) fn center(&self, i: usize) -> f32 {
        -self.radius + (i as f32 + 0.5) * self.bin_width()
    }

    /// Counts per bin (all zero while only zeros were seen).
    pub(crate) fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Number of values added.
    pub(crate) fn total(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.zeros
    }

    /// Lower edge of the first bin where the cumulative count reaches `fraction` of all.
    pub(crate) fn quantile(&self, fraction: f64) -> f32 {
        let target = (fraction * self.total() as f64).ceil() as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target.max(1) {
                return -self.radius + i as f32 * self.bin_width();
            }
        }
        self.radius
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_keeps_every_count_in_the_right_place() {
        let mut h = Histogram::new();
        h.add([0.0_f32, 0.0].into_iter());
        h.add([0.5_f32, -0.25, 0.75].into_iter());
        h.add([3.0_f32].into_iter());
        assert_eq!(h.total(), 6);
        assert!(h.radius() >= 3.0);
        let mass_at = |v: f32| {
            let i = ((v + h.radius()) / h.bin_width()) as usize;
            h.counts()[i.min(BINS - 1)]
        };
        assert_eq!(mass_at(0.0), 2);
        assert_eq!(mass_at(0.5), 1);
        assert_eq!(mass_at(-0.25), 1);
        assert_eq!(mass_at(3.0), 1);
    }

    #[test]
    fn quantiles_bracket_the_data() {
        let mut h = Histogram::new();
        h.add((0..1000).map(|i| i as f32 / 1000.0));
        assert!(h.quantile(0.5) > 0.45 && h.quantile(0.5) < 0.55);
        assert!(h.quantile(1.0) <= 1.0);
    }
}
