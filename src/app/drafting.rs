//! Drafting from the web form: check an intake without saving anything, and the intake of an
//! existing agreement to start a new one from. Creating the draft is [`Service::create`], the
//! same call the API makes.

use super::service::{Service, ServiceError};
use crate::render::{Mode, Options, Report};

impl Service {
    /// Parses and renders an intake exactly as [`Service::create`] would, and returns the report
    /// (required elements, departures from policy, findings) without storing anything. An
    /// invalid intake is [`ServiceError::Invalid`] with every field problem. CPU work: call it
    /// off the async threads.
    pub fn check_intake(&self, text: &str, actor: &super::service::Actor) -> Result<Report, ServiceError> {
        let intake = crate::app::load_intake(text).map_err(ServiceError::Invalid)?;
        let intake = self.with_dua_reference(intake, actor)?;
        self.renderer
            .render(&intake, Options { mode: Mode::Draft, version: 1 })
            .map(|r| r.report)
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// The intake JSON of an agreement's current version, as it was received.
    pub fn current_intake(&self, id: &str) -> Result<String, ServiceError> {
        let a = self.get(id)?;
        let v = self.store.version(id, a.version)?;
        Ok(v.intake)
    }
}
