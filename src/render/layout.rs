//! Layout: document model → pages of positioned text.
//!
//! Lines are broken with textwrap's optimal-fit algorithm over fragments measured with the
//! embedded font's advance widths (the same widths the PDF viewer uses, so what we measure is
//! what prints). Pagination keeps headings with what follows, never leaves a single line of a
//! paragraph at a page foot, and never splits a signature block.

use std::sync::Arc;

use textwrap::core::Fragment;
use textwrap::wrap_algorithms::{Penalties, wrap_optimal_fit};

use super::fonts::{Face, Fonts};
use super::model::{Attachment, Block, Clause, Document, Run};
use super::shelf::LocalShelf;
use crate::domain::elements::element;

/// US Letter in points.
pub const PAGE_W: f32 = 612.0;
pub const PAGE_H: f32 = 792.0;
/// One-inch margins.
pub const MARGIN: f32 = 72.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
const TOP: f32 = PAGE_H - MARGIN;

const BODY: f32 = 9.25;
const LEADING: f32 = 11.8;
const SMALL: f32 = 7.5;
const INDENT: f32 = 20.0;

/// A piece of text at a position on its line.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub x: f32,
    /// Shared, so a line taken from the line-break cache, or a page compared with the PDF's page
    /// cache, copies a pointer rather than the text.
    pub text: Arc<str>,
    pub face: Face,
    pub size: f32,
    pub gray: bool,
}

/// Something drawn on a line besides text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// A signature line from x1 to x2 at the baseline.
    Underline { x1: f32, x2: f32 },
    /// A filled bar from x1 to x2, `height` points tall, from the baseline up (report charts).
    Bar { x1: f32, x2: f32, height: f32 },
}

/// One line of a page: its height (leading) and what is on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub height: f32,
    pub spans: Vec<Span>,
    pub rules: Vec<Rule>,
}

/// A unit of flow: lines with spacing and keep rules.
#[derive(Debug, Clone, PartialEq)]
struct Item {
    space_before: f32,
    lines: Vec<Line>,
    /// Keep on the same page as the first lines of the next item (headings).
    keep_with_next: bool,
    /// Never split across pages (signature blocks, the draft notice).
    unbreakable: bool,
    /// Start a new page first (attachments).
    page_break_before: bool,
    /// Draw a frame around the item (the draft notice).
    framed: bool,
}

impl Item {
    fn new(space_before: f32, lines: Vec<Line>) -> Item {
        Item { space_before, lines, keep_with_next: false, unbreakable: false, page_break_before: false, framed: false }
    }

    fn height(&self) -> f32 {
        self.lines.iter().map(|l| l.height).sum()
    }
}

/// A frame drawn around lines on a page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub top: f32,
    pub bottom: f32,
}

/// A laid-out page: lines with their baselines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// (baseline y, line).
    pub lines: Vec<(f32, Line)>,
    pub frames: Vec<Frame>,
}

/// A measured word fragment for textwrap.
#[derive(Debug)]
struct Frag<'a> {
    text: &'a str,
    face: Face,
    width: f32,
    space: f32,
}

// textwrap's default penalties are tuned for widths in terminal columns; we measure in points
// and divide by this, which puts an average character near one unit.
const UNIT: f64 = 5.0;

impl Fragment for Frag<'_> {
    fn width(&self) -> f64 {
        f64::from(self.width) / UNIT
    }
    fn whitespace_width(&self) -> f64 {
        f64::from(self.space) / UNIT
    }
    fn penalty_width(&self) -> f64 {
        0.0
    }
}

/// A paragraph's line breaks, as [`wrap`] computed them, with everything they depend on.
struct Wrapped {
    /// Which font set measured them (there is one per process; the address keeps tests honest).
    fonts: usize,
    size: u32,
    width: u32,
    runs: Vec<Run>,
    lines: Vec<Vec<Span>>,
}

/// Bytes of paragraphs (their text, twice: the runs and the lines) remembered per thread; then
/// the cache starts again. Server threads come and go by the hundred, so each keeps little.
const WRAP_CACHE_BYTES: usize = 2 << 20;

