//! The document model: what an agreement says, independent of pages.
//!
//! The checker, the PDF layout, the HTML signer page and clause diffs all read this one model,
//! so they can never disagree about what the agreement contains. It is built from the markup
//! that the tera templates produce (CommonMark with heading attributes, parsed by
//! pulldown-cmark); see `templates/README.md` for the conventions.

use std::sync::LazyLock;

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use serde::{Deserialize, Serialize};

/// A run of text in one style.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Run {
    pub text: String,
    pub bold: bool,
}

/// A paragraph-level block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Paragraph {
        runs: Vec<Run>,
    },
    /// `ordered` lists print (a), (b), …; `depth` 0 is the first level.
    Item {
        ordered: bool,
        index: usize,
        depth: usize,
        runs: Vec<Run>,
    },
}

impl Block {
    pub fn runs(&self) -> &[Run] {
        match self {
            Block::Paragraph { runs } | Block::Item { runs, .. } => runs,
        }
    }

    /// The list marker, if any: `•`, `(a)`, `(i)`.
    pub fn marker(&self) -> Option<String> {
        match *self {
            Block::Paragraph { .. } => None,
            Block::Item { ordered: false, .. } => Some("•".into()),
            Block::Item { ordered: true, index, depth, .. } => {
                Some(if depth % 2 == 0 { format!("({})", letters(index)) } else { format!("({})", roman(index + 1)) })
            }
        }
    }

    pub fn plain(&self) -> String {
        plain(self.runs())
    }
}

/// A numbered clause with the element IDs it declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clause {
    /// `2.3`, or `3` inside an addendum.
    pub number: String,
    pub heading: String,
    pub elements: Vec<String>,
    pub body: Vec<Block>,
}

impl Clause {
    /// Heading and body as plain text, for the checker and diffs.
    pub fn text(&self) -> String {
        // Sized once: this runs for every clause of every render (the check reads it), and
        // growing the string a run at a time was the largest single source of reallocation in
        // a profile of a render.
        let runs = || self.body.iter().flat_map(|b| b.runs());
        let len = self.heading.len() + self.body.len() + runs().map(|r| r.text.len()).sum::<usize>();
        let mut s = String::with_capacity(len);
        s.push_str(&self.heading);
        for b in &self.body {
            s.push('\n');
            for r in b.runs() {
                s.push_str(&r.text);
            }
        }
        s
    }
}

/// A numbered article: an introduction and its clauses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Article {
    pub number: u32,
    pub heading: String,
    pub intro: Vec<Block>,
    pub clauses: Vec<Clause>,
}

/// A lettered attachment: a state addendum or an intake exhibit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// `Exhibit A`, `Addendum TX`.
    pub label: String,
    pub heading: String,
    /// Lines printed small under the heading (statute citations, as-of date).
    pub notes: Vec<String>,
    pub intro: Vec<Block>,
    pub clauses: Vec<Clause>,
}

/// A signature block entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureLine {
    pub party_label: String,
    pub party_name: String,
    pub signer_name: String,
    pub signer_title: String,
    pub order: u32,
}

/// A whole agreement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub title: String,
    /// Lines under the title: "between … and …", effective date.
    pub subtitle: Vec<String>,
    /// The parties block: one entry per party, each a few lines.
    pub parties: Vec<Vec<Run>>,
    /// The counsel-review notice, present on drafts only.
    pub draft_notice: Option<String>,
    pub articles: Vec<Article>,
    pub attachments: Vec<Attachment>,
    pub signature_note: Option<String>,
    pub signatures: Vec<SignatureLine>,
    /// Document information dictionary fields.
    pub subject: String,
    pub author: String,
}

impl Document {
    /// Every clause, body first, then attachments.
    pub fn clauses(&self) -> impl Iterator<Item = &Clause> {
        self.articles.iter().flat_map(|a| &a.clauses).chain(self.attachments.iter().flat_map(|a| &a.clauses))
    }

    /// Every heading of the body, as printed (`1. Definitions`, `1.1 Terms`).
    pub fn headings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for a in &self.articles {
            if !a.heading.is_empty() {
                out.push(format!("{}. {}", a.number, a.heading));
            }
            for c in &a.clauses {
                out.push(format!("{} {}", c.number, c.heading));
            }
        }
        out
    }
}

