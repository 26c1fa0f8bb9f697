//! The live resources the server owns: the client list, the state keys, the pages' branding
//! and the records of released flows and codes. Each file-backed one is swapped whole on
//! reload (SIGHUP); the guard, the token guard and the pages only read them, so a request
//! works with what it started with.

use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::SystemTime;

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
        // Read by `Resources::load` just before: its age starts now.
        metrics.clients_loaded(SystemTime::now());
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
        // With `clients.ocl_url` the refresher owns the list ([`super::ocl`]); SIGHUP asks it
        // to fetch instead.
        if config.clients.ocl_url.is_none() {
            reload_one("clients", load_clients(config), metrics, |clients| {
                tracing::info!(clients = clients.len(), "client list reloaded");
                self.clients.store(Arc::new(clients));
                metrics.clients_loaded(SystemTime::now());
            });
        }
        // Without a key file the keys are random for this process: nothing to read again.
        if config.state.key_file.is_some() {
            reload_one("keys", load_keys(config), metrics, |keys| {
                tracing::info!(?keys, "state keys reloaded");
                self.keys.store(Arc::new(keys));
            });
        }
        reload_one("pages", load_branding(config), metrics, |branding| {
            tracing::info!("pages reloaded");
            self.branding.store(Arc::new(branding));
        });
    }
}

/// One resource read again: `swap` takes it in when it checked out; otherwise the one in use
/// stays and the log says why. Either way `medmij_vert_reloads_total{file=what}` counts it.
pub fn reload_one<T, E: std::fmt::Display>(
    what: &'static str,
    loaded: Result<T, E>,
    metrics: &Metrics,
    swap: impl FnOnce(T),
) {
    match loaded {
        Ok(resource) => {
            swap(resource);
            metrics.reload(what, true);
        }
        Err(error) => {
            tracing::warn!(%error, resource = what, "not reloaded: the one in use stays");
            metrics.reload(what, false);
        }
    }
}