thread_local! {
    /// Line breaks already computed on this thread. Most of an agreement's text is boilerplate
    /// that does not depend on the intake (issue 14: optimal-fit wrapping was the largest stage
    /// of a render), so the next document on the same thread — a batch, the server's next
    /// draft — reuses them. Thread-local, so no lock: rayon's workers and the server's blocking
    /// threads each keep their own. A hit compares everything the breaks depend on, so it
    /// returns exactly what the wrap would have, and the output stays deterministic.
    static WRAPS: LocalShelf<Wrapped> = LocalShelf::new(WRAP_CACHE_BYTES);
}

/// Breaks runs into lines of at most `width` points. Returns each line's spans with x relative
/// to the line start.
pub fn wrap(fonts: &Fonts, runs: &[Run], size: f32, width: f32) -> Vec<Vec<Span>> {
    let (font_id, size_bits, width_bits) = (fonts as *const Fonts as usize, size.to_bits(), width.to_bits());
    let mut h = crc32fast::Hasher::new();
    h.update(&font_id.to_le_bytes());
    h.update(&size_bits.to_le_bytes());
    h.update(&width_bits.to_le_bytes());
    hash_runs(&mut h, runs);
    let hash = h.finalize();
    let same = |w: &Wrapped| w.fonts == font_id && w.size == size_bits && w.width == width_bits && w.runs == runs;
    if let Some(hit) = WRAPS.with(|c| c.find(hash, same)) {
        return hit.lines.clone();
    }
    let lines = wrap_uncached(fonts, runs, size, width);
    let cost: usize = 2 * runs.iter().map(|r| r.text.len() + 48).sum::<usize>() + 128;
    if !WRAPS.with(|c| c.keeps(cost)) {
        // A paragraph this long (an intake's own exhibit) is wrapped every time, not kept.
        return lines;
    }
    let kept =
        Wrapped { fonts: font_id, size: size_bits, width: width_bits, runs: runs.to_vec(), lines: lines.clone() };
    WRAPS.with(|c| c.put(hash, kept, cost));
    lines
}

/// Feeds runs to a cache key's checksum: each run's text and weight, with a separator.
fn hash_runs(h: &mut crc32fast::Hasher, runs: &[Run]) {
    for r in runs {
        h.update(r.text.as_bytes());
        h.update(&[0xff, u8::from(r.bold)]);
    }
}

fn wrap_uncached(fonts: &Fonts, runs: &[Run], size: f32, width: f32) -> Vec<Vec<Span>> {
    let mut frags: Vec<Frag> = Vec::new();
    for run in runs {
        let face = if run.bold { Face::Bold } else { Face::Regular };
        let font = fonts.get(face);
        let space_w = font.width(" ", size);
        let mut rest = run.text.as_str();
        while !rest.is_empty() {
            let end = rest.find(' ').unwrap_or(rest.len());
            let word = &rest[..end];
            let spaced = end < rest.len();
            if !word.is_empty() {
                push_word(&mut frags, word, face, font, size, width, if spaced { space_w } else { 0.0 });
            } else if spaced && let Some(last) = frags.last_mut() {
                last.space = space_w;
            }
            rest = if spaced { &rest[end + 1..] } else { "" };
        }
    }
    if frags.is_empty() {
        return Vec::new();
    }
    let widths = [f64::from(width) / UNIT];
    let lines = match wrap_optimal_fit(&frags, &widths, &Penalties::default()) {
        Ok(lines) => lines,
        // Only on numeric overflow with absurd input: fall back to one fragment per line.
        Err(_) => frags.chunks(1).collect(),
    };
    lines.into_iter().map(|line| spans_of(line, size)).collect()
}

/// Pushes a word, splitting one wider than the line (a long email or URL) into pieces.
fn push_word<'a>(
    frags: &mut Vec<Frag<'a>>,
    word: &'a str,
    face: Face,
    font: &super::fonts::Font,
    size: f32,
    max: f32,
    space: f32,
) {
    let w = font.width(word, size);
    if w <= max {
        frags.push(Frag { text: word, face, width: w, space });
        return;
    }
    let mut start = 0;
    let mut acc = 0.0;
    for (i, c) in word.char_indices() {
        let cw = font.width(c.encode_utf8(&mut [0; 4]), size);
        if acc + cw > max && i > start {
            frags.push(Frag { text: &word[start..i], face, width: acc, space: 0.0 });
            start = i;
            acc = 0.0;
        }
        acc += cw;
    }
    frags.push(Frag { text: &word[start..], face, width: acc, space });
}

