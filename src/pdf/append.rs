//! Appending pages to a sent PDF as an *incremental update*.
//!
//! "What was signed is what is archived": once a document has been sent its bytes never change.
//! The executed signature page and the certificate of completion are therefore added the way
//! PDF itself provides for later changes — an update section written after the original's
//! `%%EOF` — so the sent bytes are an exact prefix of the archived file, and anyone can cut the
//! file at the original length and get back, byte for byte, what was sent.
//!
//! The update section holds:
//! - every object of the appendix reachable from its pages (page dictionaries, content streams,
//!   fonts, descriptors, font files, `ToUnicode` maps, resources), renumbered above the
//!   original's highest object number, streams copied as they were (still compressed) — except
//!   streams the original already holds byte for byte (dictionary without references, same
//!   dictionary, same bytes): those are referenced, not repeated. For Countersign that is the
//!   embedded Noto Serif font programs, ~30 KB of a ~34 KB appendix;
//! - a new revision of the original's page-tree root (the catalog's `/Pages`) whose `/Kids` gain
//!   the new pages and whose `/Count` grows by as many. Nested trees work the same way: the pages
//!   go last in the root's `/Kids`, so they come after every existing page;
//! - the catalog, only if the appendix needs a newer PDF version than the original declares;
//! - a cross-reference section of the same kind as the original's (a classic table for what
//!   `render::pdf` writes, a stream for files that use cross-reference streams) listing only these
//!   objects, and a trailer with `/Size`, `/Prev` (the original's `startxref`), `/Root`, `/Info`
//!   and an `/ID` that keeps the original's permanent first element.
//!
//! Each appended page carries its own `/Resources`, `/MediaBox` (and `/CropBox`, `/Rotate` when
//! it has them), copied down from the appendix's page tree, so nothing is inherited from the
//! original's tree and font names such as `F1` may be the same in both files.
//!
//! The section is written by lopdf's [`IncrementalDocument`], which puts a `%PDF-x.y` comment
//! line and a binary-mark comment at the start of the section (harmless comments). The
//! result is re-read before it is returned: if it does not parse to the original's pages plus
//! the appendix's, the function fails instead of handing back a file that would not archive.

use std::collections::{BTreeMap, HashMap, HashSet};

use lopdf::{Dictionary, Document, IncrementalDocument, Object, ObjectId, StringFormat};

use crate::render::pdf::id_of;

/// Why pages could not be appended.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// One of the inputs is not a PDF lopdf can read.
    #[error("cannot read the {0}")]
    Parse(String),
    /// The PDFs parse, but their structure does not allow the append (no pages, encrypted, a
    /// page tree that is not where the catalog says, …).
    #[error("cannot append pages: {0}")]
    Structure(String),
}

/// Page attributes a page may inherit from its ancestors (ISO 32000-1, table 30).
const INHERITABLE: [&[u8]; 4] = [b"Resources", b"MediaBox", b"CropBox", b"Rotate"];

/// Bound on `/Parent` walks, so a cyclic tree cannot loop.
const MAX_TREE_DEPTH: usize = 256;

