//! The embedded fonts: Noto Serif Regular and Bold, subset once to the characters Countersign
//! promises to print (`scripts/subset-fonts.sh`; licence in `assets/fonts/OFL.txt`).
//!
//! Why a prepared subset: it keeps every PDF small (~15 KB per face, compressed) and rendering
//! fast (no per-document subsetting), and it makes the supported character set a fact of the
//! shipped files rather than of the machine. The intake parser asks [`printable`] about every
//! character, so nothing the font cannot show ever reaches a PDF as `?`.

use std::sync::LazyLock;

const REGULAR_TTF: &[u8] = include_bytes!("../../assets/fonts/NotoSerif-Regular-subset.ttf");
const BOLD_TTF: &[u8] = include_bytes!("../../assets/fonts/NotoSerif-Bold-subset.ttf");

/// Which face.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Face {
    Regular,
    Bold,
}

/// A face with fast advance-width and glyph tables, and the metrics a PDF font descriptor
/// names. Parsed once per process with `ttf-parser` (no allocation-heavy font model needed:
/// the file is embedded whole, see [`crate::render::pdf`]).
pub struct Font {
    /// The TrueType program, embedded whole in every PDF.
    pub bytes: &'static [u8],
    /// The PostScript name the PDF gives the face (`/BaseFont`).
    pub name: &'static str,
    units_per_em: f32,
    /// Ascender, descender and cap height in font units.
    pub ascent: i16,
    pub descent: i16,
    pub cap_height: i16,
    /// The font's bounding box in font units: x min, y min, x max, y max.
    pub bbox: [i16; 4],
    /// Advance widths in font units for U+0000..U+0180, 0 where the font has no glyph.
    low: [u16; 0x180],
    /// Advance widths above U+0180, sorted by code point.
    high: Vec<(u32, u16)>,
    /// Glyph ids, same layout as the widths (0 = none).
    low_gid: [u16; 0x180],
    high_gid: Vec<(u32, u16)>,
    /// Advance width in font units by glyph id.
    gid_width: Vec<u16>,
}

impl Font {
    fn load(bytes: &'static [u8], name: &'static str) -> Font {
        // The bytes are compiled in and covered by a unit test, so a parse failure is a
        // build defect, not an input error.
        let face = ttf_parser::Face::parse(bytes, 0).expect("embedded font parses");
        let mut low = [0u16; 0x180];
        let mut low_gid = [0u16; 0x180];
        let mut high = Vec::new();
        let mut high_gid = Vec::new();
        let mut gid_width = vec![0u16; usize::from(face.number_of_glyphs())];
        let mut cps = Vec::new();
        if let Some(cmap) = face.tables().cmap {
            for sub in cmap.subtables.into_iter().filter(|s| s.is_unicode()) {
                sub.codepoints(|cp| cps.push(cp));
            }
        }
        cps.sort_unstable();
        cps.dedup();
        for cp in cps {
            let Some(gid) = char::from_u32(cp).and_then(|c| face.glyph_index(c)) else { continue };
            let w = face.glyph_hor_advance(gid).unwrap_or(0).max(1);
            if let Some(slot) = gid_width.get_mut(usize::from(gid.0)) {
                *slot = w;
            }
            match usize::try_from(cp) {
                Ok(i) if i < low.len() => {
                    low[i] = w;
                    low_gid[i] = gid.0;
                }
                _ => {
                    high.push((cp, w));
                    high_gid.push((cp, gid.0));
                }
            }
        }
        let b = face.global_bounding_box();
        Font {
            bytes,
            name,
            units_per_em: f32::from(face.units_per_em().max(1)),
            ascent: face.ascender(),
            descent: face.descender(),
            cap_height: face.capital_height().unwrap_or(face.ascender()),
            bbox: [b.x_min, b.y_min, b.x_max, b.y_max],
            low,
            high,
            low_gid,
            high_gid,
            gid_width,
        }
    }

    /// A glyph's advance in thousandths of an em (PDF glyph space), rounded.
    pub fn pdf_width(&self, gid: u16) -> u32 {
        let w = self.gid_width.get(usize::from(gid)).copied().unwrap_or(0);
        (f32::from(w) * 1000.0 / self.units_per_em).round() as u32
    }

    /// A font-unit measure in thousandths of an em.
    pub fn pdf_units(&self, v: i16) -> i32 {
        (f32::from(v) * 1000.0 / self.units_per_em).round() as i32
    }

    fn advance_units(&self, c: char) -> Option<u16> {
        let cp = c as u32;
        if cp < 0x180 {
            let w = self.low[cp as usize];
            (w != 0).then_some(w)
        } else {
            self.high.binary_search_by_key(&cp, |&(k, _)| k).ok().map(|i| self.high[i].1)
        }
    }

    /// Width of `text` at `size` points. Characters outside the font (which the intake parser
    /// never lets through) count as an em, so layout stays safe even so.
    pub fn width(&self, text: &str, size: f32) -> f32 {
        let units: u32 = text.chars().map(|c| u32::from(self.advance_units(c).unwrap_or(1000))).sum();
        units as f32 * size / self.units_per_em
    }

    /// The glyph id of `c` in the embedded font (which is embedded whole, so ids are stable).
    pub fn glyph(&self, c: char) -> Option<u16> {
        let cp = c as u32;
        let g = if cp < 0x180 {
            self.low_gid[cp as usize]
        } else {
            self.high_gid.binary_search_by_key(&cp, |&(k, _)| k).ok().map_or(0, |i| self.high_gid[i].1)
        };
        (g != 0).then_some(g)
    }

    pub fn has(&self, c: char) -> bool {
        self.advance_units(c).is_some()
    }
}

/// Both faces, parsed once per process.
pub struct Fonts {
    pub regular: Font,
    pub bold: Font,
}

impl Fonts {
    pub fn get(&self, face: Face) -> &Font {
        match face {
            Face::Regular => &self.regular,
            Face::Bold => &self.bold,
        }
    }
}

static FONTS: LazyLock<Fonts> = LazyLock::new(|| Fonts {
    regular: Font::load(REGULAR_TTF, "NotoSerif-Regular"),
    bold: Font::load(BOLD_TTF, "NotoSerif-Bold"),
});

pub fn fonts() -> &'static Fonts {
    &FONTS
}

/// Whether the document font can print `c` (both faces; control characters never).
pub fn printable(c: char) -> bool {
    !c.is_control() && fonts().regular.has(c) && fonts().bold.has(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_faces_cover_the_promised_character_set() {
        let promised = (0x20u32..0x7f)
            .chain(0xa0..0x180)
            .chain([0x218, 0x219, 0x21a, 0x21b, 0x2013, 0x2014, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2026]);
        for cp in promised {
            let c = char::from_u32(cp).expect("valid scalar");
            assert!(printable(c), "U+{cp:04X} {c} must be printable");
        }
        for c in ['☃', '\u{7}', '中', '😀'] {
            assert!(!printable(c), "{c:?} must not be printable");
        }
    }

    #[test]
    fn widths_are_positive_and_scale_with_size() {
        let f = &fonts().regular;
        let w10 = f.width("Zoë Ångström", 10.0);
        assert!(w10 > 30.0 && w10 < 90.0, "{w10}");
        assert!((f.width("Zoë Ångström", 20.0) - 2.0 * w10).abs() < 0.01);
        assert!(fonts().bold.width("Business", 10.0) > f.width("Business", 10.0) * 0.99);
    }
}