/// Merges a line's fragments into spans of one face, positioned by measured widths.
fn spans_of(line: &[Frag], size: f32) -> Vec<Span> {
    // (x, text, face) of each span while its text grows.
    let mut spans: Vec<(f32, String, Face)> = Vec::new();
    let mut x = 0.0;
    let n = line.len();
    for (i, f) in line.iter().enumerate() {
        let trailing = if i + 1 < n { f.space } else { 0.0 };
        match spans.last_mut() {
            Some(s) if s.2 == f.face => s.1.push_str(f.text),
            _ => spans.push((x, f.text.to_string(), f.face)),
        }
        if trailing > 0.0
            && let Some(s) = spans.last_mut()
        {
            s.1.push(' ');
        }
        x += f.width + trailing;
    }
    spans.into_iter().map(|(x, text, face)| Span { x, text: text.into(), face, size, gray: false }).collect()
}

fn text_lines(fonts: &Fonts, runs: &[Run], size: f32, leading: f32, indent: f32, width: f32) -> Vec<Line> {
    wrap(fonts, runs, size, width)
        .into_iter()
        .map(|mut spans| {
            for s in &mut spans {
                s.x += indent;
            }
            Line { height: leading, spans, rules: Vec::new() }
        })
        .collect()
}

fn centered(fonts: &Fonts, text: &str, face: Face, size: f32, leading: f32) -> Vec<Line> {
    let runs = [Run { text: text.to_string(), bold: face == Face::Bold }];
    wrap(fonts, &runs, size, CONTENT_W)
        .into_iter()
        .map(|mut spans| {
            let w: f32 = spans.iter().map(|s| fonts.get(s.face).width(s.text.trim_end(), size)).sum();
            let shift = (CONTENT_W - w) / 2.0;
            for s in &mut spans {
                s.x += shift;
            }
            Line { height: leading, spans, rules: Vec::new() }
        })
        .collect()
}

fn gray(mut lines: Vec<Line>) -> Vec<Line> {
    for l in &mut lines {
        for s in &mut l.spans {
            s.gray = true;
        }
    }
    lines
}

fn block_item(fonts: &Fonts, b: &Block, space_before: f32) -> Item {
    match b {
        Block::Paragraph { runs } => Item::new(space_before, text_lines(fonts, runs, BODY, LEADING, 0.0, CONTENT_W)),
        Block::Item { depth, runs, .. } => {
            let indent = INDENT * (*depth as f32 + 1.0);
            let mut lines = text_lines(fonts, runs, BODY, LEADING, indent, CONTENT_W - indent);
            if let (Some(first), Some(marker)) = (lines.first_mut(), b.marker()) {
                let mw = fonts.regular.width(&marker, BODY);
                first.spans.insert(
                    0,
                    Span { x: indent - mw - 5.0, text: marker.into(), face: Face::Regular, size: BODY, gray: false },
                );
            }
            Item::new(space_before.min(3.0), lines)
        }
    }
}

fn blocks(fonts: &Fonts, items: &mut Vec<Item>, blocks: &[Block]) {
    for b in blocks {
        items.push(block_item(fonts, b, 3.0));
    }
}

fn heading_item(fonts: &Fonts, text: &str, size: f32, space_before: f32) -> Item {
    let runs = [Run { text: text.to_string(), bold: true }];
    let mut item = Item::new(space_before, text_lines(fonts, &runs, size, size * 1.35, 0.0, CONTENT_W));
    item.keep_with_next = true;
    item
}

/// The sentence that opens the signature block: the document's own note, or the default.
pub fn signature_intro(doc: &Document) -> &str {
    doc.signature_note.as_deref().unwrap_or(
        "Each party has caused this Agreement to be signed by its authorized representative, in the order listed below.",
    )
}

