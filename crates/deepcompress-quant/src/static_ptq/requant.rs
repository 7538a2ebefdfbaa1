//! Integer requantization: an i32/i64 accumulator times a real multiplier, as a Q31
//! fixed-point product and a rounding shift (the gemmlowp / TF-Lite scheme), so the
//! integer path needs no float arithmetic per output.

use crate::error::{QuantError, Result};

/// `m = mantissa · 2^(exponent - 31)` with the mantissa in `[2^30, 2^31)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Requant {
    mantissa: i64,
    exponent: i32,
}

impl Requant {
    /// The fixed-point form of a positive multiplier (`s_in · s_w / s_out`).
    pub(crate) fn new(m: f64) -> Result<Self> {
        if !(m.is_finite() && m > 0.0 && m < (1u64 << 30) as f64) {
            return Err(QuantError::param("requantization multiplier", m, "must be in (0, 2^30)"));
        }
        let mut exponent = m.log2().floor() as i32 + 1;
        let mut frac = m / 2f64.powi(exponent);
        // log2 can be off by one ulp near powers of two.
        if frac >= 1.0 {
            frac /= 2.0;
            exponent += 1;
        } else if frac < 0.5 {
            frac *= 2.0;
            exponent -= 1;
        }
        let mut mantissa = (frac * (1u64 << 31) as f64).round() as i64;
        if mantissa == 1 << 31 {
            mantissa = 1 << 30;
            exponent += 1;
        }
        Ok(Self { mantissa, exponent })
    }

    /// `round(v · m)`, ties toward +∞.
    pub(crate) fn apply(&self, v: i64) -> i64 {
        let shift = 31 - self.exponent;
        // An accumulator within i32 times a 31-bit mantissa fits in i64 with room for the
        // rounding bit: the same exact result without 128-bit arithmetic (the common case).
        if (1..=62).contains(&shift) && i32::try_from(v).is_ok() {
            let p = v * self.mantissa;
            return (p + (1i64 << (shift - 1))) >> shift;
        }
        let p = v as i128 * self.mantissa as i128;
        if shift <= 0 {
            return (p << (-shift)) as i64;
        }
        if shift > 100 {
            return 0;
        }
        ((p + (1i128 << (shift - 1))) >> shift) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_matches_real_rounding() {
        for &m in &[1e-6, 0.000_123_4, 0.25, 0.5, 0.999_999, 1.0, 1.5, 3.0, 1000.0] {
            let r = Requant::new(m).unwrap();
            for v in [-1_000_000i64, -12345, -3, -1, 0, 1, 2, 7, 99_999, 2_000_000_000] {
                let want = v as f64 * m;
                let got = r.apply(v) as f64;
                assert!(
                    (got - want).abs() <= 0.5 + want.abs() * 1e-9,
                    "m {m} v {v}: {got} vs {want}"
                );
            }
        }
        assert!(Requant::new(0.0).is_err() && Requant::new(f64::NAN).is_err());
    }

    #[test]
    fn the_i64_path_equals_the_i128_one() {
        // Both sides of the i32 limit and every shift the fast path takes.
        let wide = |r: &Requant, v: i64| {
            let p = v as i128 * r.mantissa as i128;
            let shift = 31 - r.exponent;
            ((p + (1i128 << (shift - 1))) >> shift) as i64
        };
        for e in -31..=30 {
            let r = Requant::new(0.75 * 2f64.powi(e)).unwrap();
            for v in
                [i32::MIN as i64, -1_234_567_891, -2, -1, 0, 1, 3, 987_654_321, i32::MAX as i64]
            {
                assert_eq!(r.apply(v), wide(&r, v), "2^{e}, v {v}");
            }
        }
    }
}