/// Appends every page of `appendix` (a complete PDF) after the last page of `original`, as one
/// incremental update: original bytes unchanged and a byte prefix of the result.
pub fn append_pages(original: &[u8], appendix: &[u8]) -> Result<Vec<u8>, AppendError> {
    // lopdf reads offsets relative to the `%PDF-` header but writes the update's offsets
    // relative to the start of the buffer; the two agree only if the header comes first.
    if !original.starts_with(b"%PDF-") {
        return Err(AppendError::Parse("original: it does not start with a %PDF- header".into()));
    }
    let prev = load(original, "original")?;
    let extra = load(appendix, "appendix")?;
    // lopdf opens files encrypted with an empty user password and drops `/Encrypt`, so ask
    // both ways. Countersign's own documents are never encrypted.
    for (doc, what) in [(&prev, "original"), (&extra, "appendix")] {
        if doc.is_encrypted() || doc.was_encrypted() {
            return Err(AppendError::Structure(format!("the {what} is encrypted")));
        }
    }

    let root_id = prev
        .trailer
        .get(b"Root")
        .and_then(Object::as_reference)
        .map_err(|_| AppendError::Structure("the original's trailer has no /Root reference".into()))?;
    let tree_id = prev
        .get_dictionary(root_id)
        .and_then(|catalog| catalog.get(b"Pages"))
        .and_then(Object::as_reference)
        .map_err(|_| AppendError::Structure("the original's catalog has no /Pages reference".into()))?;
    let tree = prev
        .get_dictionary(tree_id)
        .map_err(|_| AppendError::Structure("the original's page tree root is not a dictionary".into()))?;
    let old_count = tree
        .get(b"Count")
        .and_then(Object::as_i64)
        .map_err(|_| AppendError::Structure("the original's page tree root has no /Count".into()))?;
    let prev_pages = prev.page_iter().count();

    let pages: Vec<ObjectId> = extra.page_iter().collect();
    if pages.is_empty() {
        return Err(AppendError::Structure("the appendix has no pages".into()));
    }
    let mut seen = HashSet::new();
    if let Some(dup) = pages.iter().find(|&&p| !seen.insert(p)) {
        return Err(AppendError::Structure(format!("the appendix lists page object {} twice", dup.0)));
    }

    // The appendix's pages with inherited attributes copied down, and the objects that must
    // not follow them: its catalog and page-tree nodes.
    let mut exclude: HashSet<ObjectId> = HashSet::new();
    if let Ok(id) = extra.trailer.get(b"Root").and_then(Object::as_reference) {
        exclude.insert(id);
    }
    let mut effective = Vec::with_capacity(pages.len());
    for &id in &pages {
        effective.push(effective_page(&extra, id, &mut exclude)?);
    }
    for (&id, object) in &extra.objects {
        if let Ok(dict) = object.as_dict()
            && matches!(dict.get_type(), Ok(b"Pages" | b"Catalog"))
        {
            exclude.insert(id);
        }
    }

    // New object numbers: pages first, then everything they reach, breadth-first in file
    // order, so the same inputs always give the same numbering.
    let first_id = next_object_id(&prev).ok_or_else(|| AppendError::Structure("object numbers exhausted".into()))?;
    // Streams the original already holds byte for byte — in practice the embedded font
    // programs, the bulk of the appendix — are referenced, not copied again.
    let mut known: HashMap<&[u8], Vec<(ObjectId, &Dictionary)>> = HashMap::new();
    for (&id, object) in &prev.objects {
        if let Object::Stream(stream) = object
            && !has_references(&stream.dict)
        {
            known.entry(stream.content.as_slice()).or_default().push((id, &stream.dict));
        }
    }
    let reusable = |object: &Object| match object {
        Object::Stream(stream) if !has_references(&stream.dict) => known
            .get(stream.content.as_slice())
            .and_then(|same| same.iter().find(|(_, dict)| **dict == stream.dict))
            .map(|&(id, _)| id),
        _ => None,
    };
    let mut reused: BTreeMap<ObjectId, ObjectId> = BTreeMap::new();
    let mut order: Vec<ObjectId> = pages.clone();
    let mut queued: HashSet<ObjectId> = pages.iter().copied().collect();
    let mut enqueue = |object: &Object, order: &mut Vec<ObjectId>| {
        let mut refs = Vec::new();
        references(object, &mut refs);
        for r in refs {
            if exclude.contains(&r) || !queued.insert(r) {
                continue;
            }
            let Ok(target) = extra.get_object(r) else { continue };
            match reusable(target) {
                Some(id) => {
                    reused.insert(r, id);
                }
                None => order.push(r),
            }
        }
    };
    for page in &effective {
        page.iter().for_each(|(_, value)| enqueue(value, &mut order));
    }
    let mut i = pages.len();
    while let Some(&old) = order.get(i) {
        i += 1;
        if let Ok(object) = extra.get_object(old) {
            enqueue(object, &mut order);
        }
    }
    let exhausted = || AppendError::Structure("object numbers exhausted".into());
    let last_id = u32::try_from(order.len()).ok().and_then(|n| first_id.checked_add(n - 1)).ok_or_else(exhausted)?;
    // `order[k]` becomes object `first_id + k`; the pages are `order[..pages.len()]`.
    let new_ids: Vec<ObjectId> = (first_id..=last_id).map(|n| (n, 0)).collect();
    let mut renumber = reused;
    renumber.extend(order.iter().copied().zip(new_ids.iter().copied()));

    // Rewrite the appendix objects under their new numbers.
    let mut added: Vec<(ObjectId, Object)> = Vec::with_capacity(order.len());
    for (dict, &new_id) in effective.iter().zip(&new_ids) {
        let mut page = dict.clone();
        renumber_dict(&mut page, &renumber);
        page.set("Parent", Object::Reference(tree_id));
        // The appendix's structure tree is not carried over.
        page.remove(b"StructParents");
        // Nothing should be inherited from the original's tree root.
        for key in INHERITABLE {
            if !page.has(key) && tree.has(key) {
                let default = match key {
                    b"Resources" => Some(Object::Dictionary(Dictionary::new())),
                    b"CropBox" => page.get(b"MediaBox").ok().cloned(),
                    b"Rotate" => Some(Object::Integer(0)),
                    _ => None,
                };
                if let Some(value) = default {
                    page.set(key, value);
                }
            }
        }
        added.push((new_id, Object::Dictionary(page)));
    }
    for (old, &new_id) in order.iter().zip(&new_ids).skip(pages.len()) {
        let Ok(object) = extra.get_object(*old) else { continue };
        let mut object = object.clone();
        renumber_object(&mut object, &renumber);
        if let Object::Stream(stream) = &mut object {
            // The copied bytes are the stream's own; a /Length given by reference is not.
            let len = i64::try_from(stream.content.len()).unwrap_or(i64::MAX);
            stream.dict.set("Length", Object::Integer(len));
        }
        added.push((new_id, object));
    }

    // Trailer facts, taken before `prev` moves into the incremental document.
    let new_count = i64::try_from(pages.len()).ok().and_then(|n| old_count.checked_add(n));
    let new_count = new_count.ok_or_else(|| AppendError::Structure("page count overflows".into()))?;
    let revision = Revision::of(&prev, Object::String(id_of(&[original]).to_vec(), StringFormat::Hexadecimal))
        .ok_or_else(|| AppendError::Structure("startxref out of range".into()))?;
    let revision_id = Object::String(id_of(&[original, appendix]).to_vec(), StringFormat::Hexadecimal);
    let needed_version = newer_version(&prev, &extra);

    let mut inc = IncrementalDocument::create_from(original.to_vec(), prev);
    let new = &mut inc.new_document;
    for (id, object) in added {
        new.objects.insert(id, object);
    }

    // The page-tree root, as a new revision with the pages appended.
    let missing = |what: &str| AppendError::Structure(format!("the original's page tree root: {what}"));
    inc.opt_clone_object_to_new_document(tree_id).map_err(|_| missing("cannot be read"))?;
    let kids_ref = match inc.new_document.get_dictionary(tree_id).and_then(|d| d.get(b"Kids")) {
        Ok(Object::Reference(id)) => Some(*id),
        Ok(Object::Array(_)) => None,
        _ => return Err(missing("no /Kids array")),
    };
    let new_refs = new_ids[..pages.len()].iter().map(|&id| Object::Reference(id));
    if let Some(kids_id) = kids_ref {
        inc.opt_clone_object_to_new_document(kids_id).map_err(|_| missing("/Kids cannot be read"))?;
        match inc.new_document.get_object_mut(kids_id) {
            Ok(Object::Array(kids)) => kids.extend(new_refs),
            _ => return Err(missing("/Kids is not an array")),
        }
    } else {
        let root = inc.new_document.get_dictionary_mut(tree_id).map_err(|_| missing("not a dictionary"))?;
        match root.get_mut(b"Kids") {
            Ok(Object::Array(kids)) => kids.extend(new_refs),
            _ => return Err(missing("no /Kids array")),
        }
    }
    inc.new_document
        .get_dictionary_mut(tree_id)
        .map_err(|_| missing("not a dictionary"))?
        .set("Count", Object::Integer(new_count));

    // A catalog revision only when the appendix needs a newer PDF version.
    if let Some(v) = needed_version {
        inc.opt_clone_object_to_new_document(root_id)
            .map_err(|_| AppendError::Structure("the original's catalog cannot be read".into()))?;
        inc.new_document
            .get_dictionary_mut(root_id)
            .map_err(|_| AppendError::Structure("the original's catalog is not a dictionary".into()))?
            .set("Version", Object::Name(v.into_bytes()));
    }

    revision.finish(&mut inc, root_id, last_id, revision_id);

    let mut out = Vec::with_capacity(original.len() + appendix.len() + 1024);
    inc.save_to(&mut out).map_err(|e| AppendError::Structure(format!("writing the update: {e}")))?;

    // Self-check: the sent bytes are untouched and the result reads as the whole document.
    if !out.starts_with(original) {
        return Err(AppendError::Structure("the update did not preserve the original bytes".into()));
    }
    let total = Document::load_mem(&out)
        .map_err(|e| AppendError::Structure(format!("the result does not parse: {e}")))?
        .page_iter()
        .count();
    if total != prev_pages + pages.len() {
        return Err(AppendError::Structure(format!(
            "the result has {total} pages, expected {} + {}",
            prev_pages,
            pages.len()
        )));
    }
    Ok(out)
}

