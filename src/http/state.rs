//! The server's shared state, built from configuration (also used by tests).

use std::sync::Arc;

use super::{AppState, auth, sign};
use crate::clock::Clock;
use crate::config::Config;

/// Why a server cannot start. Printed by the CLI as it is.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Open(#[from] crate::app::OpenError),
    #[error("bootstrap admin key: {0}")]
    Bootstrap(std::io::Error),
    #[error(transparent)]
    Templates(#[from] super::web::TemplateError),
}

/// The CLI prints it as it is.
impl From<StartError> for String {
    fn from(e: StartError) -> String {
        e.to_string()
    }
}

/// Everything a server needs: the application service ([`crate::app::open`]), the bootstrap
/// admin key (returned, with whether it was created now), rate limiters and the signer pages.
pub fn build_state(config: Config, clock: Arc<dyn Clock>) -> Result<(AppState, String, bool), StartError> {
    let store = crate::app::open_store(&config)?;
    build_state_on(config, store, clock)
}

/// [`build_state`] over a store already opened (the operator commands' offline path).
pub fn build_state_on(
    config: Config,
    store: Arc<dyn crate::store::Store>,
    clock: Arc<dyn Clock>,
) -> Result<(AppState, String, bool), StartError> {
    let data_dir = config.data_dir.clone();
    let service = crate::app::open_on(config, store, clock)?;
    let (admin_key, created) = auth::load_or_create_bootstrap(&data_dir).map_err(StartError::Bootstrap)?;
    let pages = sign::Pages::new()?;
    let service = Arc::new(service);
    let state = AppState::new(super::Shared {
        people: Arc::new(crate::people::Directory::new(service.clone())),
        web: Arc::new(super::web::WebPages::new()?),
        service,
        bootstrap: Arc::new(crate::secret::SecretString::new(admin_key.clone())),
        limiter: Arc::new(auth::FailureLimiter::new()),
        public_limiter: Arc::new(auth::RequestLimiter::new()),
        pages: Arc::new(pages),
    });
    Ok((state, admin_key, created))
}
