//! Cell-centre coordinates as people write them: the one formula every output uses.
//!
//! A cell centre is `origin + (i + 0.5) * step`. Evaluated in binary floating point, a grid
//! written as short decimals (origin -10, step 0.05) gets centres such as
//! `44.275000000000006` instead of `44.275`, so coordinates printed, joined or compared as
//! text differ from what the user wrote. When the origin and the step are short decimals
//! (their shortest round-trip forms have at most [`MAX_DECIMALS`] decimal places), the
//! centre is computed exactly in integers and rounded once to the nearest double, which is
//! the double the decimal literal `44.275` parses to. Other grids (1/60 written as
//! 0.016666666666667, sizes in binary fractions) keep the plain formula.

/// Most decimal places of a "short decimal" origin or step.
pub(crate) const MAX_DECIMALS: u32 = 9;

/// Largest integer every smaller one of which a double represents exactly (2^53).
const EXACT_INT: i128 = 1 << 53;

/// The centres along one axis of a grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Axis {
    origin: f64,
    step: f64,
    /// `(2 * origin, step)` scaled by `10^k`, and `2 * 10^k`: centre `i` is
    /// `(o2 + (2i + 1) * s) / d` exactly.
    exact: Option<(i128, i128, i128)>,
}

impl Axis {
    /// The axis whose cell `i` spans `origin + i * step .. origin + (i + 1) * step`.
    pub(crate) fn new(origin: f64, step: f64) -> Axis {
        let exact = (|| {
            let (om, oe) = decimal(origin)?;
            let (sm, se) = decimal(step)?;
            let k = oe.max(se);
            let o = om.checked_mul(10i128.checked_pow(k - oe)?)?;
            let s = sm.checked_mul(10i128.checked_pow(k - se)?)?;
            Some((o.checked_mul(2)?, s, 2 * 10i128.pow(k)))
        })();
        Axis { origin, step, exact }
    }

    /// The coordinate of the centre of cell `i`.
    #[inline]
    pub(crate) fn centre(&self, i: usize) -> f64 {
        match (self.exact, self.numerator(i)) {
            // Both exact doubles: IEEE division rounds the exact quotient once, to nearest.
            (Some((_, _, d)), Some((n, _))) if n.abs() <= EXACT_INT => n as f64 / d as f64,
            (Some((_, _, d)), Some((n, _))) => nearest(n, d),
            _ => self.origin + (i as f64 + 0.5) * self.step,
        }
    }

    /// The exact numerator `o2 + (2i + 1) * s` of centre `i`, and its second term; `None`
    /// without exact decimals or on overflow.
    fn numerator(&self, i: usize) -> Option<(i128, i128)> {
        let (o2, s, _) = self.exact?;
        let t = (2 * i as i128 + 1).checked_mul(s)?;
        Some((t.checked_add(o2)?, t))
    }

    /// The same centre as a PostgreSQL expression of the integer column `index`, for views
    /// that compute coordinates: exact decimals in `numeric` (multiplication is exact there, and
    /// the cast to float8 rounds once, to nearest), else the plain formula in float8.
    pub(crate) fn sql(&self, index: &str) -> String {
        match self.exact {
            Some((o2, s, d)) => format!(
                "(({o2}::numeric + (2 * {index}::numeric + 1) * {s}::numeric) * '5e-{}'::numeric)::float8",
                (d / 2).ilog10() + 1
            ),
            None => {
                format!("'{:?}'::float8 + ({index}::float8 + '0.5'::float8) * '{:?}'::float8", self.origin, self.step)
            }
        }
    }

    /// [`Axis::sql`] for an axis of `cells` cells: when every centre's exact numerator fits
    /// 2^53 (every realistic grid), the same division [`Axis::centre`] does, in `int8` and
    /// `float8` (both operands exact doubles, so the division rounds once, to nearest): the same
    /// bits as `numeric`, about six times cheaper per row.
    pub fn sql_cells(&self, index: &str, cells: usize) -> String {
        let fits =
            |i: usize| self.numerator(i).is_some_and(|(n, t)| n.abs() <= EXACT_INT && t.abs() <= i64::MAX as i128 / 2);
        match self.exact {
            Some((o2, s, d)) if cells > 0 && fits(0) && fits(cells - 1) => {
                format!("(({o2}::int8 + (2 * {index}::int8 + 1) * {s}::int8)::float8 / '{d}'::float8)")
            }
            _ => self.sql(index),
        }
    }
}

