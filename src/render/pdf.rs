//! Pages → PDF bytes, written directly.
//!
//! The writer knows the one shape of document Countersign makes, so it writes it in one pass
//! without an intermediate object model: a catalog, a page tree, an info dictionary, both faces
//! as Type0/Identity-H fonts (the TrueType program embedded whole, widths and a ToUnicode map
//! for exactly the glyphs used), then per page a content stream, then the cross-reference
//! table. Text is shown as big-endian glyph ids; the ToUnicode map makes it searchable and
//! copyable. (Until November 2026 this went through printpdf and lopdf: translating operations
//! and building lopdf's object map was most of the render time, and the two crates were a third
//! of the dependency tree. lopdf stays for reading PDFs: `pdf::append`, the seal.)
//!
//! Deterministic by construction: object numbers, font resource names (`F1`, `F2`) and the order
//! of everything are fixed, dates come from the intake, and the trailer `/ID` is a digest of
//! what the document shows. The same intake gives the same bytes in any process.

use std::fmt::Write as _;

use super::fonts::{Face, Font, Fonts};
use super::layout::{MARGIN, PAGE_H, PAGE_W, Page, Rule};
use super::shelf::Shelf;

/// Document-level facts the writer needs.
pub struct Meta<'a> {
    pub title: &'a str,
    pub subject: &'a str,
    pub author: &'a str,
    pub keywords: Vec<String>,
    /// Unix seconds for CreationDate/ModDate.
    pub date_unix: i64,
    /// Left header text (the agreement title).
    pub header: &'a str,
    /// Right header text (`Version 1` or the draft mark).
    pub header_right: &'a str,
    pub draft: bool,
    /// Bytes for the trailer `/ID`: a digest of everything the document shows.
    pub id: [u8; 16],
}

const GRAY: f32 = 0.42;
/// Object numbers: the fixed objects, then five per face, then two per page.
const CATALOG: usize = 1;
const PAGES: usize = 2;
const INFO: usize = 3;
const RESOURCES: usize = 4;
const FIRST_FONT: usize = 5;
const PER_FACE: usize = 5;
const FIRST_PAGE: usize = FIRST_FONT + 2 * PER_FACE;

/// Writes the PDF with the faces named `F1` (regular) and `F2` (bold).
/// Bytes for a trailer `/ID`: the first 16 bytes of SHA-256 over `parts` in order, so the same
/// inputs always give the same bytes. Every PDF Countersign writes or appends to takes its `/ID`
/// (or the revision part of it) from here.
pub fn id_of(parts: &[&[u8]]) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in parts {
        h.update(part);
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&h.finalize()[..16]);
    id
}

pub fn write(fonts: &Fonts, pages: &[Page], meta: &Meta) -> Vec<u8> {
    write_named(fonts, pages, meta, ["F1", "F2"])
}

/// [`write`] with other resource names for the two faces (tests of `pdf::append` use clashing
/// names on purpose).
pub fn write_named(fonts: &Fonts, pages: &[Page], meta: &Meta, names: [&str; 2]) -> Vec<u8> {
    write_with(fonts, pages, meta, names, (&PAGES_KEPT, &STREAMS))
}

