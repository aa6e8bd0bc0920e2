//! Pages → PDF bytes with printpdf's low-level operations.
//!
//! Deterministic by construction: font resource names are fixed (`F1`, `F2`), document dates
//! come from the intake, and the trailer `/ID` — which printpdf draws from a process-wide
//! counter — is replaced with a hash of the document's content. The same intake therefore gives
//! the same bytes in any process, on any machine.

use super::fonts::{Face, Fonts};
use super::layout::{MARGIN, PAGE_H, PAGE_W, Page, Rule};
use printpdf::{
    Color, DictItem, FontId, Line as PdfLine, LinePoint, Mm, Op, PdfDocument, PdfFont, PdfFontHandle, PdfPage,
    PdfSaveOptions, Point, Pt, Rgb, TextItem, TextMatrix,
};

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

const REGULAR_ID: &str = "F1";
const BOLD_ID: &str = "F2";
const GRAY: f32 = 0.42;

fn font_handle(face: Face) -> PdfFontHandle {
    PdfFontHandle::External(FontId(match face {
        Face::Regular => REGULAR_ID.into(),
        Face::Bold => BOLD_ID.into(),
    }))
}

fn fill(v: f32) -> Op {
    Op::SetFillColor { col: Color::Rgb(Rgb { r: v, g: v, b: v, icc_profile: None }) }
}

/// Writes text into a page's operations, setting the font only when it changes.
///
/// The text is written as a raw `Tj` of big-endian glyph ids (the font is Identity-H and
/// embedded whole, so ids are the font's own). printpdf's own text path allocates per character
/// while collecting glyph usage and formats every glyph as hex; that was most of the PDF time.
/// printpdf still writes the widths and ToUnicode map, from the glyph census on page 1.
struct Pen<'a> {
    ops: &'a mut Vec<Op>,
    fonts: &'a Fonts,
    cur: Option<(Face, f32)>,
}

impl Pen<'_> {
    fn text(&mut self, x: f32, y: f32, face: Face, size: f32, text: &str) {
        if self.cur != Some((face, size)) {
            self.ops.push(Op::SetFont { font: font_handle(face), size: Pt(size) });
            self.cur = Some((face, size));
        }
        self.ops.push(Op::SetTextMatrix { matrix: TextMatrix::Translate(Pt(x), Pt(y)) });
        let font = self.fonts.get(face);
        let mut data = Vec::with_capacity(text.len() * 2);
        for c in text.chars() {
            // The intake parser admits only printable characters; anything else shows as .notdef.
            data.extend_from_slice(&font.glyph(c).unwrap_or(0).to_be_bytes());
        }
        self.ops.push(Op::Unknown { key: "Tj".into(), value: vec![DictItem::String { data, literal: true }] });
    }
}

/// One invisible string per face holding every character the document prints, so printpdf
/// embeds each face with widths and a ToUnicode map covering exactly the glyphs used.
fn census(ops: &mut Vec<Op>, fonts: &Fonts, pages: &[Page], meta: &Meta) {
    // One slot per glyph id (the subset fonts have a few hundred glyphs), holding the first
    // character seen for it: a table, not a set, because this runs over every character.
    let mut seen: [Vec<Option<char>>; 2] = [vec![None; 1024], vec![None; 1024]];
    let mut mark = |face: Face, text: &str| {
        let (slot, font) = if face == Face::Regular { (0, &fonts.regular) } else { (1, &fonts.bold) };
        for c in text.chars() {
            if let Some(g) = font.glyph(c).map(usize::from).filter(|&g| g < 1024) {
                seen[slot][g].get_or_insert(c);
            }
        }
    };
    for p in pages {
        for (_, line) in &p.lines {
            for s in &line.spans {
                mark(s.face, &s.text);
            }
        }
    }
    mark(Face::Regular, meta.header);
    mark(Face::Regular, "Page of 0123456789");
    mark(Face::Bold, meta.header_right);
    if meta.draft {
        mark(Face::Bold, "DRAFT");
    }
    let used: [String; 2] = [seen[0].iter().flatten().collect(), seen[1].iter().flatten().collect()];
    ops.push(Op::StartTextSection);
    ops.push(Op::SetTextRenderingMode { mode: printpdf::TextRenderingMode::Invisible });
    for (face, chars) in [(Face::Regular, &used[0]), (Face::Bold, &used[1])] {
        if chars.is_empty() {
            continue;
        }
        ops.push(Op::SetFont { font: font_handle(face), size: Pt(1.0) });
        ops.push(Op::SetTextMatrix { matrix: TextMatrix::Translate(Pt(0.0), Pt(0.0)) });
        ops.push(Op::ShowText { items: vec![TextItem::Text(chars.clone())] });
    }
    ops.push(Op::SetTextRenderingMode { mode: printpdf::TextRenderingMode::Fill });
    ops.push(Op::EndTextSection);
}