/// One parsed markup node, before articles are assembled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Heading { level: u8, text: String, classes: Vec<String> },
    Block(Block),
}

/// Parses template output into nodes. Inline HTML, code and links print as their literal text
/// (the escape function makes intake values literal; this keeps template authors' mistakes
/// visible rather than silently dropped).
pub fn parse_markup(md: &str) -> Vec<Node> {
    let mut nodes = Vec::new();
    let mut runs: Vec<Run> = Vec::new();
    let mut bold = 0usize;
    // (ordered, next index) per open list.
    let mut lists: Vec<(bool, usize)> = Vec::new();
    let mut heading: Option<(u8, Vec<String>)> = None;
    let mut in_item = false;

    let push = |runs: &mut Vec<Run>, text: &str, bold: bool| {
        if text.is_empty() {
            return;
        }
        match runs.last_mut() {
            Some(last) if last.bold == bold => last.text.push_str(text),
            _ => runs.push(Run { text: text.to_string(), bold }),
        }
    };
    let flush = |runs: &mut Vec<Run>, nodes: &mut Vec<Node>, lists: &[(bool, usize)], in_item: bool| {
        let runs = std::mem::take(runs);
        let runs = trim_runs(runs);
        if runs.is_empty() {
            return;
        }
        let block = match (in_item, lists.last()) {
            (true, Some(&(ordered, next))) => {
                Block::Item { ordered, index: next.saturating_sub(1), depth: lists.len() - 1, runs }
            }
            _ => Block::Paragraph { runs },
        };
        nodes.push(Node::Block(block));
    };

    for event in Parser::new_ext(md, Options::ENABLE_HEADING_ATTRIBUTES) {
        match event {
            Event::Start(Tag::Heading { level, classes, .. }) => {
                flush(&mut runs, &mut nodes, &lists, in_item);
                let level = match level {
                    HeadingLevel::H1 => 1,
                    HeadingLevel::H2 => 2,
                    _ => 3,
                };
                heading = Some((level, classes.iter().map(|c| c.to_string()).collect()));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((level, classes)) = heading.take() {
                    let text = plain(&trim_runs(std::mem::take(&mut runs)));
                    nodes.push(Node::Heading { level, text, classes });
                }
            }
            Event::Start(Tag::List(start)) => {
                flush(&mut runs, &mut nodes, &lists, in_item);
                lists.push((start.is_some(), 0));
            }
            Event::End(TagEnd::List(_)) => {
                flush(&mut runs, &mut nodes, &lists, in_item);
                lists.pop();
                in_item = !lists.is_empty();
            }
            Event::Start(Tag::Item) => {
                flush(&mut runs, &mut nodes, &lists, in_item);
                if let Some(l) = lists.last_mut() {
                    l.1 += 1;
                }
                in_item = true;
            }
            Event::End(TagEnd::Item) => flush(&mut runs, &mut nodes, &lists, in_item),
            Event::Start(Tag::Paragraph) if !in_item => {
                flush(&mut runs, &mut nodes, &lists, in_item);
            }
            Event::End(TagEnd::Paragraph) => flush(&mut runs, &mut nodes, &lists, in_item),
            Event::Start(Tag::Strong) => bold += 1,
            Event::End(TagEnd::Strong) => bold = bold.saturating_sub(1),
            Event::Text(t) | Event::Code(t) | Event::InlineHtml(t) | Event::Html(t) => push(&mut runs, &t, bold > 0),
            Event::SoftBreak | Event::HardBreak => push(&mut runs, " ", bold > 0),
            Event::End(TagEnd::CodeBlock) | Event::End(TagEnd::BlockQuote(_)) => {
                flush(&mut runs, &mut nodes, &lists, in_item)
            }
            _ => {}
        }
    }
    flush(&mut runs, &mut nodes, &lists, in_item);
    nodes
}

/// Bytes of markup remembered per thread by [`parse_markup_kept`] (a section's text counted twice,
/// the key and its runs, and 128 bytes a node); then the cache starts again. Sections costing more
/// than a sixteenth of it (`LocalShelf::keeps`) are parsed every time.
const PARSE_CACHE_BYTES: usize = 1 << 20;

/// A section of markup and what [`parse_markup`] made of it.
struct Parsed {
    md: Box<str>,
    nodes: Vec<Node>,
}