/// The edge `n * step` of a grid aligned to multiples of `step` (gdalwarp `-tap`), exact in
/// decimal like the centres: `1201 * 0.05` is `60.05`, not `60.050000000000004`.
pub(crate) fn multiple(n: f64, step: f64) -> f64 {
    let exact = (|| {
        if n.fract() != 0.0 || n.abs() > EXACT_INT as f64 {
            return None;
        }
        let (m, k) = decimal(step)?;
        let v = (n as i128).checked_mul(m)?;
        let d = 10i128.pow(k);
        Some(if v.abs() <= EXACT_INT { v as f64 / d as f64 } else { format!("{v}e-{k}").parse().ok()? })
    })();
    exact.unwrap_or(n * step)
}

/// `v` as `m * 10^-k` with `k <= MAX_DECIMALS`, from its shortest round-trip form; `None`
/// when it needs more decimal places (or is not finite).
fn decimal(v: f64) -> Option<(i128, u32)> {
    if !v.is_finite() {
        return None;
    }
    let text = format!("{v:e}");
    let (mantissa, exp) = text.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: i128 = format!("{int}{frac}").parse().ok()?;
    // v = digits * 10^(exp - frac.len())
    let shift = exp - frac.len() as i32;
    if shift >= 0 {
        Some((digits.checked_mul(10i128.checked_pow(shift as u32)?)?, 0))
    } else {
        let k = shift.unsigned_abs();
        (k <= MAX_DECIMALS).then_some((digits, k))
    }
}

/// The double nearest `n / d`, through the decimal text of the quotient (Rust's parser
/// rounds correctly); `d` is `2 * 10^k`, so the quotient has at most `k + 1` decimals.
fn nearest(n: i128, d: i128) -> f64 {
    // n / (2 * 10^k) = 5n / 10^(k+1)
    let Some(n5) = n.checked_mul(5) else { return n as f64 / d as f64 };
    let places = (d / 2).ilog10() + 1;
    format!("{n5}e-{places}").parse().unwrap_or(n as f64 / d as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every centre of an axis equals the double of its decimal literal.
    fn check(origin: &str, step: &str, cells: usize, places: usize) {
        let (o, s): (f64, f64) = (origin.parse().unwrap(), step.parse().unwrap());
        let axis = Axis::new(o, s);
        // The exact decimal centre, from integers scaled by 10^places.
        let scale = 10i128.pow(places as u32);
        let oi = (o * scale as f64).round() as i128;
        let si = (s * scale as f64).round() as i128;
        for i in 0..cells {
            let twice = 2 * oi + (2 * i as i128 + 1) * si; // centre * 2 * 10^places
            let text = format!("{}e-{}", twice * 5, places + 1);
            let want: f64 = text.parse().unwrap();
            assert_eq!(axis.centre(i), want, "{origin} + ({i} + 0.5) * {step}: want {text}");
        }
    }

    #[test]
    fn short_decimal_grids_give_the_decimal_centres() {
        check("-180", "0.05", 7200, 3);
        check("90", "-0.05", 3600, 3);
        check("-10", "0.01", 3000, 3);
        check("60.05", "-0.01", 2605, 3);
        check("-180", "0.008983", 40076, 7);
        check("2485000", "25", 5000, 1);
        // The demo's cell: 60.05 - 315.5 * 0.05.
        assert_eq!(Axis::new(60.05, -0.05).centre(315), 44.275);
    }

    #[test]
    fn aligned_edges_are_decimal() {
        assert_eq!(multiple(1201.0, 0.05), 60.05);
        assert_ne!(1201.0 * 0.05, 60.05, "the plain product misses it");
        assert_eq!(multiple(-3600.0, 0.05), -180.0);
        assert_eq!(multiple(7.0, 0.016666666666667), 7.0 * 0.016666666666667);
        assert_eq!(multiple(0.5, 0.05), 0.5 * 0.05);
    }

    #[test]
    fn view_sql_is_int8_when_numerators_fit() {
        let a = Axis::new(-10.05, 0.05);
        assert_eq!(a.sql_cells("i", 7200), "((-2010::int8 + (2 * i::int8 + 1) * 5::int8)::float8 / '200'::float8)");
        assert_eq!(Axis::new(1e15, 0.5).sql_cells("i", 10), Axis::new(1e15, 0.5).sql("i"));
        assert!(Axis::new(0.0, 1.0 / 3.0).sql_cells("i", 10).contains("'0.5'::float8"));
    }

    #[test]
    fn other_grids_keep_the_plain_formula() {
        let sixtieth = Axis::new(-180.0, 0.016666666666667);
        assert_eq!(sixtieth.centre(17), -180.0 + 17.5 * 0.016666666666667);
        let binary = Axis::new(0.0, 1.0 / 3.0);
        assert_eq!(binary.centre(5), 5.5 * (1.0 / 3.0));
        // Huge values beyond the exact integer range go through the text form, still exact.
        let far = Axis::new(1e12, 0.5);
        assert_eq!(far.centre(3), 1_000_000_000_001.75);
        assert!(far.centre(usize::MAX).is_finite());
    }
}