fn stroke(ops: &mut Vec<Op>, points: &[(f32, f32)], closed: bool) {
    ops.push(Op::DrawLine {
        line: PdfLine {
            points: points.iter().map(|&(x, y)| LinePoint { p: Point { x: Pt(x), y: Pt(y) }, bezier: false }).collect(),
            is_closed: closed,
        },
    });
}

fn page_ops(fonts: &Fonts, pages: &[Page], number: usize, meta: &Meta) -> Vec<Op> {
    let page = &pages[number - 1];
    let total = pages.len();
    let mut ops = Vec::with_capacity(page.lines.len() * 4 + 32);
    if number == 1 {
        census(&mut ops, fonts, pages, meta);
    }

    if meta.draft {
        // A light diagonal watermark, drawn first so text sits on top of it.
        ops.push(Op::StartTextSection);
        ops.push(fill(0.88));
        ops.push(Op::SetFont { font: font_handle(Face::Bold), size: Pt(110.0) });
        let w = fonts.bold.width("DRAFT", 110.0);
        let (c, s) = (std::f32::consts::FRAC_1_SQRT_2, std::f32::consts::FRAC_1_SQRT_2);
        let (cx, cy) = (PAGE_W / 2.0, PAGE_H / 2.0);
        let (x, y) = (cx - (w / 2.0) * c + 38.0 * s, cy - (w / 2.0) * s - 38.0 * c);
        ops.push(Op::SetTextMatrix { matrix: TextMatrix::Raw([c, s, -s, c, x, y]) });
        ops.push(Op::ShowText { items: vec![TextItem::Text("DRAFT".into())] });
        ops.push(Op::EndTextSection);
    }

    ops.push(Op::StartTextSection);
    // Header and footer.
    ops.push(fill(GRAY));
    let mut pen = Pen { ops: &mut ops, fonts, cur: None };
    pen.text(MARGIN, PAGE_H - 44.0, Face::Regular, 8.0, meta.header);
    let rw = fonts.get(Face::Bold).width(meta.header_right, 8.0);
    pen.text(PAGE_W - MARGIN - rw, PAGE_H - 44.0, Face::Bold, 8.0, meta.header_right);
    let footer = format!("Page {number} of {total}");
    let fw = fonts.regular.width(&footer, 8.0);
    pen.text((PAGE_W - fw) / 2.0, 40.0, Face::Regular, 8.0, &footer);

    // Body text.
    let mut gray = true;
    for (y, line) in &page.lines {
        for span in &line.spans {
            if span.gray != gray {
                pen.ops.push(fill(if span.gray { GRAY } else { 0.0 }));
                gray = span.gray;
            }
            pen.text(MARGIN + span.x, *y, span.face, span.size, span.text.trim_end());
        }
    }
    ops.push(Op::EndTextSection);

    // Rules and frames.
    ops.push(Op::SetOutlineColor { col: Color::Rgb(Rgb { r: 0.0, g: 0.0, b: 0.0, icc_profile: None }) });
    ops.push(Op::SetOutlineThickness { pt: Pt(0.6) });
    for (y, line) in &page.lines {
        for rule in &line.rules {
            match *rule {
                Rule::Underline { x1, x2 } => {
                    stroke(&mut ops, &[(MARGIN + x1, y - 2.0), (MARGIN + x2, y - 2.0)], false)
                }
                // A bar is a stroke as thick as the bar is tall, through its middle.
                Rule::Bar { x1, x2, height } => {
                    ops.push(Op::SetOutlineColor {
                        col: Color::Rgb(Rgb { r: 0.2, g: 0.36, b: 0.6, icc_profile: None }),
                    });
                    ops.push(Op::SetOutlineThickness { pt: Pt(height) });
                    stroke(&mut ops, &[(MARGIN + x1, y + height / 2.0), (MARGIN + x2, y + height / 2.0)], false);
                    ops.push(Op::SetOutlineColor {
                        col: Color::Rgb(Rgb { r: 0.0, g: 0.0, b: 0.0, icc_profile: None }),
                    });
                    ops.push(Op::SetOutlineThickness { pt: Pt(0.6) });
                }
            }
        }
    }
    // A thin rule under the header.
    stroke(&mut ops, &[(MARGIN, PAGE_H - 50.0), (PAGE_W - MARGIN, PAGE_H - 50.0)], false);
    for f in &page.frames {
        let (l, r) = (MARGIN - 2.0, PAGE_W - MARGIN + 2.0);
        stroke(&mut ops, &[(l, f.top), (r, f.top), (r, f.bottom), (l, f.bottom)], true);
    }
    ops
}