fn write_with(
    fonts: &Fonts,
    pages: &[Page],
    meta: &Meta,
    names: [&str; 2],
    caches: (&PageCache, &StreamCache),
) -> Vec<u8> {
    let (kept, streams) = caches;
    let mut used = [Used::default(), Used::default()];
    // The process's own fonts get their tables once; any other font set (tests) its own.
    static BUILTIN: std::sync::LazyLock<[AsciiTable; 2]> = std::sync::LazyLock::new(|| {
        let f = super::fonts::fonts();
        [AsciiTable::new(&f.regular), AsciiTable::new(&f.bold)]
    });
    let own;
    let ascii: &[AsciiTable; 2] = if std::ptr::eq(fonts, super::fonts::fonts()) {
        &BUILTIN
    } else {
        own = [AsciiTable::new(&fonts.regular), AsciiTable::new(&fonts.bold)];
        &own
    };
    let total = pages.len();
    let contents: Vec<Shared> = pages
        .iter()
        .enumerate()
        .map(|(i, page)| {
            let number = i + 1;
            let crc = page_crc(page, number, total, meta, names);
            let entry = match kept.find(crc, |e| e.same(fonts, page, number, total, meta, names)) {
                Some(hit) => hit,
                None => {
                    // The page's own glyph table, so that the entry can say which glyphs it shows.
                    let mut own = [Used::default(), Used::default()];
                    let mut pen =
                        Pen { out: Vec::with_capacity(8 * 1024), fonts, names, used: &mut own, ascii, cur: None };
                    page_content(&mut pen, pages, number, meta);
                    let entry = std::sync::Arc::new(PageEntry {
                        fonts: fonts as *const Fonts as usize,
                        page: page.clone(),
                        number,
                        total,
                        header: meta.header.to_string(),
                        header_right: meta.header_right.to_string(),
                        draft: meta.draft,
                        names: names.map(str::to_string),
                        stream: deflate(&pen.out, flate2::Compression::fast()).into(),
                        glyphs: own.map(|u| u.iter().collect()),
                    });
                    kept.put(crc, entry.clone(), entry.cost());
                    entry
                }
            };
            // Page by page, the first character seen for a glyph wins: the same map as marking
            // every character of the document in order.
            for (slot, glyphs) in entry.glyphs.iter().enumerate() {
                for &(gid, c) in glyphs {
                    used[slot].mark(gid, c);
                }
            }
            entry.stream.clone()
        })
        .collect();

    let mut w = Writer::new(FIRST_PAGE - 1 + 2 * pages.len());
    // 1.3 is enough for what the writer uses (Type0 fonts, Flate); the seal raises the
    // catalog's /Version when it adds what needs more.
    w.out.extend_from_slice(b"%PDF-1.3\n%\xe2\xe3\xcf\xd3\n");

    w.begin(CATALOG);
    let _ = write!(w.text, "<< /Type /Catalog /Pages {PAGES} 0 R >>");
    w.end_dict();

    w.begin(PAGES);
    w.text.push_str("<< /Type /Pages /Kids [");
    for i in 0..pages.len() {
        let _ = write!(w.text, "{} 0 R ", FIRST_PAGE + 2 * i);
    }
    let _ = write!(w.text, "] /Count {} >>", pages.len());
    w.end_dict();

    w.begin(INFO);
    info(&mut w.text, meta);
    w.end_dict();

    w.begin(RESOURCES);
    let _ = write!(
        w.text,
        "<< /Font << /{} {} 0 R /{} {} 0 R >> /ProcSet [/PDF /Text] >>",
        names[0],
        FIRST_FONT,
        names[1],
        FIRST_FONT + PER_FACE
    );
    w.end_dict();

    for (slot, (font, packed)) in [(&fonts.regular, &PACKED[0]), (&fonts.bold, &PACKED[1])].into_iter().enumerate() {
        embed(&mut w, FIRST_FONT + slot * PER_FACE, font, packed, &used[slot], streams);
    }

    let (wd, ht) = (num(PAGE_W), num(PAGE_H));
    for (i, content) in contents.iter().enumerate() {
        let (page, stream) = (FIRST_PAGE + 2 * i, FIRST_PAGE + 2 * i + 1);
        w.begin(page);
        let _ = write!(
            w.text,
            "<< /Type /Page /Parent {PAGES} 0 R /MediaBox [0 0 {wd} {ht}] /Resources {RESOURCES} 0 R /Contents {stream} 0 R >>"
        );
        w.end_dict();
        w.stream(stream, "/Filter /FlateDecode", content);
    }
    w.finish(&meta.id)
}

/// Glyphs a face shows: glyph id → the first character seen for it (for ToUnicode), as a
/// table indexed by glyph id because this runs for every character.
#[derive(Default)]
struct Used {
    by_gid: Vec<Option<char>>,
    /// The ASCII characters already marked, one bit each (checked for every character shown).
    ascii: u128,
}

impl Used {
    fn mark(&mut self, gid: u16, c: char) {
        let i = usize::from(gid);
        if i >= self.by_gid.len() {
            self.by_gid.resize(i + 1, None);
        }
        self.by_gid[i].get_or_insert(c);
    }

    fn iter(&self) -> impl Iterator<Item = (u16, char)> + '_ {
        self.by_gid.iter().enumerate().filter_map(|(g, c)| Some((u16::try_from(g).ok()?, (*c)?)))
    }
}

/// Writes one page's operators, setting the font only when it changes and noting the glyphs.
struct Pen<'a> {
    out: Vec<u8>,
    fonts: &'a Fonts,
    names: [&'a str; 2],
    used: &'a mut [Used; 2],
    ascii: &'a [AsciiTable; 2],
    cur: Option<(Face, f32)>,
}