thread_local! {
    /// Sections already parsed on this thread, like the line breaks in `layout` and the folded
    /// clauses in `check`: most of an agreement's markup is boilerplate that does not depend on
    /// the intake, and parsing it (pulldown-cmark, then the runs trimmed) was a fifth of a render
    /// (issue 14). A hit compares the whole section, so it gives exactly what the parse would.
    static PARSES: super::shelf::LocalShelf<Parsed> = super::shelf::LocalShelf::new(PARSE_CACHE_BYTES);
}

/// [`parse_markup`], a section at a time, each section from this thread's cache when the same
/// text was parsed before. Sections start at lines that are ATX headings (`#` to `######` at the
/// first column, then a space, a tab or the end of the line): such a line ends every open block
/// but a top-level fenced code block or HTML block, and each section starts and ends with the
/// parser's state empty (no open list, item, heading or emphasis), so the nodes of the sections
/// one after another are the nodes of the whole. Markup where that might not hold — a line
/// opening a fence or an HTML block, a link reference definition (which reaches across the
/// whole text), or a carriage return alone ending a line (which the split does not see) — is
/// parsed whole. (Escaped intake values cannot open any of these, since every
/// ASCII punctuation character in them is escaped; a value holding `]:` only has the text parsed
/// whole.) A property test compares both ways on random markup.
pub fn parse_markup_kept(md: &str) -> Vec<Node> {
    let Some(sections) = sections(md) else {
        return parse_markup(md);
    };
    let mut nodes = Vec::new();
    for section in sections {
        let crc = crc32fast::hash(section.as_bytes());
        if let Some(hit) = PARSES.with(|c| c.find(crc, |p| &*p.md == section)) {
            nodes.extend(hit.nodes.iter().cloned());
            continue;
        }
        let parsed = parse_markup(section);
        // The text twice (the key and the runs), and each node's own allocations.
        let cost = 2 * section.len() + 128 * parsed.len() + 64;
        if PARSES.with(|c| c.keeps(cost)) {
            PARSES.with(|c| c.put(crc, Parsed { md: section.into(), nodes: parsed.clone() }, cost));
        }
        nodes.extend(parsed);
    }
    nodes
}

/// True for a line (without its end) that is an ATX heading at the first column.
fn is_atx_heading(line: &str) -> bool {
    let hashes = line.bytes().take_while(|&b| b == b'#').count();
    (1..=6).contains(&hashes) && matches!(line.as_bytes().get(hashes), None | Some(b' ' | b'\t' | b'\r'))
}

/// The text split before each ATX heading line (every byte in exactly one section), or `None`
/// when a line might open a block that an ATX heading does not end (a fenced code block, an HTML
/// block), the text holds a link reference definition, or a line ends in a carriage return
/// alone (CommonMark's third line ending, which the split below does not see). One pass over
/// the lines.
fn sections(md: &str) -> Option<Vec<&str>> {
    let bytes = md.as_bytes();
    if memchr::memmem::find(bytes, b"]:").is_some()
        || memchr::memchr_iter(b'\r', bytes).any(|i| bytes.get(i + 1) != Some(&b'\n'))
    {
        return None;
    }
    let mut sections = Vec::new();
    let (mut section, mut line) = (0, 0);
    for end in memchr::memchr_iter(b'\n', md.as_bytes()).chain([md.len()]) {
        // Both ends are at a line feed or the text's end, so on character boundaries.
        let text = md.get(line..end).unwrap_or_default();
        let t = text.trim_start_matches(' ');
        // Four spaces or more is an indented code line, which a heading ends.
        if text.len() - t.len() < 4 && (t.starts_with("```") || t.starts_with("~~~") || t.starts_with('<')) {
            return None;
        }
        if line > section && is_atx_heading(text) {
            sections.extend(md.get(section..line));
            section = line;
        }
        line = end + 1;
    }
    if section < md.len() {
        sections.extend(md.get(section..));
    }
    Some(sections)
}