fn load(bytes: &[u8], what: &str) -> Result<Document, AppendError> {
    Document::load_mem(bytes).map_err(|e| AppendError::Parse(format!("{what}: {e}")))
}

/// A page's dictionary with inherited attributes filled in from its ancestors and `/Parent`
/// removed; the ancestors are added to `tree_nodes`.
fn effective_page(doc: &Document, id: ObjectId, tree_nodes: &mut HashSet<ObjectId>) -> Result<Dictionary, AppendError> {
    let mut page = doc
        .get_dictionary(id)
        .map_err(|_| AppendError::Structure(format!("appendix page {} is not a dictionary", id.0)))?
        .clone();
    let mut parent = page.remove(b"Parent");
    let mut visited = HashSet::new();
    while let Some(Object::Reference(pid)) = parent {
        if visited.len() == MAX_TREE_DEPTH || !visited.insert(pid) {
            break;
        }
        tree_nodes.insert(pid);
        let Ok(node) = doc.get_dictionary(pid) else { break };
        for key in INHERITABLE {
            if !page.has(key)
                && let Ok(value) = node.get(key)
            {
                page.set(key, value.clone());
            }
        }
        parent = node.get(b"Parent").ok().cloned();
    }
    Ok(page)
}

fn has_references(dict: &Dictionary) -> bool {
    let mut refs = Vec::new();
    dict.iter().for_each(|(_, o)| references(o, &mut refs));
    !refs.is_empty()
}