/// The note on a clause heading. The draft for counsel traces each clause to its element ids
/// ("Satisfies BAA-04: 45 CFR …"); the copy sent for signature is a contract and carries only the
/// citations, with no tool vocabulary (element and provision ids stay in the check report).
pub fn clause_note(c: &Clause, draft: bool) -> Option<String> {
    if draft {
        let cites: Vec<String> = c
            .elements
            .iter()
            .map(|id| match element(id) {
                Some(e) => format!("{id}: {}", e.citation),
                None => id.clone(),
            })
            .collect();
        return (!cites.is_empty()).then(|| format!("Satisfies {}", cites.join(" · ")));
    }
    let mut cites: Vec<&str> = Vec::new();
    for e in c.elements.iter().filter_map(|id| element(id)) {
        if !cites.contains(&e.citation) {
            cites.push(e.citation);
        }
    }
    (!cites.is_empty()).then(|| cites.join(" · "))
}

/// A clause's items, as [`clause_items`] laid them out, with everything they depend on.
struct ClauseItems {
    fonts: usize,
    draft: bool,
    clause: Clause,
    items: Vec<Item>,
}

/// Bytes of clauses (their text counted three times, the key, the lines' spans and the note, and
/// each item's and line's allocations) kept per thread; then the cache starts again.
const CLAUSE_CACHE_BYTES: usize = 1 << 20;

thread_local! {
    /// Clauses already laid out on this thread: a clause's heading line, its citation note, list
    /// markers and wrapped paragraphs depend only on the clause and the draft flag, and most
    /// clauses are the same in every agreement of a template version (issue 14). Above the
    /// line-break cache: a hit here skips formatting the heading and the note and looking up
    /// each paragraph. A hit compares the whole clause, so it gives exactly the items the layout
    /// would.
    static CLAUSES: LocalShelf<ClauseItems> = LocalShelf::new(CLAUSE_CACHE_BYTES);
}

fn clause_items(fonts: &Fonts, items: &mut Vec<Item>, c: &Clause, draft: bool) {
    let font_id = fonts as *const Fonts as usize;
    let mut h = crc32fast::Hasher::new();
    h.update(&[u8::from(draft)]);
    for s in [&c.number, &c.heading].into_iter().chain(&c.elements) {
        h.update(s.as_bytes());
        h.update(&[0xff]);
    }
    for b in &c.body {
        hash_runs(&mut h, b.runs());
    }
    let crc = h.finalize();
    let same = |e: &ClauseItems| e.fonts == font_id && e.draft == draft && e.clause == *c;
    if let Some(hit) = CLAUSES.with(|k| k.find(crc, same)) {
        items.extend(hit.items.iter().cloned());
        return;
    }
    let from = items.len();
    clause_items_uncached(fonts, items, c, draft);
    // The clause's text three times (the key, the lines' spans, the note), and each item's and
    // line's own allocations.
    let text: usize = c.number.len()
        + c.heading.len()
        + c.elements.iter().map(|e| e.len() + 64).sum::<usize>()
        + c.body.iter().flat_map(|b| b.runs()).map(|r| r.text.len() + 48).sum::<usize>();
    let lines: usize = items[from..].iter().map(|i| i.lines.len()).sum();
    let cost = 3 * text + 128 * (items.len() - from) + 96 * lines + 256;
    if CLAUSES.with(|k| k.keeps(cost)) {
        let kept = ClauseItems { fonts: font_id, draft, clause: c.clone(), items: items[from..].to_vec() };
        CLAUSES.with(|k| k.put(crc, kept, cost));
    }
}

fn clause_items_uncached(fonts: &Fonts, items: &mut Vec<Item>, c: &Clause, draft: bool) {
    let mut head = heading_item(fonts, &format!("{} {}", c.number, c.heading), BODY, 5.5);
    if let Some(note) = clause_note(c, draft) {
        // The citation rides on the heading line when it fits, else on its own small line.
        let note_w = fonts.regular.width(&note, SMALL);
        let fits = head.lines.len() == 1
            && head.lines[0].spans.iter().map(|s| s.x + fonts.get(s.face).width(&s.text, s.size)).fold(0.0, f32::max)
                + 12.0
                + note_w
                <= CONTENT_W;
        if fits {
            head.lines[0].spans.push(Span {
                x: CONTENT_W - note_w,
                text: note.into(),
                face: Face::Regular,
                size: SMALL,
                gray: true,
            });
        } else {
            head.lines.extend(gray(text_lines(fonts, &[Run { text: note, bold: false }], SMALL, 9.0, 0.0, CONTENT_W)));
        }
    }
    items.push(head);
    blocks(fonts, items, &c.body);
}