impl Pen<'_> {
    fn op(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
        self.out.push(b'\n');
    }

    fn nums(&mut self, vs: &[f32], op: &str) {
        for v in vs {
            push_num(&mut self.out, *v);
            self.out.push(b' ');
        }
        self.op(op);
    }

    fn font(&mut self, face: Face, size: f32) {
        if self.cur != Some((face, size)) {
            let name = self.names[slot(face)];
            self.out.push(b'/');
            self.out.extend_from_slice(name.as_bytes());
            self.out.push(b' ');
            self.nums(&[size], "Tf");
            self.cur = Some((face, size));
        }
    }

    /// `text` at (x, y) as a literal string of glyph ids.
    fn text(&mut self, x: f32, y: f32, face: Face, size: f32, text: &str) {
        self.font(face, size);
        self.nums(&[1.0, 0.0, 0.0, 1.0, x, y], "Tm");
        self.show(face, text);
    }

    fn show(&mut self, face: Face, text: &str) {
        let font = self.fonts.get(face);
        let ascii = &self.ascii[slot(face)];
        let used = &mut self.used[slot(face)];
        self.out.reserve(4 * text.len() + 8);
        self.out.push(b'(');
        let mut rest = text;
        while !rest.is_empty() {
            // ASCII, nearly all of the text, from the per-document table: no decoding, no
            // escaping decisions per character.
            let n = rest.bytes().position(|b| !b.is_ascii()).unwrap_or(rest.len());
            let start = self.out.len();
            // Room for the longest encoding of each byte, written four bytes at a time at fixed
            // offsets; what was not used is cut off after.
            self.out.resize(start + 4 * n + 4, 0);
            let mut w = start;
            for &b in &rest.as_bytes()[..n] {
                let b = b & 0x7f;
                let e = &ascii.0[usize::from(b)];
                if let Some(slot) = self.out.get_mut(w..w + 4) {
                    slot.copy_from_slice(&e.bytes);
                }
                w += usize::from(e.len);
                if used.ascii & (1 << b) == 0 {
                    used.ascii |= 1 << b;
                    if e.gid != 0 {
                        used.mark(e.gid, char::from(b));
                    }
                }
            }
            self.out.truncate(w);
            rest = &rest[n..];
            let Some(c) = rest.chars().next() else { break };
            rest = &rest[c.len_utf8()..];
            // The intake parser admits only printable characters; anything else shows as .notdef.
            let g = font.glyph(c).unwrap_or(0);
            if g != 0 {
                used.mark(g, c);
            }
            escape_glyph(&mut self.out, g);
        }
        self.out.extend_from_slice(b") Tj\n");
    }

    fn stroke(&mut self, points: &[(f32, f32)], closed: bool) {
        for (i, &(x, y)) in points.iter().enumerate() {
            self.nums(&[x, y], if i == 0 { "m" } else { "l" });
        }
        self.op(if closed { "h S" } else { "S" });
    }
}