/// Assembles nodes into articles (`##`) with clauses (`###`). Blocks before the first article
/// are returned as `intro`.
pub fn articles(nodes: Vec<Node>) -> (Vec<Block>, Vec<Article>) {
    let mut intro = Vec::new();
    let mut out: Vec<Article> = Vec::new();
    for node in nodes {
        match node {
            Node::Heading { level: 1 | 2, text, .. } => {
                let number = out.len() as u32 + 1;
                out.push(Article { number, heading: text, intro: Vec::new(), clauses: Vec::new() });
            }
            Node::Heading { text, classes, .. } => {
                if out.is_empty() {
                    out.push(Article { number: 1, heading: String::new(), intro: Vec::new(), clauses: Vec::new() });
                }
                if let Some(article) = out.last_mut() {
                    let number = format!("{}.{}", article.number, article.clauses.len() + 1);
                    article.clauses.push(Clause { number, heading: text, elements: classes, body: Vec::new() });
                }
            }
            Node::Block(b) => match out.last_mut() {
                None => intro.push(b),
                Some(a) => match a.clauses.last_mut() {
                    Some(c) => c.body.push(b),
                    None => a.intro.push(b),
                },
            },
        }
    }
    (intro, out)
}

/// Assembles an addendum or exhibit body: clauses numbered `1`, `2`, … with the blocks before
/// the first heading as intro.
pub fn clauses(nodes: Vec<Node>) -> (Vec<Block>, Vec<Clause>) {
    let mut intro = Vec::new();
    let mut out: Vec<Clause> = Vec::new();
    for node in nodes {
        match node {
            Node::Heading { text, classes, .. } => {
                let number = (out.len() + 1).to_string();
                out.push(Clause { number, heading: text, elements: classes, body: Vec::new() });
            }
            Node::Block(b) => match out.last_mut() {
                Some(c) => c.body.push(b),
                None => intro.push(b),
            },
        }
    }
    (intro, out)
}

/// The escape function for intake values in templates: every ASCII punctuation character is
/// backslash-escaped (CommonMark treats any escaped punctuation as literal), and line breaks
/// fold to spaces so a value can never start a heading, list or code block.
pub fn escape_markup(input: &str, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    // A byte at a time: every byte of a multi-byte character is above 0x7F and passes through,
    // so this is the character-wise rule. What needs no change is written a slice at a time.
    let bytes = input.as_bytes();
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b.is_ascii_punctuation() {
            out.write_all(&bytes[from..i])?;
            out.write_all(b"\\")?;
            from = i; // the punctuation itself starts the next slice
        } else if matches!(b, b'\n' | b'\r' | b'\t') {
            out.write_all(&bytes[from..i])?;
            out.write_all(b" ")?;
            from = i + 1;
        }
    }
    out.write_all(&bytes[from..])
}

/// Concatenated text of runs.
pub fn plain(runs: &[Run]) -> String {
    runs.iter().map(|r| r.text.as_str()).collect()
}

/// Trims leading/trailing whitespace across runs and folds inner whitespace runs to one space.
fn trim_runs(runs: Vec<Run>) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::with_capacity(runs.len());
    let mut prev_space = true;
    for r in runs {
        // Most runs have no whitespace but single spaces: nothing to fold, so the text is kept
        // as it is (all but a leading space after a space).
        if folds_nothing(r.text.as_bytes()) {
            let mut text = r.text;
            if prev_space && text.starts_with(' ') {
                text.remove(0);
            }
            if !text.is_empty() {
                prev_space = text.ends_with(' ');
                out.push(Run { text, bold: r.bold });
            }
            continue;
        }
        // In place, a byte at a time for ASCII, decoding only the rest: this runs over every
        // word of every agreement. Each character becomes at most itself (whitespace of any
        // width becomes one space), so the write position never passes the read position.
        let mut v = r.text.into_bytes();
        let (mut rd, mut w) = (0, 0);
        while rd < v.len() {
            let b = v[rd];
            let (len, space) = if b.is_ascii() {
                (1, ascii_space_byte(b))
            } else {
                let len = match b {
                    0xC0..=0xDF => 2,
                    0xE0..=0xEF => 3,
                    _ => 4,
                };
                let c = v.get(rd..rd + len).and_then(|c| std::str::from_utf8(c).ok()).and_then(|c| c.chars().next());
                (len, c.is_some_and(char::is_whitespace))
            };
            if space {
                if !prev_space {
                    v[w] = b' ';
                    w += 1;
                }
                prev_space = true;
            } else {
                if len == 1 {
                    v[w] = b;
                } else {
                    v.copy_within(rd..rd + len, w);
                }
                w += len;
                prev_space = false;
            }
            rd += len;
        }
        v.truncate(w);
        // Whole characters were kept, so this is UTF-8; the fallback is never taken.
        let text = String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        if !text.is_empty() {
            out.push(Run { text, bold: r.bold });
        }
    }
    drop_trailing_space(&mut out);
    out
}

