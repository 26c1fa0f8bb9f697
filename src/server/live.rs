//! The live resources the server owns: the client list, the state keys, the pages' branding
//! and the records of released flows and codes. Each file-backed one is swapped whole on
//! reload (SIGHUP); the guard, the token guard and the pages only read them, so a request
//! works with what it started with.

use arc_swap::ArcSwap;
use std::sync::Arc;

use crate::config::Config;
use crate::ops::metrics::Metrics;
use crate::pages::Branding;
use crate::server::resources::{Resources, load_branding, load_clients, load_keys};
use crate::state::seal::KeyRing;
use crate::state::store::{Records, Store};
use crate::vert::ClientList;

pub struct Live {
    pub clients: Arc<ArcSwap<ClientList>>,
    /// Shared with [`Records`]: code digests are keyed from the state keys.
    pub keys: Arc<ArcSwap<KeyRing>>,
    /// Every connection's task renders pages with it (`pages::BRANDING`).
    pub branding: Arc<ArcSwap<Branding>>,
    pub records: Arc<Records>,
}

impl Live {
    pub fn new(
        config: &Config,
        resources: Resources,
        store: Arc<dyn Store>,
        metrics: &Arc<Metrics>,
    ) -> Live {
        let keys = Arc::new(ArcSwap::from_pointee(resources.keys));
        let records = Arc::new(Records::from_config(config, keys.clone(), store, metrics));
        Live {
            clients: Arc::new(ArcSwap::from_pointee(resources.clients)),
            keys,
            branding: Arc::new(ArcSwap::from_pointee(resources.branding)),
            records,
        }
    }

    /// Reads the client list, the state keys and the pages' logo again. Each is checked whole
    /// before it replaces the one in use; a bad file keeps the old one running, says why in
    /// the log, and counts as a failed reload (`medmij_vert_reloads_total`).
    pub fn reload(&self, config: &Config, metrics: &Metrics) {
        match load_clients(config) {
            Ok(clients) => {
                tracing::info!(clients = clients.len(), "client list reloaded");
                self.clients.store(Arc::new(clients));
                metrics.reload("clients", true);
            }
            Err(error) => {
                tracing::warn!(%error, "client list not reloaded: the previous one stays in use");
                metrics.reload("clients", false);
            }
        }
        // Without a key file the keys are random for this process: nothing to read again.
        if config.state.key_file.is_some() {
            match load_keys(config) {
                Ok(keys) => {
                    tracing::info!(?keys, "state keys reloaded");
                    self.keys.store(Arc::new(keys));
                    metrics.reload("keys", true);
                }
                Err(error) => {
                    tracing::warn!(%error, "state keys not reloaded: the previous ones stay in use");
                    metrics.reload("keys", false);
                }
            }
        }
        match load_branding(config) {
            Ok(branding) => {
                tracing::info!("pages reloaded");
                self.branding.store(Arc::new(branding));
                metrics.reload("pages", true);
            }
            Err(error) => {
                tracing::warn!(%error, "pages not reloaded: the previous logo stays in use");
                metrics.reload("pages", false);
            }
        }
    }
}
