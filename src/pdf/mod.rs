//! PDF incremental updates shared by the appendix (`render::appendix`) and the seal
//! (`seal`): what was sent stays a byte-exact prefix of what is archived.

pub mod append;