/// A glyph id as two bytes of a literal string, escaped where PDF syntax needs it.
fn escape_glyph(out: &mut Vec<u8>, gid: u16) {
    for b in gid.to_be_bytes() {
        match b {
            b'(' | b')' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            // An end of line inside a literal string reads back as \n: escape both.
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// One ASCII character as a face shows it: its glyph id and the escaped bytes of the id.
#[derive(Clone, Copy, Default)]
struct Encoded {
    gid: u16,
    bytes: [u8; 4],
    len: u8,
}

/// [`Encoded`] for each of the 128 ASCII characters of one face, made once per document.
struct AsciiTable([Encoded; 128]);

impl AsciiTable {
    fn new(font: &Font) -> AsciiTable {
        let mut table = [Encoded::default(); 128];
        for (b, e) in (0u8..128).zip(table.iter_mut()) {
            let gid = font.glyph(char::from(b)).unwrap_or(0);
            let mut out = Vec::with_capacity(4);
            escape_glyph(&mut out, gid);
            e.gid = gid;
            e.len = out.len() as u8;
            e.bytes[..out.len()].copy_from_slice(&out);
        }
        AsciiTable(table)
    }
}

fn slot(face: Face) -> usize {
    match face {
        Face::Regular => 0,
        Face::Bold => 1,
    }
}

fn page_content(pen: &mut Pen, pages: &[Page], number: usize, meta: &Meta) {
    let page = &pages[number - 1];
    let fonts = pen.fonts;

    if meta.draft {
        // A light diagonal watermark, drawn first so text sits on top of it.
        pen.op("BT");
        pen.nums(&[0.88], "g");
        pen.font(Face::Bold, 110.0);
        let w = fonts.bold.width("DRAFT", 110.0);
        let (c, s) = (std::f32::consts::FRAC_1_SQRT_2, std::f32::consts::FRAC_1_SQRT_2);
        let (cx, cy) = (PAGE_W / 2.0, PAGE_H / 2.0);
        let (x, y) = (cx - (w / 2.0) * c + 38.0 * s, cy - (w / 2.0) * s - 38.0 * c);
        // Four decimals for the rotation: two would skew the mark visibly.
        for v in [c, s, -s, c] {
            pen.out.extend_from_slice(format!("{v:.4} ").as_bytes());
        }
        pen.nums(&[x, y], "Tm");
        pen.show(Face::Bold, "DRAFT");
        pen.op("ET");
        pen.cur = None;
    }

    pen.op("BT");
    // Header and footer.
    pen.nums(&[GRAY], "g");
    pen.text(MARGIN, PAGE_H - 44.0, Face::Regular, 8.0, meta.header);
    let rw = fonts.get(Face::Bold).width(meta.header_right, 8.0);
    pen.text(PAGE_W - MARGIN - rw, PAGE_H - 44.0, Face::Bold, 8.0, meta.header_right);
    let footer = format!("Page {number} of {}", pages.len());
    let fw = fonts.regular.width(&footer, 8.0);
    pen.text((PAGE_W - fw) / 2.0, 40.0, Face::Regular, 8.0, &footer);

    // Body text.
    let mut gray = true;
    for (y, line) in &page.lines {
        for span in &line.spans {
            if span.gray != gray {
                pen.nums(&[if span.gray { GRAY } else { 0.0 }], "g");
                gray = span.gray;
            }
            pen.text(MARGIN + span.x, *y, span.face, span.size, span.text.trim_end());
        }
    }
    pen.op("ET");

    // Rules and frames.
    pen.op("0 G 0.6 w");
    for (y, line) in &page.lines {
        for rule in &line.rules {
            match *rule {
                Rule::Underline { x1, x2 } => pen.stroke(&[(MARGIN + x1, y - 2.0), (MARGIN + x2, y - 2.0)], false),
                // A filled rectangle from the baseline up (the vendor report's bar charts).
                Rule::Bar { x1, x2, height } => {
                    pen.nums(&[0.2, 0.36, 0.6], "rg");
                    pen.nums(&[MARGIN + x1, *y, x2 - x1, height], "re");
                    pen.op("f");
                    pen.nums(&[0.0], "g");
                }
            }
        }
    }
    // A thin rule under the header.
    pen.stroke(&[(MARGIN, PAGE_H - 50.0), (PAGE_W - MARGIN, PAGE_H - 50.0)], false);
    for f in &page.frames {
        let (l, r) = (MARGIN - 2.0, PAGE_W - MARGIN + 2.0);
        pen.stroke(&[(l, f.top), (r, f.top), (r, f.bottom), (l, f.bottom)], true);
    }
}

/// One face: the Type0 font, its CIDFontType2 descendant, the descriptor, the embedded program
/// (compressed once per process) and the ToUnicode map — objects `first` to `first + 4`.
fn embed(w: &mut Writer, first: usize, font: &Font, packed: &Packed, used: &Used, streams: &StreamCache) {
    let (type0, cid, descriptor, file, to_unicode) = (first, first + 1, first + 2, first + 3, first + 4);
    // A subset font's name carries a six-letter tag (ISO 32000 9.6.4).
    let tag = if font.name.ends_with("Bold") { "CSGNAB" } else { "CSGNAA" };
    let base = format!("{tag}+{}", font.name);

    w.begin(type0);
    let _ = write!(
        w.text,
        "<< /Type /Font /Subtype /Type0 /BaseFont /{base} /Encoding /Identity-H /DescendantFonts [{cid} 0 R] /ToUnicode {to_unicode} 0 R >>"
    );
    w.end_dict();

    w.begin(cid);
    let _ = write!(
        w.text,
        "<< /Type /Font /Subtype /CIDFontType2 /BaseFont /{base} /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /FontDescriptor {descriptor} 0 R /CIDToGIDMap /Identity /DW 1000 /W ["
    );
    for (gid, _) in used.iter() {
        let _ = write!(w.text, "{gid} [{}] ", font.pdf_width(gid));
    }
    w.text.push_str("] >>");
    w.end_dict();

    w.begin(descriptor);
    let [x0, y0, x1, y1] = font.bbox.map(|v| font.pdf_units(v));
    let _ = write!(
        w.text,
        "<< /Type /FontDescriptor /FontName /{base} /Flags 6 /FontBBox [{x0} {y0} {x1} {y1}] /ItalicAngle 0 /Ascent {} /Descent {} /CapHeight {} /StemV 80 /FontFile2 {file} 0 R >>",
        font.pdf_units(font.ascent),
        font.pdf_units(font.descent),
        font.pdf_units(font.cap_height),
    );
    w.end_dict();

    w.stream(file, &format!("/Length1 {} /Filter /FlateDecode", packed.raw_len), &packed.deflated);

    let cmap = to_unicode_cmap(used);
    w.stream(to_unicode, "/Filter /FlateDecode", &streams.deflated(cmap.as_bytes()));
}

/// The ToUnicode CMap: each glyph shown → its character, in `bfchar` blocks of at most 100.
fn to_unicode_cmap(used: &Used) -> String {
    let mut s = String::from(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
         /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
         /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
         1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
    );
    let all: Vec<(u16, char)> = used.iter().collect();
    for block in all.chunks(100) {
        let _ = writeln!(s, "{} beginbfchar", block.len());
        for &(gid, c) in block {
            s.push('<');
            hex4(&mut s, gid);
            s.push_str("> <");
            let mut units = [0u16; 2];
            for &mut u in c.encode_utf16(&mut units) {
                hex4(&mut s, u);
            }
            s.push_str(">\n");
        }
        s.push_str("endbfchar\n");
    }
    s.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
    s
}

/// Four upper-case hex digits, as `{:04X}` writes them (without the formatting machinery: this
/// runs for every glyph of every render).
fn hex4(s: &mut String, v: u16) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for shift in [12, 8, 4, 0] {
        s.push(char::from(HEX[usize::from((v >> shift) & 0xF)]));
    }
}

/// The info dictionary: title, subject, author, keywords, producer and dates.
fn info(s: &mut String, meta: &Meta) {
    let date = pdf_date(meta.date_unix);
    s.push_str("<< /Title ");
    text_string(s, meta.title);
    s.push_str(" /Subject ");
    text_string(s, meta.subject);
    s.push_str(" /Author ");
    text_string(s, meta.author);
    s.push_str(" /Keywords ");
    text_string(s, &meta.keywords.join(", "));
    s.push_str(" /Creator (Countersign) /Producer ");
    text_string(s, &format!("Countersign {}", env!("CARGO_PKG_VERSION")));
    let _ = write!(s, " /CreationDate ({date}) /ModDate ({date}) >>");
}

/// `D:YYYYMMDDHHmmSSZ`.
fn pdf_date(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let date = crate::domain::time::Date::from_days(days);
    format!("D:{:08}{:02}{:02}{:02}Z", date.number(), secs / 3600, secs / 60 % 60, secs % 60)
}

/// A PDF text string: a literal string when the text is printable ASCII, else UTF-16BE with a
/// byte-order mark, in hex.
fn text_string(s: &mut String, text: &str) {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        s.push('(');
        for c in text.chars() {
            if matches!(c, '(' | ')' | '\\') {
                s.push('\\');
            }
            s.push(c);
        }
        s.push(')');
    } else {
        s.push_str("<FEFF");
        for u in text.encode_utf16() {
            hex4(s, u);
        }
        s.push('>');
    }
}

/// A number with at most two decimals, without trailing zeros (`612`, `0.42`, `-3.5`).
fn num(v: f32) -> String {
    let mut out = Vec::new();
    push_num(&mut out, v);
    String::from_utf8(out).unwrap_or_default()
}

fn push_num(out: &mut Vec<u8>, v: f32) {
    let hundredths = (f64::from(v) * 100.0).round() as i64;
    if hundredths < 0 {
        out.push(b'-');
    }
    let a = hundredths.unsigned_abs();
    push_uint(out, a / 100);
    let frac = a % 100;
    if frac != 0 {
        out.push(b'.');
        out.push(b'0' + (frac / 10) as u8);
        if !frac.is_multiple_of(10) {
            out.push(b'0' + (frac % 10) as u8);
        }
    }
}

/// Decimal digits of `n`, without allocating (this runs for every number on every page).
fn push_uint(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends objects, recording each one's offset for the cross-reference table.
struct Writer {
    out: Vec<u8>,
    offsets: Vec<usize>,
    /// The dictionary being written (objects are short; one buffer reused).
    text: String,
}

impl Writer {
    fn new(objects: usize) -> Writer {
        Writer { out: Vec::with_capacity(96 * 1024), offsets: vec![0; objects], text: String::with_capacity(4096) }
    }

    fn begin(&mut self, n: usize) {
        self.offsets[n - 1] = self.out.len();
        let _ = writeln!(self.text, "{n} 0 obj");
    }

    fn end_dict(&mut self) {
        self.text.push_str("\nendobj\n");
        self.out.extend_from_slice(self.text.as_bytes());
        self.text.clear();
    }

    fn stream(&mut self, n: usize, dict: &str, data: &[u8]) {
        self.begin(n);
        let _ = write!(self.text, "<< /Length {} {dict} >>\nstream\n", data.len());
        self.out.extend_from_slice(self.text.as_bytes());
        self.text.clear();
        self.out.extend_from_slice(data);
        self.out.extend_from_slice(b"\nendstream\nendobj\n");
    }

    fn finish(mut self, id: &[u8; 16]) -> Vec<u8> {
        let xref = self.out.len();
        let mut t = format!("xref\n0 {}\n0000000000 65535 f \n", self.offsets.len() + 1);
        for off in &self.offsets {
            let _ = writeln!(t, "{off:010} 00000 n ");
        }
        let id = hex::encode_upper(id);
        let _ = write!(
            t,
            "trailer\n<< /Size {} /Root {CATALOG} 0 R /Info {INFO} 0 R /ID [<{id}> <{id}>] >>\nstartxref\n{xref}\n%%EOF",
            self.offsets.len() + 1
        );
        self.out.extend_from_slice(t.as_bytes());
        self.out
    }
}

/// A font program compressed once per process: embedding the same ~27 KB face in every
/// document must not cost a deflate per document.
struct Packed {
    raw_len: usize,
    deflated: Vec<u8>,
}

static PACKED: std::sync::LazyLock<[Packed; 2]> = std::sync::LazyLock::new(|| {
    let f = super::fonts::fonts();
    [&f.regular, &f.bold]
        .map(|face| Packed { raw_len: face.bytes.len(), deflated: deflate(face.bytes, flate2::Compression::best()) })
});

/// Bytes shared between a cache and the documents that use them.
type Shared = std::sync::Arc<[u8]>;

// Compressed content already made, shared by every thread (a `Shelf`): pages by what they
// show, and other streams (the fonts' ToUnicode maps) by their uncompressed bytes.
//
// Why: deflate was a third of a render and writing the glyph strings most of the rest (issue
// 14), and most pages of an agreement are the same in every document of a template version:
// boilerplate clauses do not depend on the intake, and where an intake's longer name moves text
// down a line, the pages after it come in a few variants that recur. A hit compares everything
// the stream depends on, and deflate is deterministic, so a hit gives exactly the bytes
// writing and compressing would have: the output does not depend on what the cache holds (a
// unit test checks a document written warm against one written cold).

/// A stream compressed, with its uncompressed bytes.
struct KeptStream {
    raw: Shared,
    packed: Shared,
}

type StreamCache = Shelf<KeptStream>;

/// Uncompressed plus compressed bytes of the other streams kept (they are small).
const STREAM_CACHE_BYTES: usize = 1 << 20;

static STREAMS: std::sync::LazyLock<StreamCache> = std::sync::LazyLock::new(|| Shelf::new(STREAM_CACHE_BYTES));

impl Shelf<KeptStream> {
    /// `raw` compressed (zlib, fast level), from the cache when the same bytes were compressed
    /// before.
    fn deflated(&self, raw: &[u8]) -> Shared {
        let crc = crc32fast::hash(raw);
        if let Some(hit) = self.find(crc, |e| e.raw.as_ref() == raw) {
            return hit.packed.clone();
        }
        let packed: Shared = deflate(raw, flate2::Compression::fast()).into();
        self.put(
            crc,
            std::sync::Arc::new(KeptStream { raw: raw.into(), packed: packed.clone() }),
            raw.len() + packed.len(),
        );
        packed
    }
}

/// A page's content stream, compressed, with what it depends on and the glyphs it shows.
struct PageEntry {
    fonts: usize,
    page: Page,
    number: usize,
    total: usize,
    header: String,
    header_right: String,
    draft: bool,
    names: [String; 2],
    stream: Shared,
    /// Per face, each glyph the page shows and the first character it showed it for.
    glyphs: [Vec<(u16, char)>; 2],
}

type PageCache = Shelf<PageEntry>;

/// What the pages kept may cost: their compressed streams plus an estimate of their keys
/// (≈ 8 KB a page: about two thousand distinct pages).
const PAGE_CACHE_BYTES: usize = 16 << 20;

static PAGES_KEPT: std::sync::LazyLock<PageCache> = std::sync::LazyLock::new(|| Shelf::new(PAGE_CACHE_BYTES));

/// A checksum of everything page `number` of `total` depends on: the bucket it is filed in.
fn page_crc(page: &Page, number: usize, total: usize, meta: &Meta, names: [&str; 2]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for n in [number, total, usize::from(meta.draft)] {
        h.update(&n.to_le_bytes());
    }
    for s in [meta.header, meta.header_right, names[0], names[1]] {
        h.update(s.as_bytes());
        h.update(&[0]);
    }
    for (y, line) in &page.lines {
        h.update(&y.to_bits().to_le_bytes());
        for span in &line.spans {
            h.update(&span.x.to_bits().to_le_bytes());
            h.update(span.text.as_bytes());
        }
    }
    h.finalize()
}

impl PageEntry {
    fn same(&self, fonts: &Fonts, page: &Page, number: usize, total: usize, meta: &Meta, names: [&str; 2]) -> bool {
        self.fonts == fonts as *const Fonts as usize
            && self.number == number
            && self.total == total
            && self.draft == meta.draft
            && self.header == meta.header
            && self.header_right == meta.header_right
            && self.names[0] == names[0]
            && self.names[1] == names[1]
            && self.page == *page
    }

    /// What keeping the entry costs against the budget.
    fn cost(&self) -> usize {
        // Each span's text and allocation, each line's, each glyph noted, the strings, the
        // entry: an estimate on the high side, so the budget bounds what is really held.
        let lines: usize = self
            .page
            .lines
            .iter()
            .map(|(_, l)| 64 + l.rules.len() * 16 + l.spans.iter().map(|s| s.text.len() + 64).sum::<usize>())
            .sum();
        let glyphs = 8 * (self.glyphs[0].len() + self.glyphs[1].len());
        let strings = self.header.len() + self.header_right.len() + self.names[0].len() + self.names[1].len();
        self.stream.len() + lines + glyphs + strings + 512
    }
}

fn deflate(data: &[u8], level: flate2::Compression) -> Vec<u8> {
    // A compressor's tables are large and zeroed on creation; one per thread, reset per stream,
    // instead of one per stream (~30 per document).
    thread_local! {
        static FAST: std::cell::RefCell<flate2::Compress> =
            std::cell::RefCell::new(flate2::Compress::new(flate2::Compression::fast(), true));
    }
    let run = |c: &mut flate2::Compress| {
        c.reset();
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        loop {
            let consumed = c.total_in() as usize;
            match c.compress_vec(&data[consumed..], &mut out, flate2::FlushCompress::Finish) {
                Ok(flate2::Status::StreamEnd) => return out,
                Ok(_) => out.reserve(out.capacity().max(4096)),
                Err(_) => return Vec::new(),
            }
        }
    };
    if level == flate2::Compression::fast() {
        FAST.with(|c| run(&mut c.borrow_mut()))
    } else {
        run(&mut flate2::Compress::new(level, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex4_writes_what_the_formatter_writes() {
        for v in (0..=u16::MAX).step_by(7).chain([0, 0xF, 0xFF, 0xABCD, u16::MAX]) {
            let mut s = String::new();
            hex4(&mut s, v);
            assert_eq!(s, format!("{v:04X}"));
        }
    }

    #[test]
    fn numbers_are_written_with_at_most_two_decimals() {
        assert_eq!(num(612.0), "612");
        assert_eq!(num(0.42), "0.42");
        assert_eq!(num(-3.5), "-3.5");
        assert_eq!(num(0.004), "0");
        assert_eq!(num(71.999), "72");
    }

    #[test]
    fn text_strings_are_literal_for_ascii_and_utf16_otherwise() {
        let mut s = String::new();
        text_string(&mut s, "A (b) \\ c");
        assert_eq!(s, "(A \\(b\\) \\\\ c)");
        s.clear();
        text_string(&mut s, "Zoë");
        assert_eq!(s, "<FEFF005A006F00EB>");
    }

    #[test]
    fn dates_are_pdf_dates() {
        assert_eq!(pdf_date(1_795_824_000), "D:20261128000000Z");
        assert_eq!(pdf_date(1_795_824_000 + 3661), "D:20261128010101Z");
    }

    #[test]
    fn a_cached_stream_is_exactly_what_compressing_it_again_gives() {
        let cache = StreamCache::new(1 << 20);
        let page = b"BT\n/F1 10 Tf\n1 0 0 1 72 700 Tm\n(\x00\x2a\x00\x2b) Tj\nET\n".repeat(40);
        let first = cache.deflated(&page);
        let again = cache.deflated(&page);
        assert!(std::sync::Arc::ptr_eq(&first, &again), "the second request is a hit");
        assert_eq!(first.as_ref(), deflate(&page, flate2::Compression::fast()).as_slice());
        // Same length, one byte different: a different entry, not the cached one.
        let mut other = page.clone();
        other[5] = b'2';
        assert_eq!(cache.deflated(&other).as_ref(), deflate(&other, flate2::Compression::fast()).as_slice());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn the_stream_cache_starts_again_when_its_byte_budget_is_spent() {
        let page = |n: u8| vec![n; 3000];
        let cache = StreamCache::new(2 * 3000 + 200);
        let _ = cache.deflated(&page(1));
        let _ = cache.deflated(&page(2));
        assert_eq!(cache.len(), 2);
        let third = cache.deflated(&page(3));
        assert_eq!(cache.len(), 1, "the budget was spent, so the cache started again");
        assert_eq!(third.as_ref(), deflate(&page(3), flate2::Compression::fast()).as_slice());
        // A stream bigger than the whole budget is compressed but never kept, and what was
        // kept stays.
        let _ = cache.deflated(&vec![7; 10_000]);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_document_written_from_a_warm_stream_cache_is_byte_identical_to_one_written_cold() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/intake/baa-tx-ca.json"))
            .expect("example");
        let intake = crate::domain::parse::parse_intake(&text, &crate::render::fonts::printable).expect("parses");
        let (doc, _, _) = crate::render::Renderer::builtin()
            .expect("templates")
            .document(&intake, crate::render::Options::default())
            .expect("document");
        let fonts = crate::render::fonts::fonts();
        let pages = crate::render::layout::layout(fonts, &doc);
        let meta = Meta {
            title: "t",
            subject: "s",
            author: "a",
            keywords: vec![],
            date_unix: 0,
            header: "h",
            header_right: "r",
            draft: true,
            id: [0; 16],
        };
        let names = ["F1", "F2"];
        // A budget of nothing keeps nothing: every page is written and compressed afresh.
        let cold = write_with(fonts, &pages, &meta, names, (&PageCache::new(0), &StreamCache::new(0)));
        let (kept, streams) = (PageCache::new(1 << 24), StreamCache::new(1 << 22));
        let first = write_with(fonts, &pages, &meta, names, (&kept, &streams));
        assert_eq!(kept.len(), pages.len(), "every page is kept");
        assert_eq!(streams.len(), 2, "both ToUnicode maps are kept");
        let second = write_with(fonts, &pages, &meta, names, (&kept, &streams));
        assert_eq!((kept.len(), streams.len()), (pages.len(), 2), "the second document was written from the caches");
        assert!(first == cold && second == cold, "kept pages are the bytes writing them gives");
        // Another header is another page: nothing kept is reused for it.
        let other = Meta { header_right: "Version 2", ..meta };
        let third = write_with(fonts, &pages, &other, names, (&kept, &streams));
        assert_eq!(kept.len(), 2 * pages.len());
        assert_eq!(third, write_with(fonts, &pages, &other, names, (&PageCache::new(0), &StreamCache::new(0))));
        assert_ne!(third, cold);
    }

    #[test]
    fn to_unicode_maps_each_glyph_used_and_splits_blocks_of_a_hundred() {
        let mut used = Used::default();
        for (i, c) in ('a'..='z').cycle().take(150).enumerate() {
            used.mark(u16::try_from(i + 1).unwrap(), c);
        }
        let cmap = to_unicode_cmap(&used);
        assert!(cmap.contains("100 beginbfchar") && cmap.contains("50 beginbfchar"), "{cmap}");
        assert!(cmap.contains("<0001> <0061>"));
    }
}