/// Every indirect reference inside `object`, in order.
fn references(object: &Object, out: &mut Vec<ObjectId>) {
    match object {
        Object::Reference(id) => out.push(*id),
        Object::Array(items) => items.iter().for_each(|o| references(o, out)),
        Object::Dictionary(dict) => dict.iter().for_each(|(_, o)| references(o, out)),
        Object::Stream(stream) => stream.dict.iter().for_each(|(_, o)| references(o, out)),
        _ => {}
    }
}

/// Rewrites references through `map`; a reference to an object that is not copied becomes
/// `null`, which is what a reader makes of a reference to a missing object anyway.
fn renumber_object(object: &mut Object, map: &BTreeMap<ObjectId, ObjectId>) {
    match object {
        Object::Reference(id) => {
            *object = map.get(id).map_or(Object::Null, |&new| Object::Reference(new));
        }
        Object::Array(items) => items.iter_mut().for_each(|o| renumber_object(o, map)),
        Object::Dictionary(dict) => renumber_dict(dict, map),
        Object::Stream(stream) => renumber_dict(&mut stream.dict, map),
        _ => {}
    }
}

fn renumber_dict(dict: &mut Dictionary, map: &BTreeMap<ObjectId, ObjectId>) {
    dict.iter_mut().for_each(|(_, o)| renumber_object(o, map));
}

