//! One integration-test binary (one link step, one process) for the whole crate.
//! Real parts only: sled on disk in a temp dir per test, a server on 127.0.0.1:0 driven over
//! HTTP, PDFs checked with `qpdf --check` and `pdftotext` (poppler-utils).

mod addenda;
mod app;
mod archive;
mod browser;
mod helpers;
mod hostile;
mod smtp;
mod web;

mod cli;
mod counsel;
mod crash;
mod drafting;
mod fuzz;
mod fuzzing;
mod layout;
mod mail;
mod migration;
mod observe;
mod openapi;
mod properties;
mod provisions;
mod render;
mod seal;
mod security;
mod signing;
mod speed;
mod vendors;
mod webhooks;