fn attachment_items(fonts: &Fonts, items: &mut Vec<Item>, a: &Attachment, draft: bool) {
    // "Addendum TX — Texas State-Law Addendum"; a heading that already starts with the label
    // prints alone ("Certificate of Completion", not "Certificate — Certificate of Completion").
    let title =
        if a.heading.starts_with(&a.label) { a.heading.clone() } else { format!("{} — {}", a.label, a.heading) };
    let mut head = heading_item(fonts, &title, 13.0, 0.0);
    head.page_break_before = true;
    items.push(head);
    for n in &a.notes {
        let runs = [Run { text: n.clone(), bold: false }];
        let mut it = Item::new(1.0, gray(text_lines(fonts, &runs, 8.0, 10.5, 0.0, CONTENT_W)));
        it.keep_with_next = true;
        items.push(it);
    }
    blocks(fonts, items, &a.intro);
    for c in &a.clauses {
        clause_items(fonts, items, c, draft);
    }
}

fn signature_items(fonts: &Fonts, items: &mut Vec<Item>, doc: &Document) {
    if doc.signatures.is_empty() {
        return;
    }
    let mut head = text_lines(fonts, &[Run { text: "Signatures".into(), bold: true }], 12.0, 16.0, 0.0, CONTENT_W);
    let intro = signature_intro(doc).to_string();
    head.extend(text_lines(fonts, &[Run { text: intro, bold: false }], BODY, LEADING, 0.0, CONTENT_W));
    let signers: Vec<Vec<Line>> = doc.signatures.iter().map(|s| signer_lines(fonts, s)).collect();

    // The whole block stays on one page; only a block taller than a page (many signers) is
    // split, and then between signers, never inside one.
    let gap = Line { height: 14.0, spans: Vec::new(), rules: Vec::new() };
    let whole: f32 =
        head.iter().chain(signers.iter().flatten()).map(|l| l.height).sum::<f32>() + gap.height * signers.len() as f32;
    if whole <= TOP - MARGIN {
        let mut lines = head;
        for s in signers {
            lines.push(gap.clone());
            lines.extend(s);
        }
        let mut item = Item::new(18.0, lines);
        item.unbreakable = true;
        items.push(item);
    } else {
        let mut item = Item::new(18.0, head);
        item.keep_with_next = true;
        items.push(item);
        for s in signers {
            let mut item = Item::new(14.0, s);
            item.unbreakable = true;
            items.push(item);
        }
    }
}

fn signer_lines(fonts: &Fonts, s: &super::model::SignatureLine) -> Vec<Line> {
    let mut lines = text_lines(
        fonts,
        &[Run { text: format!("{} ({})", s.party_name, s.party_label), bold: true }],
        BODY,
        LEADING,
        0.0,
        CONTENT_W,
    );
    let mut by = text_lines(fonts, &[Run { text: "By:".into(), bold: false }], BODY, 26.0, 0.0, CONTENT_W);
    if let Some(l) = by.first_mut() {
        l.rules.push(Rule::Underline { x1: 28.0, x2: 300.0 });
    }
    lines.extend(by);
    for (label, value) in [("Name:", s.signer_name.as_str()), ("Title:", s.signer_title.as_str())] {
        lines.extend(text_lines(
            fonts,
            &[Run { text: format!("{label} {value}"), bold: false }],
            BODY,
            LEADING,
            0.0,
            CONTENT_W,
        ));
    }
    let mut date = text_lines(fonts, &[Run { text: "Date:".into(), bold: false }], BODY, 20.0, 0.0, CONTENT_W);
    if let Some(l) = date.first_mut() {
        l.rules.push(Rule::Underline { x1: 32.0, x2: 180.0 });
    }
    lines.extend(date);
    lines
}