/// True when `t` (UTF-8) has no whitespace but single ASCII spaces, so folding whitespace
/// changes nothing: a search for a double space, then one pass over the bytes that looks only at
/// the lead bytes of the characters `char::is_whitespace` accepts: U+0009–U+000D, U+0085,
/// U+00A0, U+1680, U+2000–U+200A, U+2028, U+2029, U+202F, U+205F, U+3000 (a unit test checks
/// every `char` against it).
fn folds_nothing(t: &[u8]) -> bool {
    // Bytes that may start whitespace other than a single space: a table lookup per byte, so
    // letters, digits, punctuation and continuation bytes cost one load and a branch that is
    // almost never taken.
    const LEADS: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 128 {
            // A single ASCII space is the one whitespace that folds to itself.
            t[b as usize] = ascii_space_byte(b) && b != b' ';
            b += 1;
        }
        t[0xC2] = true;
        t[0xE1] = true;
        t[0xE2] = true;
        t[0xE3] = true;
        t
    };
    static DOUBLE_SPACE: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"  "));
    if DOUBLE_SPACE.find(t).is_some() {
        return false;
    }
    for (i, &b) in t.iter().enumerate() {
        if !LEADS[usize::from(b)] {
            continue;
        }
        let next = |k: usize| t.get(i + k).copied().unwrap_or(0);
        let space = match b {
            0xC2 => matches!(next(1), 0x85 | 0xA0),
            0xE1 => next(1) == 0x9A && next(2) == 0x80,
            0xE2 => matches!((next(1), next(2)), (0x80, 0x80..=0x8A | 0xA8 | 0xA9 | 0xAF) | (0x81, 0x9F)),
            0xE3 => next(1) == 0x80 && next(2) == 0x80,
            _ => true, // ASCII whitespace but the space
        };
        if space {
            return false;
        }
    }
    true
}

/// Drops the space that ends the last run (and the run, when nothing else is left of it).
fn drop_trailing_space(out: &mut Vec<Run>) {
    while let Some(last) = out.last_mut() {
        if last.text.ends_with(' ') {
            last.text.pop();
        }
        if last.text.is_empty() {
            out.pop();
        } else {
            break;
        }
    }
}

