//! Drawing on the RGBA image: the coloured map, the tile overlay and the legend strip.

use super::ramp::{step_of, Ramp, STEPS};

/// Outline of a committed tile (`--tiles`).
pub const OUTLINE: [u8; 4] = [0, 0, 0, 255];
/// Hatching of a tile not committed yet (`--tiles`): a diagonal every [`HATCH_EVERY`] pixels.
pub const HATCH: [u8; 4] = [160, 160, 160, 255];
/// Hatch spacing: pixel `(x, y)` of an uncommitted tile is hatched when `(x + y) %
/// HATCH_EVERY == 0`.
pub const HATCH_EVERY: usize = 6;
/// Outline of a tile whose load failed (`--tiles --database-url`); its inside is tinted red.
pub const FAILED: [u8; 4] = [255, 0, 0, 255];
/// Height of the legend strip under the map, in pixels.
pub const LEGEND_HEIGHT: usize = 24;
/// Legend background.
const PAPER: [u8; 4] = [255, 255, 255, 255];
/// Legend text.
const INK: [u8; 4] = [0, 0, 0, 255];

/// What `--tiles` draws for one tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileState {
    /// Committed (and loaded, when a database was asked): outlined.
    Committed,
    /// Not committed yet: hatched.
    Uncommitted,
    /// Committed, but the load ledger does not hold it with its checksum: red.
    Failed,
}