/// Flows the whole document into items.
fn flow(fonts: &Fonts, doc: &Document) -> Vec<Item> {
    let mut items = Vec::new();
    items.push(Item::new(0.0, centered(fonts, &doc.title, Face::Bold, 18.0, 24.0)));
    for s in &doc.subtitle {
        items.push(Item::new(2.0, centered(fonts, s, Face::Regular, 11.0, 15.0)));
    }
    if let Some(notice) = &doc.draft_notice {
        let mut lines = text_lines(
            fonts,
            &[Run { text: "DRAFT FOR REVIEW BY COUNSEL".into(), bold: true }],
            9.5,
            13.0,
            8.0,
            CONTENT_W - 16.0,
        );
        lines.extend(text_lines(fonts, &[Run { text: notice.clone(), bold: false }], 9.5, 12.5, 8.0, CONTENT_W - 16.0));
        let mut item = Item::new(14.0, lines);
        item.unbreakable = true;
        item.framed = true;
        items.push(item);
    }
    for (i, p) in doc.parties.iter().enumerate() {
        items.push(Item::new(if i == 0 { 16.0 } else { 6.0 }, text_lines(fonts, p, BODY, LEADING, 0.0, CONTENT_W)));
    }
    for a in &doc.articles {
        if !a.heading.is_empty() {
            items.push(heading_item(fonts, &format!("{}. {}", a.number, a.heading), 11.5, 11.0));
        }
        blocks(fonts, &mut items, &a.intro);
        for c in &a.clauses {
            clause_items(fonts, &mut items, c, doc.draft_notice.is_some());
        }
    }
    for a in &doc.attachments {
        attachment_items(fonts, &mut items, a, doc.draft_notice.is_some());
    }
    signature_items(fonts, &mut items, doc);
    items
}

/// Lays the document out on pages.
pub fn layout(fonts: &Fonts, doc: &Document) -> Vec<Page> {
    let items = flow(fonts, doc);
    let mut pages = vec![Page::default()];
    let mut y = TOP;
    let mut at_top = true;

    // Keep-with-next needs to look ahead, so heights are read from the list while lines are
    // moved out of it (no per-line clone).
    let heads: Vec<(f32, f32, bool)> =
        items.iter().map(|it| (it.space_before, first_lines(&it.lines, 2), it.keep_with_next)).collect();
    for (i, item) in items.into_iter().enumerate() {
        let space = if at_top { 0.0 } else { item.space_before };
        // What must fit together with this item's first line(s).
        let mut need = if item.unbreakable { item.height() } else { first_lines(&item.lines, 2) };
        if item.keep_with_next {
            need = item.height();
            let mut j = i + 1;
            // Headings chain: a clause heading under an article heading keeps both with text.
            while let Some(&(space, first, keep)) = heads.get(j) {
                need += space + first;
                if !keep {
                    break;
                }
                j += 1;
            }
        }
        let fits_fresh = need <= TOP - MARGIN;
        if (item.page_break_before && !at_top) || (!at_top && y - space - need < MARGIN && fits_fresh) {
            pages.push(Page::default());
            y = TOP;
            at_top = true;
        }
        let space = if at_top { 0.0 } else { item.space_before };
        y -= space;
        let frame_top = y;
        let n = item.lines.len();
        let second = item.lines.get(1).map_or(0.0, |l| l.height);
        let framed = item.framed;
        for (k, line) in item.lines.into_iter().enumerate() {
            // Orphan control: never leave a paragraph's only line behind at a page foot.
            let orphan = k == 0 && n > 1 && y - line.height - second < MARGIN;
            if y - line.height < MARGIN || (orphan && !at_top) {
                if framed {
                    close_frame(&mut pages, frame_top, y);
                }
                pages.push(Page::default());
                y = TOP;
            }
            y -= line.height;
            if let Some(page) = pages.last_mut() {
                // Baseline sits a little above the line box bottom.
                page.lines.push((y + line.height * 0.25, line));
            }
            at_top = false;
        }
        if framed {
            close_frame(&mut pages, frame_top, y);
        }
    }
    pages
}

fn close_frame(pages: &mut [Page], top: f32, bottom: f32) {
    if let Some(p) = pages.last_mut() {
        p.frames.push(Frame { top: top + 2.0, bottom: bottom - 4.0 });
    }
}