/// A font program compressed once per process: embedding the same ~27 KB face in every
/// document must not cost a deflate per document.
struct Packed {
    raw: &'static [u8],
    deflated: Vec<u8>,
}

static PACKED: std::sync::LazyLock<[Packed; 2]> = std::sync::LazyLock::new(|| {
    let f = super::fonts::fonts();
    [&f.regular, &f.bold].map(|face| {
        let raw: &'static [u8] = &face.parsed.original_bytes;
        Packed { raw, deflated: deflate(raw, flate2::Compression::best()) }
    })
});

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

/// Compresses every stream: the embedded fonts from the per-process cache, everything else
/// (page content, CMaps) at a fast level. lopdf's own `compress` uses the slowest level on every
/// stream, which cost ~20 ms per document. Deterministic either way.
fn compress(lo: &mut lopdf::Document) {
    for obj in lo.objects.values_mut() {
        let lopdf::Object::Stream(stream) = obj else { continue };
        if stream.dict.get(b"Filter").is_ok() {
            continue;
        }
        let compressed = match PACKED.iter().find(|p| p.raw == stream.content.as_slice()) {
            Some(p) => p.deflated.clone(),
            None => deflate(&stream.content, flate2::Compression::fast()),
        };
        if compressed.len() + 19 < stream.content.len() {
            stream.dict.set("Filter", "FlateDecode");
            stream.set_content(compressed);
        }
    }
}

/// Writes the PDF.
pub fn write(fonts: &Fonts, pages: &[Page], meta: &Meta) -> Vec<u8> {
    let mut doc = PdfDocument::new(meta.title);
    doc.resources.fonts.map.insert(FontId(REGULAR_ID.into()), PdfFont::new(fonts.regular.parsed.clone()));
    doc.resources.fonts.map.insert(FontId(BOLD_ID.into()), PdfFont::new(fonts.bold.parsed.clone()));
    let info = &mut doc.metadata.info;
    info.subject = meta.subject.to_string();
    info.author = meta.author.to_string();
    info.creator = "Countersign".into();
    info.producer = format!("Countersign {} (printpdf)", env!("CARGO_PKG_VERSION"));
    info.keywords = meta.keywords.clone();
    if let Ok(d) = printpdf::OffsetDateTime::from_unix_timestamp(meta.date_unix) {
        info.creation_date = d;
        info.modification_date = d;
        info.metadata_date = d;
    }

    let mm = |pt: f32| Mm(pt * 25.4 / 72.0);
    doc.pages = pages
        .iter()
        .enumerate()
        .map(|(i, _)| PdfPage::new(mm(PAGE_W), mm(PAGE_H), page_ops(fonts, pages, i + 1, meta)))
        .collect();

    // The fonts are already subset (scripts/subset-fonts.sh): embed them whole.
    // `secure: false` lets our raw `Tj` operators through (see `text_at`).
    let opts = PdfSaveOptions { subset_fonts: false, secure: false, ..PdfSaveOptions::default() };
    let mut warnings = Vec::new();
    let mut lo = printpdf::serialize::to_lopdf_doc(&doc, &opts, &mut warnings);
    compress(&mut lo);

    // printpdf draws /ID from a process-wide counter; a content digest makes it reproducible.
    let id = lopdf::Object::String(meta.id.to_vec(), lopdf::StringFormat::Hexadecimal);
    lo.trailer.set("ID", lopdf::Object::Array(vec![id.clone(), id]));
    let mut out = Vec::with_capacity(64 * 1024);
    // Writing into a Vec cannot fail.
    let _ = lo.save_to(&mut out);
    out
}