/// An RGBA image, row-major, 4 bytes a pixel.
#[derive(Debug)]
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 4` bytes.
    pub rgba: Vec<u8>,
}

impl Image {
    /// A transparent image.
    pub fn new(width: usize, height: usize) -> Image {
        Image { width, height, rgba: vec![0; width * height * 4] }
    }

    /// Sets pixel `(x, y)` when it is inside the image.
    #[inline]
    pub fn put(&mut self, x: usize, y: usize, c: [u8; 4]) {
        if x < self.width && y < self.height {
            let i = (y * self.width + x) * 4;
            self.rgba[i..i + 4].copy_from_slice(&c);
        }
    }

    fn get(&self, x: usize, y: usize) -> [u8; 4] {
        let i = (y * self.width + x) * 4;
        [self.rgba[i], self.rgba[i + 1], self.rgba[i + 2], self.rgba[i + 3]]
    }

    /// Colours the top `values.len() / width` rows from the pixel values (NaN stays
    /// transparent) through `ramp` over `range`.
    pub fn paint(&mut self, values: &[f32], ramp: &Ramp, range: (f64, f64)) {
        let table = ramp.table();
        for (i, &v) in values.iter().enumerate() {
            if !v.is_nan() {
                let [r, g, b] = table[step_of(f64::from(v), range)];
                self.put(i % self.width, i / self.width, [r, g, b, 255]);
            }
        }
    }

    /// Draws one tile covering pixels `[x0, x1) x [y0, y1)` in `state`.
    pub fn tile(&mut self, (x0, x1): (usize, usize), (y0, y1): (usize, usize), state: TileState) {
        let (x1, y1) = (x1.max(x0 + 1), y1.max(y0 + 1));
        match state {
            TileState::Committed => self.outline((x0, x1), (y0, y1), OUTLINE),
            TileState::Uncommitted => {
                for y in y0..y1.min(self.height) {
                    for x in x0..x1.min(self.width) {
                        if (x + y) % HATCH_EVERY == 0 {
                            self.put(x, y, HATCH);
                        }
                    }
                }
            }
            TileState::Failed => {
                for y in y0..y1.min(self.height) {
                    for x in x0..x1.min(self.width) {
                        let [r, g, b, a] = self.get(x, y);
                        // Half red over the data; transparent cells become half-opaque red.
                        let tint = if a == 0 {
                            [255, 0, 0, 128]
                        } else {
                            [((u16::from(r) + 255) / 2) as u8, g / 2, b / 2, a.max(128)]
                        };
                        self.put(x, y, tint);
                    }
                }
                self.outline((x0, x1), (y0, y1), FAILED);
            }
        }
    }

    fn outline(&mut self, (x0, x1): (usize, usize), (y0, y1): (usize, usize), c: [u8; 4]) {
        for x in x0..x1 {
            self.put(x, y0, c);
            self.put(x, y1 - 1, c);
        }
        for y in y0..y1 {
            self.put(x0, y, c);
            self.put(x1 - 1, y, c);
        }
    }

    /// Draws the legend strip in the bottom [`LEGEND_HEIGHT`] rows: the ramp from left to
    /// right, and the low and high values under its ends.
    pub fn legend(&mut self, top: usize, ramp: &Ramp, low: &str, high: &str) {
        self.rgba[top * self.width * 4..].chunks_exact_mut(4).for_each(|p| p.copy_from_slice(&PAPER));
        let (left, right) = (2, self.width.saturating_sub(2));
        let span = right.saturating_sub(left).max(2) - 1;
        for x in left..right {
            let [r, g, b] = ramp.step((x - left) * (STEPS - 1) / span);
            for y in top + 3..top + 11 {
                self.put(x, y, [r, g, b, 255]);
            }
        }
        let y = top + 14;
        self.text(left, y, low);
        let w = text_width(high);
        if right >= w && right - w > left + text_width(low) {
            self.text(right - w, y, high);
        }
    }

    fn text(&mut self, x: usize, y: usize, s: &str) {
        for (i, ch) in s.chars().enumerate() {
            let rows = glyph(ch);
            for (dy, bits) in rows.iter().enumerate() {
                for dx in 0..5 {
                    if bits & (0b10000 >> dx) != 0 {
                        self.put(x + i * 6 + dx, y + dy, INK);
                    }
                }
            }
        }
    }
}

/// Width in pixels of `s` in the legend's 5x7 font (6 px a character).
fn text_width(s: &str) -> usize {
    s.chars().count() * 6
}

/// The 5x7 bitmap of a legend character (numbers only need these); blank for others.
fn glyph(c: char) -> [u8; 7] {
    match c {
        '0' => [0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110],
        '1' => [0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
        '2' => [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111],
        '3' => [0b11110, 0b00001, 0b00001, 0b01110, 0b00001, 0b00001, 0b11110],
        '4' => [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010],
        '5' => [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110],
        '6' => [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110],
        '7' => [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000],
        '8' => [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110],
        '9' => [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100],
        '.' => [0, 0, 0, 0, 0, 0b01100, 0b01100],
        '-' => [0, 0, 0, 0b11111, 0, 0, 0],
        '+' => [0, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0],
        'e' => [0, 0, 0b01110, 0b10001, 0b11111, 0b10000, 0b01110],
        _ => [0; 7],
    }
}

/// A legend label for `v`: up to 4 significant digits, plain or with an exponent.
pub fn label(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        let s = format!("{v:.2e}");
        // "1.50e6" -> "1.5e6".
        s.split_once('e').map_or_else(|| s.clone(), |(m, e)| format!("{}e{e}", trim(m)))
    } else {
        let decimals = match a {
            _ if a >= 1000.0 => 0,
            _ if a >= 10.0 => 2,
            _ => 3,
        };
        trim(&format!("{v:.decimals$}"))
    }
}

fn trim(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(label(0.0), "0");
        assert_eq!(label(812.0), "812");
        assert_eq!(label(12.345), "12.35");
        assert_eq!(label(-3.5), "-3.5");
        assert_eq!(label(123456.0), "123456");
        assert_eq!(label(2.5e7), "2.5e7");
        assert_eq!(label(1.0e-5), "1e-5");
    }

    #[test]
    fn overlay_states() {
        let mut im = Image::new(12, 12);
        im.tile((0, 6), (0, 6), TileState::Committed);
        im.tile((6, 12), (0, 6), TileState::Uncommitted);
        im.tile((0, 6), (6, 12), TileState::Failed);
        assert_eq!(im.get(0, 0), OUTLINE);
        assert_eq!(im.get(5, 3), OUTLINE);
        assert_eq!(im.get(2, 2), [0, 0, 0, 0]);
        assert_eq!(im.get(6, 0), HATCH);
        assert_eq!(im.get(7, 0), [0, 0, 0, 0]);
        assert_eq!(im.get(0, 6), FAILED);
        assert_eq!(im.get(2, 8), [255, 0, 0, 128]);
    }
}
