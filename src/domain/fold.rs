//! Text folded for search and sorting, one rule for the archive and the vendor register:
//! `Éclair` → `eclair`, `Ærø Médical ŁÓDŹ` → `aero medical lodz`.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lowercase and strip accents: NFD, drop combining marks, and map the letters that do not
/// decompose (`ß`→`ss`, `ø`→`o`, `ł`→`l`, `đ`→`d`, `æ`→`ae`, `œ`→`oe`, `ı`→`i`).
pub fn fold(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    // ASCII runs are lowercased as bytes; only the runs between them go through NFD. That is
    // exact: an ASCII character decomposes to itself and is a starter (combining class 0), so
    // canonical reordering never moves anything across it, and NFD of the whole is the runs'
    // NFDs end to end. Most names are ASCII but for a letter or two (`Núñez`).
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        let ascii = rest.bytes().position(|b| !b.is_ascii()).unwrap_or(rest.len());
        let (head, tail) = rest.split_at(ascii);
        out.extend(head.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        let other = tail.bytes().position(|b| b.is_ascii()).unwrap_or(tail.len());
        let (run, tail) = tail.split_at(other);
        fold_nfd(run, &mut out);
        rest = tail;
    }
    out
}

/// [`fold`] of any text, through NFD, onto `out`.
fn fold_nfd(s: &str, out: &mut String) {
    for c in s.nfd() {
        // Lowercasing may itself decompose (`İ` → `i` + U+0307), so marks are dropped after it.
        for l in c.to_lowercase() {
            if is_combining_mark(l) {
                continue;
            }
            match l {
                'ß' => out.push_str("ss"),
                'ø' => out.push('o'),
                'ł' => out.push('l'),
                'đ' => out.push('d'),
                'æ' => out.push_str("ae"),
                'œ' => out.push_str("oe"),
                'ı' => out.push('i'),
                _ => out.push(l),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fold;

    #[test]
    fn folding_lowercases_strips_marks_and_maps_letters_that_do_not_decompose() {
        assert_eq!(fold("Ærø Médical ŁÓDŹ"), "aero medical lodz");
        assert_eq!(fold("Straße Øster İstanbul"), "strasse oster istanbul");
        assert_eq!(fold("PLAIN ascii"), "plain ascii");
    }

    /// The whole text through NFD: what [`fold`] gives by runs.
    fn fold_whole(s: &str) -> String {
        let mut out = String::new();
        super::fold_nfd(s, &mut out);
        out
    }

    #[test]
    fn folding_by_ascii_runs_equals_folding_the_whole_text() {
        // Marks before, after and between ASCII letters, out of canonical order, stacked; letters
        // whose lowercase decomposes; Hangul and other scripts.
        for s in [
            "Nu\u{301}n\u{303}ez",
            "\u{301}a\u{323}\u{301}b",
            "e\u{301}\u{323}x\u{323}\u{301}",
            "İSTANBUL ı",
            "한국 Clinic ñ",
            "ǅemal ﬁ Ǆ",
            "a\u{0345}\u{0301}",
            "Ωmega ΣΑΣ",
        ] {
            assert_eq!(fold(s), fold_whole(s), "{s:?}");
        }
        use proptest::prelude::*;
        let pieces = prop::sample::select(vec![
            "a", "Z", " ", "-", "\u{301}", "\u{323}", "\u{345}", "\u{308}", "é", "É", "ñ", "ß", "İ", "ı", "Ø", "Æ",
            "ǅ", "한", "Ω", "ς", "\u{1100}", "\u{1161}", "ﬁ", "\u{0f71}", "\u{0f72}", "x",
        ]);
        proptest!(ProptestConfig::with_cases(2000), |(parts in prop::collection::vec(pieces, 0..24))| {
            let s: String = parts.concat();
            prop_assert_eq!(fold(&s), fold_whole(&s));
        });
    }
}
