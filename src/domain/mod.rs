//! Domain: intake and agreement types, the regulatory tables. No HTTP, no storage.

pub mod actions;
pub mod addenda;
pub mod agreement;
pub mod audit;
pub mod compact;
pub mod elements;
pub mod findings;
pub mod fold;
pub mod form;
pub mod identifiers;
pub mod intake;
pub mod parse;
pub mod provisions;
pub mod security_log;
pub mod states;
pub mod time;
pub mod vendor;
pub mod words;
