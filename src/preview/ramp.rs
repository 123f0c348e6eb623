//! Colour ramps (from the `colorous` crate, d3-scale-chromatic's perceptually uniform ones)
//! and the stretch that maps values onto them.

use crate::limits::MAX_STRETCH_SAMPLE;

/// Colours per ramp: a value is drawn as one of these steps.
pub const STEPS: usize = 256;

/// A named colour ramp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ramp {
    /// Index into [`RAMPS`] (colorous' gradients do not compare).
    index: usize,
}

/// Every ramp `--ramp` takes: the perceptually uniform sequential ones.
const RAMPS: [(&str, colorous::Gradient); 6] = [
    ("viridis", colorous::VIRIDIS),
    ("cividis", colorous::CIVIDIS),
    ("magma", colorous::MAGMA),
    ("inferno", colorous::INFERNO),
    ("plasma", colorous::PLASMA),
    ("turbo", colorous::TURBO),
];

impl Ramp {
    /// The default ramp, viridis.
    pub fn viridis() -> Ramp {
        Ramp { index: 0 }
    }

    /// The ramp called `name` (case-insensitive).
    pub fn parse(name: &str) -> Option<Ramp> {
        RAMPS.iter().position(|(n, _)| n.eq_ignore_ascii_case(name)).map(|index| Ramp { index })
    }

    /// Every ramp name, comma-separated, for messages.
    pub fn names() -> String {
        RAMPS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    }

    /// The ramp's name.
    pub fn name(&self) -> &'static str {
        RAMPS[self.index].0
    }

    /// The colour of step `i` of [`STEPS`] (0 = low end).
    pub fn step(&self, i: usize) -> [u8; 3] {
        RAMPS[self.index].1.eval_rational(i.min(STEPS - 1), STEPS).into_array()
    }

    /// Every step's colour, low to high.
    pub fn table(&self) -> Vec<[u8; 3]> {
        (0..STEPS).map(|i| self.step(i)).collect()
    }
}

/// How values are spread over the ramp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stretch {
    /// The lowest preview value is the ramp's low end, the highest its high end.
    Linear,
    /// The 2nd and 98th percentiles of the preview values are the ends; values beyond them
    /// take the end colours (one outlier no longer flattens everything else).
    Percentile,
}

impl Stretch {
    /// Parses `linear` or `percentile`.
    pub fn parse(s: &str) -> Option<Stretch> {
        match s.to_ascii_lowercase().as_str() {
            "linear" | "minmax" => Some(Stretch::Linear),
            "percentile" => Some(Stretch::Percentile),
            _ => None,
        }
    }

    /// The name, as `--stretch` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Stretch::Linear => "linear",
            Stretch::Percentile => "percentile",
        }
    }
}

/// The value range `(low, high)` the ramp spans for the preview `values` (NaN = no data);
/// `None` when no pixel has a value. Percentiles come from at most [`MAX_STRETCH_SAMPLE`]
/// values taken at an even stride, sorted; percentile `p` is the sample's element at index
/// `round(p * (n - 1))`.
pub fn range(values: &[f32], stretch: Stretch) -> Option<(f64, f64)> {
    match stretch {
        Stretch::Linear => {
            let mut it = values.iter().filter(|v| !v.is_nan()).map(|&v| f64::from(v));
            let first = it.next()?;
            Some(it.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
        }
        Stretch::Percentile => {
            let valid = values.iter().filter(|v| !v.is_nan()).count();
            if valid == 0 {
                return None;
            }
            let stride = valid.div_ceil(MAX_STRETCH_SAMPLE);
            let mut sample: Vec<f64> =
                values.iter().filter(|v| !v.is_nan()).step_by(stride).map(|&v| f64::from(v)).collect();
            sample.sort_by(f64::total_cmp);
            let at = |p: f64| sample[(p * (sample.len() - 1) as f64).round() as usize];
            Some((at(0.02), at(0.98)))
        }
    }
}

/// The ramp step of value `v` in range `(low, high)`: `round((v - low) / (high - low) * 255)`,
/// clamped; the middle step when the range is one value.
pub fn step_of(v: f64, (low, high): (f64, f64)) -> usize {
    if high <= low {
        return STEPS / 2;
    }
    let t = ((v - low) / (high - low)).clamp(0.0, 1.0);
    (t * (STEPS - 1) as f64).round() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_ranges() {
        assert_eq!(step_of(0.0, (0.0, 10.0)), 0);
        assert_eq!(step_of(10.0, (0.0, 10.0)), 255);
        assert_eq!(step_of(5.0, (0.0, 10.0)), 128);
        assert_eq!(step_of(-3.0, (0.0, 10.0)), 0);
        assert_eq!(step_of(3.0, (3.0, 3.0)), 128);
        let v: Vec<f32> = (0..=100).map(|i| i as f32).chain([f32::NAN]).collect();
        assert_eq!(range(&v, Stretch::Linear), Some((0.0, 100.0)));
        assert_eq!(range(&v, Stretch::Percentile), Some((2.0, 98.0)));
        assert_eq!(range(&[f32::NAN], Stretch::Linear), None);
    }

    #[test]
    fn ramps() {
        let r = Ramp::parse("Viridis").unwrap();
        assert_eq!(r, Ramp::viridis());
        // viridis runs from dark purple to yellow.
        assert_eq!(r.step(0), [68, 1, 84]);
        assert!(Ramp::parse("rainbow").is_none());
        assert!(Ramp::names().starts_with("viridis, "));
    }
}
