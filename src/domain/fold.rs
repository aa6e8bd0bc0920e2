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
    let mut out = String::with_capacity(s.len());
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
    out
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
}