/// `major.minor` of a version string such as `1.7`.
fn parse_version(v: &[u8]) -> Option<(u32, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (major, minor) = s.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The appendix's version, if it is newer than the original's effective version (the later of
/// its header and its catalog's `/Version`).
fn newer_version(prev: &Document, extra: &Document) -> Option<String> {
    let catalog_version = |doc: &Document| {
        doc.catalog().ok().and_then(|c| c.get(b"Version").and_then(Object::as_name).ok()).and_then(parse_version)
    };
    let have = parse_version(prev.version.as_bytes()).max(catalog_version(prev))?;
    let want = parse_version(extra.version.as_bytes()).max(catalog_version(extra))?;
    (want > have).then(|| format!("{}.{}", want.0, want.1))
}

/// The first object number an incremental update may use: above every object the previous
/// revisions hold and above their `/Size`. Shared by the appendix and the seal.
pub(crate) fn next_object_id(prev: &Document) -> Option<u32> {
    let size = prev.trailer.get(b"Size").and_then(Object::as_i64).ok();
    let below_size = size.and_then(|s| u32::try_from(s.saturating_sub(1)).ok()).unwrap_or(0);
    prev.max_id.max(prev.objects.keys().next_back().map_or(0, |id| id.0)).max(below_size).checked_add(1)
}

/// The trailer facts of an incremental update, taken from the previous revision before it moves
/// into the [`IncrementalDocument`]. Shared by the appendix and the seal.
pub(crate) struct Revision {
    xref_start: i64,
    info: Option<Object>,
    permanent_id: Object,
    version: String,
    binary_mark: Vec<u8>,
}

impl Revision {
    /// `fallback_id` becomes the permanent `/ID` when the previous trailer has none. `None` when
    /// the previous `startxref` does not fit a PDF integer.
    pub(crate) fn of(prev: &Document, fallback_id: Object) -> Option<Revision> {
        let permanent_id = match prev.trailer.get(b"ID").and_then(Object::as_array) {
            Ok(ids) if matches!(ids.first(), Some(Object::String(..))) => ids[0].clone(),
            _ => fallback_id,
        };
        Some(Revision {
            xref_start: i64::try_from(prev.xref_start).ok()?,
            info: prev.trailer.get(b"Info").ok().cloned(),
            permanent_id,
            version: prev.version.clone(),
            binary_mark: prev.binary_mark.clone(),
        })
    }

    /// Writes the new section's trailer (`/Root`, `/Info`, `/ID [permanent revision]`, `/Prev`;
    /// `/Size` is filled in when the section is written) and keeps the header's version and
    /// binary mark.
    pub(crate) fn finish(self, inc: &mut IncrementalDocument, root_id: ObjectId, max_id: u32, revision_id: Object) {
        let new = &mut inc.new_document;
        new.max_id = new.max_id.max(max_id);
        new.version = self.version;
        if self.binary_mark.len() >= 4 && self.binary_mark.iter().all(|&b| b >= 128) {
            new.binary_mark = self.binary_mark;
        }
        let mut trailer = Dictionary::new();
        trailer.set("Root", Object::Reference(root_id));
        if let Some(info) = self.info {
            trailer.set("Info", info);
        }
        trailer.set("ID", Object::Array(vec![self.permanent_id, revision_id]));
        trailer.set("Prev", Object::Integer(self.xref_start));
        new.trailer = trailer;
    }
}

/// Test helpers shared with the seal's tests: PDFs made as `render::pdf` makes them, and the
/// real tools that check them.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use lopdf::{Stream, dictionary};
    use std::io::Write;
    use std::process::Command;

    /// A PDF as `render::pdf` makes one (same writer, both embedded faces), regular as
    /// `font_name` and bold as `font_name` + "B"; one entry of `pages` per page, one line per
    /// string, bold where the line starts with `*`.
    pub(crate) fn render(font_name: &str, pages: &[&[&str]]) -> Vec<u8> {
        use crate::render::fonts::{Face, fonts};
        use crate::render::layout::{Line, Page, Span};
        let bold_name = format!("{font_name}B");
        let laid: Vec<Page> = pages
            .iter()
            .map(|lines| Page {
                lines: lines
                    .iter()
                    .enumerate()
                    .map(|(i, line)| {
                        let (face, text) = match line.strip_prefix('*') {
                            Some(bold) => (Face::Bold, bold),
                            None => (Face::Regular, *line),
                        };
                        let span = Span { x: 0.0, text: text.into(), face, size: 12.0, gray: false };
                        (700.0 - 20.0 * i as f32, Line { height: 20.0, spans: vec![span], rules: Vec::new() })
                    })
                    .collect(),
                frames: Vec::new(),
            })
            .collect();
        let id = id_of(&[font_name.as_bytes(), format!("{pages:?}").as_bytes()]);
        let meta = crate::render::pdf::Meta {
            title: "Test",
            subject: "",
            author: "",
            keywords: Vec::new(),
            date_unix: 0,
            header: "Test",
            header_right: "",
            draft: false,
            id,
        };
        crate::render::pdf::write_named(fonts(), &laid, &meta, [font_name, &bold_name])
    }

    fn is_font_file(object: &Object) -> bool {
        matches!(object, Object::Stream(s) if s.dict.has(b"Length1"))
    }

    /// Runs `program args… file` on `pdf`; (success, stdout + stderr).
    pub(crate) fn run(program: &str, args: &[&str], pdf: &[u8]) -> (bool, String) {
        let mut file = tempfile::Builder::new().suffix(".pdf").tempfile().unwrap();
        file.write_all(pdf).unwrap();
        file.flush().unwrap();
        let out = Command::new(program).args(args).arg(file.path()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    pub(crate) fn assert_qpdf_clean(pdf: &[u8]) {
        let (ok, out) = run("qpdf", &["--check"], pdf);
        assert!(ok, "qpdf --check failed:\n{out}");
        assert!(out.contains("No syntax or stream encoding errors"), "{out}");
        assert!(!out.to_lowercase().contains("warning"), "{out}");
    }

    fn page_count(pdf: &[u8]) -> usize {
        let (ok, out) = run("pdfinfo", &[], pdf);
        assert!(ok, "pdfinfo failed:\n{out}");
        let line = out.lines().find(|l| l.starts_with("Pages:")).unwrap();
        line["Pages:".len()..].trim().parse().unwrap()
    }

    /// `pdfinfo` facts of one page.
    fn page_info(pdf: &[u8], page: usize) -> String {
        let p = page.to_string();
        let (ok, out) = run("pdfinfo", &["-f", &p, "-l", &p], pdf);
        assert!(ok, "pdfinfo failed:\n{out}");
        // Whitespace collapsed: "Page 3 size: 612 x 792 pts (letter)\nPage 3 rot: 0".
        let lines = out.lines().filter(|l| l.starts_with("Page "));
        lines.map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join("\n")
    }

    fn text(pdf: &[u8], page: Option<usize>) -> String {
        let mut args = vec!["-enc".to_string(), "UTF-8".to_string()];
        if let Some(p) = page {
            args.extend(["-f".into(), p.to_string(), "-l".into(), p.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut file = tempfile::Builder::new().suffix(".pdf").tempfile().unwrap();
        file.write_all(pdf).unwrap();
        let out = Command::new("pdftotext").args(&args).arg(file.path()).arg("-").output().unwrap();
        assert!(out.status.success(), "pdftotext failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn agreement() -> Vec<u8> {
        render(
            "F1",
            &[
                &["*Business Associate Agreement", "Covered Entity: Zoë Ångström"],
                &["Section 2. Permitted uses"],
                &["Section 3. Term and termination"],
            ],
        )
    }

    fn signature_pages(font_name: &str) -> Vec<u8> {
        render(
            font_name,
            &[
                &["*Executed signature page", "Signed by Łukasz Żółć", "*Signed by Zoë Ångström"],
                &["*Certificate of completion", "Envelope 7f3a, both parties signed"],
            ],
        )
    }

    #[test]
    fn appends_pages_as_an_incremental_update() {
        let original = agreement();
        let appendix = signature_pages("F1");
        assert_qpdf_clean(&original);
        let result = append_pages(&original, &appendix).unwrap();

        assert!(result.starts_with(&original), "the sent bytes must be a prefix");
        assert_qpdf_clean(&result);
        assert_eq!(page_count(&result), 5);
        let all = text(&result, None);
        for needle in
            ["Business Associate Agreement", "Zoë Ångström", "Section 3", "Łukasz Żółć", "Certificate of completion"]
        {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        // Order: the appendix comes after the last original page, in its own order.
        assert!(text(&result, Some(3)).contains("Section 3. Term"));
        assert!(text(&result, Some(4)).contains("Signed by Łukasz Żółć"));
        assert!(text(&result, Some(5)).contains("Certificate of completion"));
        assert!(page_info(&result, 5).contains("612 x 792"), "{}", page_info(&result, 5));

        // The font programs are the original's, referenced rather than embedded again.
        let font_files =
            |pdf: &[u8]| Document::load_mem(pdf).unwrap().objects.values().filter(|o| is_font_file(o)).count();
        assert_eq!(font_files(&original), 2);
        assert_eq!(font_files(&result), 2);

        // Cutting the file at the original length gives back the original document.
        assert_eq!(page_count(&result[..original.len()]), 3);
        eprintln!(
            "original {} B, appendix {} B (2 pages), result {} B, update section {} B",
            original.len(),
            appendix.len(),
            result.len(),
            result.len() - original.len()
        );
    }

    #[test]
    fn different_font_resource_names() {
        let original = agreement();
        let result = append_pages(&original, &signature_pages("SigFont")).unwrap();
        assert!(result.starts_with(&original));
        assert_qpdf_clean(&result);
        assert_eq!(page_count(&result), 5);
        assert!(text(&result, Some(1)).contains("Zoë Ångström"));
        assert!(text(&result, Some(4)).contains("Łukasz Żółć"));
    }

    #[test]
    fn trailer_continues_the_original() {
        let original = agreement();
        let result = append_pages(&original, &signature_pages("F1")).unwrap();
        let before = Document::load_mem(&original).unwrap();
        let after = Document::load_mem(&result).unwrap();
        let ids = |d: &Document| d.trailer.get(b"ID").unwrap().as_array().unwrap().clone();
        assert_eq!(ids(&after)[0], ids(&before)[0], "the permanent identifier stays");
        assert_ne!(ids(&after)[1], ids(&before)[1], "the revision identifier changes");
        assert_eq!(after.trailer.get(b"Root").unwrap(), before.trailer.get(b"Root").unwrap());
        assert_eq!(after.trailer.get(b"Info").unwrap(), before.trailer.get(b"Info").unwrap());
        let size = after.trailer.get(b"Size").unwrap().as_i64().unwrap();
        assert_eq!(size, i64::from(after.objects.keys().next_back().unwrap().0) + 1);
        // lopdf drops /Prev while reading; check the raw trailer text.
        let tail = String::from_utf8_lossy(&result[original.len()..]).into_owned();
        assert!(tail.contains(&format!("/Prev {}", before.xref_start)), "{tail}");
        // The same inputs give the same bytes.
        assert_eq!(append_pages(&original, &signature_pages("F1")).unwrap(), result);
    }

    #[test]
    fn every_cross_reference_entry_points_at_its_object() {
        let original = agreement();
        let first = append_pages(&original, &signature_pages("F1")).unwrap();
        let second = append_pages(&first, &signature_pages("F2")).unwrap();
        let doc = Document::load_mem(&second).unwrap();
        let mut checked = 0;
        for (&id, entry) in &doc.reference_table.entries {
            if let lopdf::xref::XrefEntry::Normal { offset, generation } = *entry {
                let at = &second[offset as usize..];
                let head = format!("{id} {generation} obj");
                assert!(at.starts_with(head.as_bytes()), "object {id} is not at {offset}");
                checked += 1;
            }
        }
        assert_eq!(checked, doc.objects.len());
    }

    #[test]
    fn cyclic_page_trees_do_not_hang() {
        // An appendix whose tree root lists itself among its kids, and whose page is its own
        // parent.
        let mut doc = Document::with_version("1.4");
        let root_id = doc.new_object_id();
        let contents = doc.add_object(Stream::new(Dictionary::new(), b"BT ET".to_vec()));
        let page = doc.new_object_id();
        doc.objects.insert(page, Object::Dictionary(dictionary! {
            "Type" => "Page", "Parent" => page, "Contents" => contents, "MediaBox" => vec![0.into(), 0.into(), 200.into(), 200.into()],
        }));
        doc.objects.insert(root_id, Object::Dictionary(dictionary! {
            "Type" => "Pages", "Parent" => root_id, "Kids" => vec![Object::Reference(page), Object::Reference(root_id)], "Count" => 1,
        }));
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => root_id });
        doc.trailer.set("Root", catalog);
        let mut appendix = Vec::new();
        doc.save_to(&mut appendix).unwrap();
        if let Ok(result) = append_pages(&agreement(), &appendix) {
            assert_qpdf_clean(&result);
        }
        let _ = append_pages(&appendix, &appendix);
    }

    #[test]
    fn appends_twice() {
        let original = agreement();
        let first = append_pages(&original, &signature_pages("F1")).unwrap();
        let extra = render("F2", &[&["Addendum: Zoë Ångström, Łukasz Żółć"]]);
        let second = append_pages(&first, &extra).unwrap();
        assert!(second.starts_with(&first) && second.starts_with(&original));
        assert_qpdf_clean(&second);
        assert_eq!(page_count(&second), 6);
        assert!(text(&second, Some(4)).contains("Executed signature page"));
        assert!(text(&second, Some(6)).contains("Addendum: Zoë Ångström, Łukasz Żółć"));
        assert_eq!(page_count(&second[..first.len()]), 5);
        let ids = |pdf: &[u8]| Document::load_mem(pdf).unwrap().trailer.get(b"ID").unwrap().as_array().unwrap().clone();
        assert_eq!(ids(&second)[0], ids(&original)[0]);
        assert_ne!(ids(&second)[1], ids(&first)[1]);
    }

    /// A hand-made PDF: `texts` in Helvetica on pages whose resources, media box and rotation
    /// live on the tree (inherited), optionally under an intermediate `/Pages` node.
    fn handmade(texts: &[&str], nested: bool, media_box: [i64; 4], rotate: i64) -> Vec<u8> {
        let mut doc = Document::with_version("1.4");
        let root_id = doc.new_object_id();
        let mid_id = if nested { doc.new_object_id() } else { root_id };
        let font = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding",
        });
        let mut kids = Vec::new();
        for t in texts {
            let content = format!("BT /F1 14 Tf 50 200 Td ({t}) Tj ET");
            let contents = doc.add_object(Stream::new(Dictionary::new(), content.into_bytes()));
            kids.push(Object::Reference(doc.add_object(dictionary! {
                "Type" => "Page", "Parent" => mid_id, "Contents" => contents,
            })));
        }
        let n = kids.len() as i64;
        if nested {
            doc.objects.insert(
                mid_id,
                Object::Dictionary(dictionary! {
                    "Type" => "Pages", "Parent" => root_id, "Kids" => kids, "Count" => n,
                }),
            );
            doc.objects.insert(
                root_id,
                Object::Dictionary(dictionary! {
                    "Type" => "Pages", "Kids" => vec![Object::Reference(mid_id)], "Count" => n,
                }),
            );
        } else {
            doc.objects.insert(
                root_id,
                Object::Dictionary(dictionary! {
                    "Type" => "Pages", "Kids" => kids, "Count" => n,
                }),
            );
        }
        let root = doc.get_dictionary_mut(root_id).unwrap();
        root.set("Resources", dictionary! { "Font" => dictionary! { "F1" => font } });
        root.set("MediaBox", media_box.iter().map(|&v| Object::Integer(v)).collect::<Vec<_>>());
        if rotate != 0 {
            root.set("Rotate", rotate);
        }
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => root_id });
        doc.trailer.set("Root", catalog);
        doc.compress();
        let mut out = Vec::new();
        doc.save_to(&mut out).unwrap();
        out
    }

    #[test]
    fn nested_tree_and_inherited_attributes() {
        // The original's tree root carries Resources (F1 = Helvetica), a media box and /Rotate 90,
        // which the appended pages must not pick up.
        let original = handmade(&["Nested one", "Nested two"], true, [0, 0, 612, 792], 90);
        assert_qpdf_clean(&original);
        // The appendix's pages inherit their F1 (embedded Noto) and size from its tree.
        let appendix = signature_pages("F1");
        let result = append_pages(&original, &appendix).unwrap();
        assert!(result.starts_with(&original));
        assert_qpdf_clean(&result);
        assert_eq!(page_count(&result), 4);
        assert!(text(&result, Some(2)).contains("Nested two"));
        assert!(text(&result, Some(3)).contains("Łukasz Żółć"));
        assert!(page_info(&result, 1).contains("rot: 90"), "{}", page_info(&result, 1));
        assert!(page_info(&result, 3).contains("rot: 0"), "{}", page_info(&result, 3));
        // Nothing to reuse here: the appendix brings its own font programs.
        let font_files = Document::load_mem(&result).unwrap().objects.values().filter(|o| is_font_file(o)).count();
        assert_eq!(font_files, 2);

        // An appendix whose pages inherit everything from its own tree.
        let appendix = handmade(&["Inherited A", "Inherited B"], true, [0, 0, 300, 400], 0);
        let result = append_pages(&result, &appendix).unwrap();
        assert_qpdf_clean(&result);
        assert_eq!(page_count(&result), 6);
        assert!(text(&result, Some(6)).contains("Inherited B"));
        let info = page_info(&result, 5);
        assert!(info.contains("300 x 400") && info.contains("rot: 0"), "{info}");
        // And the other way round: a flat, inheriting original gets our own pages.
        let original = handmade(&["Flat one"], false, [0, 0, 500, 500], 0);
        let result = append_pages(&original, &signature_pages("F1")).unwrap();
        assert_qpdf_clean(&result);
        assert_eq!(page_count(&result), 3);
        assert!(text(&result, Some(1)).contains("Flat one"));
        assert!(text(&result, Some(2)).contains("Zoë Ångström"));
    }

    #[test]
    fn original_with_cross_reference_stream() {
        let mut doc = Document::load_mem(&agreement()).unwrap();
        let mut original = Vec::new();
        doc.save_modern(&mut original).unwrap();
        assert_qpdf_clean(&original);
        let result = append_pages(&original, &signature_pages("F1")).unwrap();
        assert!(result.starts_with(&original));
        assert_qpdf_clean(&result);
        assert_eq!(page_count(&result), 5);
        assert!(text(&result, Some(5)).contains("Certificate of completion"));
        let again = append_pages(&result, &signature_pages("F9")).unwrap();
        assert_qpdf_clean(&again);
        assert_eq!(page_count(&again), 7);
    }

    #[test]
    fn newer_appendix_version_updates_the_catalog() {
        let original = agreement(); // %PDF-1.3
        let appendix = handmade(&["Version test"], false, [0, 0, 612, 792], 0); // %PDF-1.4
        let result = append_pages(&original, &appendix).unwrap();
        assert_qpdf_clean(&result);
        let doc = Document::load_mem(&result).unwrap();
        assert_eq!(doc.catalog().unwrap().get(b"Version").unwrap().as_name().unwrap(), b"1.4");
        assert!(text(&result, Some(4)).contains("Version test"));
        // The other way round nothing in the catalog changes.
        let result = append_pages(&appendix, &original).unwrap();
        let doc = Document::load_mem(&result).unwrap();
        assert!(doc.catalog().unwrap().get(b"Version").is_err());
    }

    #[test]
    fn encrypted_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (plain, locked) = (dir.path().join("plain.pdf"), dir.path().join("locked.pdf"));
        std::fs::write(&plain, agreement()).unwrap();
        // Empty user password: lopdf opens it silently, which must not slip through.
        let status = Command::new("qpdf")
            .args(["--encrypt", "", "owner", "256", "--"])
            .arg(&plain)
            .arg(&locked)
            .status()
            .unwrap();
        assert!(status.success());
        let locked = std::fs::read(&locked).unwrap();
        let appendix = signature_pages("F1");
        assert!(matches!(append_pages(&locked, &appendix), Err(AppendError::Structure(_))));
        assert!(matches!(append_pages(&agreement(), &locked), Err(AppendError::Structure(_))));
    }

    #[test]
    fn garbage_is_an_error() {
        let good = agreement();
        let appendix = signature_pages("F1");
        let junk: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"hello".to_vec(),
            b"%PDF-1.7\n".to_vec(),
            b"%PDF-1.7\n%%EOF".to_vec(),
            b"%PDF-1.4\ntrailer\n<< /Root 1 0 R >>\nstartxref\n9\n%%EOF".to_vec(),
            vec![0xff; 4096],
            good[..good.len() / 2].to_vec(),
            good[good.len() / 2..].to_vec(),
        ];
        for j in &junk {
            assert!(append_pages(j, &appendix).is_err());
            assert!(append_pages(&good, j).is_err());
        }
        // Leading bytes before the header would shift every offset.
        let mut shifted = b"junk".to_vec();
        shifted.extend_from_slice(&good);
        assert!(matches!(append_pages(&shifted, &appendix), Err(AppendError::Parse(_))));
        // An appendix without pages.
        let mut empty = Document::with_version("1.4");
        let pages = empty.add_object(dictionary! { "Type" => "Pages", "Kids" => Vec::<Object>::new(), "Count" => 0 });
        let catalog = empty.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages });
        empty.trailer.set("Root", catalog);
        let mut bytes = Vec::new();
        empty.save_to(&mut bytes).unwrap();
        assert!(matches!(append_pages(&good, &bytes), Err(AppendError::Structure(_))));
    }

    #[test]
    fn damaged_inputs_never_panic() {
        let good = agreement();
        let appendix = signature_pages("F1");
        // Every truncation point on a coarse grid, and the last 600 bytes one by one.
        let cuts = |len: usize| (0..len).step_by(211).chain(len.saturating_sub(400)..len);
        for cut in cuts(good.len()) {
            assert!(append_pages(&good[..cut], &appendix).is_err());
        }
        for cut in cuts(appendix.len()) {
            assert!(append_pages(&good, &appendix[..cut]).is_err());
        }
        // Deterministic byte damage, concentrated on the structure at the end of the file.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..60 {
            let mut bad = good.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let span = if seed & 1 == 0 { bad.len() } else { 1500.min(bad.len()) };
                let at = bad.len() - 1 - (seed >> 8) as usize % span;
                bad[at] = (seed >> 40) as u8;
            }
            if let Ok(out) = append_pages(&bad, &appendix) {
                assert!(out.starts_with(&bad));
            }
            let _ = append_pages(&good, &bad);
        }
    }
}
