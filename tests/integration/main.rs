//! One integration-test binary (one link step, one process) for the whole crate.
//! Real tools only: PDFs are checked with `qpdf --check` and `pdftotext` (poppler-utils).

mod helpers;

mod cli;
mod properties;
mod render;