fn first_lines(lines: &[Line], n: usize) -> f32 {
    lines.iter().take(n).map(|l| l.height).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fonts::fonts;

    #[test]
    fn wrapped_lines_fit_the_measure_and_keep_every_word() {
        let text = "Business Associate shall not use or disclose Protected Health Information other than as permitted or required by this Agreement or as Required by Law, and shall use appropriate safeguards. ".repeat(4);
        let runs = [Run { text: text.trim().to_string(), bold: false }];
        let lines = wrap(fonts(), &runs, BODY, CONTENT_W);
        assert!(lines.len() >= 4);
        for l in &lines {
            let w: f32 = l.iter().map(|s| s.x + fonts().regular.width(s.text.trim_end(), BODY)).fold(0.0, f32::max);
            assert!(w <= CONTENT_W + 0.01, "line too wide: {w}");
        }
        let joined: Vec<String> = lines.iter().map(|l| l.iter().map(|s| &*s.text).collect::<String>()).collect();
        assert_eq!(
            joined.join(" ").split_whitespace().collect::<Vec<_>>(),
            text.split_whitespace().collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_paragraph_wrapped_again_comes_from_the_cache_exactly_as_first_wrapped() {
        let runs = vec![
            Run { text: "Business Associate shall report to Covered Entity any ".into(), bold: false },
            Run { text: "Breach of Unsecured PHI".into(), bold: true },
            Run {
                text: " without unreasonable delay and in no case later than ten days after discovery.".into(),
                bold: false,
            },
        ];
        let first = wrap(fonts(), &runs, BODY, CONTENT_W);
        assert_eq!(first, wrap_uncached(fonts(), &runs, BODY, CONTENT_W));
        assert_eq!(wrap(fonts(), &runs, BODY, CONTENT_W), first);
        // the width is part of the key: a narrower measure is wrapped afresh, into more lines
        let narrow = wrap(fonts(), &runs, BODY, 120.0);
        assert_eq!(narrow, wrap_uncached(fonts(), &runs, BODY, 120.0));
        assert!(narrow.len() > first.len());
    }

    #[test]
    fn a_clause_laid_out_again_comes_from_the_cache_exactly_as_first_laid_out() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/intake/baa-tx-ca.json"))
            .expect("example");
        let intake = crate::domain::parse::parse_intake(&text, &crate::render::fonts::printable).expect("parses");
        let renderer = crate::render::Renderer::builtin().expect("templates");
        let (doc, _, _) = renderer.document(&intake, crate::render::Options::default()).expect("document");
        let mut seen = 0;
        for draft in [true, false] {
            for c in doc.clauses() {
                let mut plain = Vec::new();
                clause_items_uncached(fonts(), &mut plain, c, draft);
                for _ in 0..2 {
                    let mut kept = vec![Item::new(0.0, Vec::new())];
                    clause_items(fonts(), &mut kept, c, draft);
                    assert_eq!(&kept[1..], &plain[..], "clause {} (draft {draft})", c.number);
                }
                seen += 1;
            }
        }
        assert!(seen > 40, "{seen} clauses");
        // Another clause under the same heading, and the draft flag, are different keys.
        let c = doc.clauses().find(|c| !c.elements.is_empty()).expect("a clause with elements");
        let mut other = c.clone();
        other.elements.clear();
        let (mut a, mut b, mut d) = (Vec::new(), Vec::new(), Vec::new());
        clause_items(fonts(), &mut a, c, true);
        clause_items(fonts(), &mut b, &other, true);
        clause_items(fonts(), &mut d, c, false);
        assert_ne!(a, b, "the citation note goes with the elements");
        assert_ne!(a, d, "the draft names the elements, the copy for signature does not");
        let mut again = Vec::new();
        clause_items_uncached(fonts(), &mut again, &other, true);
        assert_eq!(b, again);
    }

    #[test]
    fn a_word_wider_than_the_line_is_split_not_lost() {
        let long = "x".repeat(400);
        let lines = wrap(fonts(), &[Run { text: long.clone(), bold: false }], BODY, 100.0);
        assert!(lines.len() > 1);
        let joined: String = lines.iter().flat_map(|l| l.iter().map(|s| &*s.text)).collect();
        assert_eq!(joined, long);
    }

    #[test]
    fn bold_and_regular_runs_share_a_line() {
        let runs = [
            Run { text: "The ".into(), bold: false },
            Run { text: "Covered Entity".into(), bold: true },
            Run { text: "’s duties.".into(), bold: false },
        ];
        let lines = wrap(fonts(), &runs, BODY, CONTENT_W);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), 3);
        assert!(lines[0][1].x > lines[0][0].x && lines[0][2].x > lines[0][1].x);
    }
}
