//! One integration-test binary (one link step, one process) for the whole crate.
//! Real parts only: sled on disk in a temp dir per test, a server on 127.0.0.1:0 driven over
//! HTTP, PDFs checked with `qpdf --check` and `pdftotext` (poppler-utils).

mod account;
mod addenda;
mod admin_pages;
mod agreement_page;
mod app;
mod archive;
mod archive_pages;
mod backends;
mod browser;
mod helpers;
mod hostile;
mod pg;
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
mod routes;
mod seal;
mod secrets;
mod security;
mod signing;
mod speed;
mod story;
mod vendor_web;
mod vendors;
mod verification;
mod watchdog;
mod webhooks;