/// The ASCII bytes `char::is_whitespace` accepts (`u8::is_ascii_whitespace` leaves out the
/// vertical tab).
pub(crate) const fn ascii_space_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// `a`, `b`, … `z`, `aa`: list markers (and, upper-cased, exhibit letters).
pub fn letters(mut i: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'a' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

fn roman(mut n: usize) -> String {
    const T: [(usize, &str); 9] =
        [(100, "c"), (90, "xc"), (50, "l"), (40, "xl"), (10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i")];
    let mut s = String::new();
    for (v, r) in T {
        while n >= v {
            s.push_str(r);
            n -= v;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_trimmed_and_their_inner_whitespace_folded_like_char_is_whitespace_says() {
        // The rule, one character at a time, as it was written before the fast path.
        fn reference(runs: &[Run]) -> Vec<Run> {
            let mut out: Vec<Run> = Vec::new();
            let mut prev_space = true;
            for r in runs {
                let mut text = String::new();
                for c in r.text.chars() {
                    if c.is_whitespace() {
                        if !prev_space {
                            text.push(' ');
                        }
                        prev_space = true;
                    } else {
                        text.push(c);
                        prev_space = false;
                    }
                }
                if !text.is_empty() {
                    out.push(Run { text, bold: r.bold });
                }
            }
            // The end is trimmed as it always was; what changed is the folding above.
            drop_trailing_space(&mut out);
            out
        }
        let cases: &[&[&str]] = &[
            &["  The  Covered\tEntity ", " shall\n\n", "  "],
            &["a\u{a0}\u{a0}b", "\u{2028}c\u{3000}", "d\x0b\x0ce\x1f"],
            &["Zoë  Ångström — ", "“quoted”\u{85}", ""],
            &["", "   ", "\u{202f}"],
            &["word", "word", " word "],
            &[" é é ", "é", "\u{a0}x \u{a0} y "],
            &["É\n\nÉ", " ", "z"],
            &["a ", " b", "  c  d ", " ", "e"],
            &[" lead", "trail ", " ", "x  y"],
            &["a\u{200b}b ", "\u{1680}c\u{2000}\u{200a}d", " e\u{205f}\u{2029}f\u{feff} "],
        ];
        for case in cases {
            let runs: Vec<Run> =
                case.iter().enumerate().map(|(i, t)| Run { text: (*t).to_string(), bold: i % 2 == 1 }).collect();
            assert_eq!(trim_runs(runs.clone()), reference(&runs), "{case:?}");
        }
    }

    #[test]
    fn folds_nothing_is_false_exactly_where_a_character_is_whitespace_or_a_space_doubles() {
        let mut buf = [0u8; 4];
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let alone = c.encode_utf8(&mut buf).to_string();
            let text = format!("Zoë{alone}x, “quoted” — §{alone}");
            assert_eq!(folds_nothing(text.as_bytes()), !c.is_whitespace() || c == ' ', "U+{:04X}", u32::from(c));
        }
        assert!(folds_nothing(b""));
        assert!(!folds_nothing(b"a  b"));
        assert!(!folds_nothing(b"a b  "));
    }

    /// Lines that open, continue and close every kind of block, headings among them, and the
    /// constructs that make a text unsafe to split (which must then be parsed whole).
    const LINES: &[&str] = &[
        "## Article {.elements}",
        "### 1.1 Clause",
        "# Title",
        "#### deep",
        "###### six",
        "####### seven is text",
        "#hashtag is text",
        "##",
        "## ends ##",
        "Plain text with **bold** and *em*.",
        "a line that continues",
        "**bold start",
        "end bold** after",
        "",
        "",
        "- bullet",
        "  - nested bullet",
        "1. first",
        "2. second",
        "   continued in the item",
        "    indented code",
        "> quoted",
        "---",
        "===",
        "   ## three spaces",
        "\t## after a tab",
        "text with a hard break  ",
        "`code` and <span>",
        "- ```",
        "> <div>",
        "> ```",
        "see [ref]",
        "\\## escaped",
    ];

    /// Lines after which a text must be parsed whole.
    const UNSAFE: &[&str] = &["```", "~~~", "<div>", "<!-- note", "[ref]: /url", "  ```"];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2_000, failure_persistence: None, ..Default::default() })]
        #[test]
        fn markup_parsed_a_section_at_a_time_and_from_the_cache_gives_the_nodes_of_the_whole(
            picks in proptest::collection::vec(0..LINES.len(), 0..40),
            unsafe_line in proptest::option::weighted(0.2, (0..UNSAFE.len(), 0..40usize)),
            // Each line's ending: mostly LF, some CRLF, now and then a carriage return alone.
            endings in proptest::collection::vec(proptest::sample::select(vec![0, 0, 0, 1, 1, 2]), 41),
            final_newline in proptest::bool::ANY,
        ) {
            let mut lines: Vec<&str> = picks.iter().map(|&i| LINES[i]).collect();
            if let Some((u, at)) = unsafe_line {
                lines.insert(at.min(lines.len()), UNSAFE[u]);
            }
            let mut md = String::new();
            for (i, line) in lines.iter().enumerate() {
                md.push_str(line);
                if i + 1 < lines.len() || final_newline {
                    md.push_str(["\n", "\r\n", "\r"][endings[i]]);
                }
            }
            let whole = parse_markup(&md);
            proptest::prop_assert_eq!(&parse_markup_kept(&md), &whole, "first: {:?}", md);
            // Again: now every section comes from the cache.
            proptest::prop_assert_eq!(&parse_markup_kept(&md), &whole, "cached: {:?}", md);
            if let Some(parts) = sections(&md) {
                proptest::prop_assert_eq!(parts.concat(), md);
            }
        }
    }

    #[test]
    fn sections_start_at_atx_headings_and_unsafe_markup_is_not_split() {
        let md = "intro\n## One\ntext\n#tag\n### 1.1 Two\n- item\n####### seven\n";
        assert_eq!(sections(md), Some(vec!["intro\n", "## One\ntext\n#tag\n", "### 1.1 Two\n- item\n####### seven\n"]));
        assert_eq!(sections("## A\r\nx\r\n## B"), Some(vec!["## A\r\nx\r\n", "## B"]));
        assert_eq!(sections(""), Some(vec![]));
        assert_eq!(sections("## A\r```\n## B\n"), None, "a carriage return alone ends a line too");
        assert_eq!(sections("- ```\n## B\n"), Some(vec!["- ```\n", "## B\n"]), "a heading ends a list's fence");
        for unsafe_md in ["a\n```\n## x\n```\n", "a\n<pre>\n## x\n</pre>\n", "[a]: /b\n## x\n[a]\n", "   ~~~\n## x\n"] {
            assert_eq!(sections(unsafe_md), None, "{unsafe_md:?}");
        }
        assert!(sections("    ```\n## x\n").is_some(), "an indented fence is a code line");
    }

    fn esc(s: &str) -> String {
        let mut v = Vec::new();
        escape_markup(s, &mut v).expect("write to vec");
        String::from_utf8(v).expect("utf8")
    }

    #[test]
    fn escaping_a_slice_at_a_time_gives_what_escaping_a_character_at_a_time_gave() {
        fn reference(input: &str) -> String {
            let mut out = String::new();
            for c in input.chars() {
                if c.is_ascii_punctuation() {
                    out.push('\\');
                    out.push(c);
                } else if c == '\n' || c == '\r' || c == '\t' {
                    out.push(' ');
                } else {
                    out.push(c);
                }
            }
            out
        }
        for t in ["", "plain", "*bold*_x_", "Zoë — “Ångström”\r\n\t§ 164.504(e)", "\\", "é*", "*é", "a\n\nb!", "~`#|<>"]
        {
            assert_eq!(esc(t), reference(t), "{t:?}");
        }
    }

    #[test]
    fn escaped_values_print_literally() {
        for hostile in [
            "**bold**",
            "# 1. Heading",
            "[x](javascript:alert(1))",
            "<script>x</script>",
            "{{ 7*7 }}",
            "- item",
            "1. one",
            "a\n# b",
            "`code`",
            "    indented",
        ] {
            let md = format!("Name: {}\n", esc(hostile));
            let nodes = parse_markup(&md);
            assert_eq!(nodes.len(), 1, "{hostile:?} → {nodes:?}");
            let Node::Block(Block::Paragraph { runs }) = &nodes[0] else { panic!("{nodes:?}") };
            let expected = format!("Name: {}", hostile.replace('\n', " ").trim_end());
            assert_eq!(plain(runs).trim(), expected.split_whitespace().collect::<Vec<_>>().join(" "));
            assert!(runs.iter().all(|r| !r.bold), "{hostile:?} must not turn bold");
        }
    }

    #[test]
    fn headings_lists_and_classes_become_articles_and_clauses() {
        let md = "## Definitions\n\nIntro.\n\n### Terms {.BAA-01 .BAA-02}\n\nBody **Term** text.\n\n1. first\n2. second\n\n- bullet\n\n## Term\n\n### Length\n\nText.\n";
        let (intro, arts) = articles(parse_markup(md));
        assert!(intro.is_empty());
        assert_eq!(arts.len(), 2);
        assert_eq!(arts[0].heading, "Definitions");
        assert_eq!(arts[0].clauses[0].number, "1.1");
        assert_eq!(arts[0].clauses[0].elements, vec!["BAA-01", "BAA-02"]);
        let body = &arts[0].clauses[0].body;
        assert_eq!(body.len(), 4);
        assert_eq!(body[0].runs()[1], Run { text: "Term".into(), bold: true });
        assert_eq!(body[1].marker().as_deref(), Some("(a)"));
        assert_eq!(body[2].marker().as_deref(), Some("(b)"));
        assert_eq!(body[3].marker().as_deref(), Some("•"));
        assert_eq!(arts[1].clauses[0].number, "2.1");
    }

    #[test]
    fn list_letters_continue_past_z() {
        assert_eq!(letters(0), "a");
        assert_eq!(letters(25), "z");
        assert_eq!(letters(26), "aa");
        assert_eq!(roman(4), "iv");
    }
}
