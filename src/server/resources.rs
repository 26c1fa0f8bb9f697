//! The files a [`Config`] names, read and checked: the client list, the state keys and the
//! pages' logo; at start, for `--check`, and on reload ([`crate::server::live`]). Apart from
//! `config`, so that parsing the config stays free of I/O and `config` needs none of the
//! modules these files become.

use crate::config::{Config, ConfigError, ConfigErrors};
use crate::pages::{Branding, logo_data_uri};
use crate::state::seal::KeyRing;
use crate::vert::ClientList;
use crate::vert::clients::parse_ocl;

pub struct Resources {
    pub clients: ClientList,
    pub keys: KeyRing,
    /// The pages in the DVA's name, the logo read.
    pub branding: Branding,
    /// False when no `state.key_file` is set and the keys are random for this process.
    pub keys_from_file: bool,
}

impl Resources {
    /// Reads `clients.ocl_file` and `state.key_file`; every problem is reported, named by key.
    pub fn load(config: &Config) -> Result<Resources, ConfigErrors> {
        // `clients.ocl_ca_file` is read again when the refresher starts; here for `--check`.
        let clients = load_clients(config).and_then(|clients| match &config.clients.ocl_url {
            Some(ocl) if ocl.ca_file.is_some() => super::ocl::load_roots(ocl).map(|_| clients),
            _ => Ok(clients),
        });
        let keys = load_keys(config);
        let branding = load_branding(config);
        match (clients, keys, branding) {
            (Ok(clients), Ok(keys), Ok(branding)) => Ok(Resources {
                clients,
                keys,
                branding,
                keys_from_file: config.state.key_file.is_some(),
            }),
            (clients, keys, branding) => Err(ConfigErrors(
                clients
                    .err()
                    .into_iter()
                    .chain(keys.err())
                    .chain(branding.err())
                    .collect(),
            )),
        }
    }
}

/// The client list: `clients.static` and the OCL of `clients.ocl_file`.
pub fn load_clients(config: &Config) -> Result<ClientList, ConfigError> {
    let error = |message: String| ConfigError {
        key: "clients.ocl_file".into(),
        message,
    };
    let mut clients = Vec::new();
    if let Some(path) = &config.clients.ocl_file {
        let xml = std::fs::read_to_string(path)
            .map_err(|e| error(format!("cannot read {}: {e}", path.display())))?;
        let list = parse_ocl(&xml).map_err(|e| error(format!("{}: {e}", path.display())))?;
        clients.extend(list);
    }
    // Static entries come first: they override the OCL's name for the same host.
    let mut all = config.clients.static_clients.clone();
    all.extend(clients);
    let clients = ClientList::new(all);
    // With `clients.ocl_url` the OCL comes later, from the stelselnode ([`super::ocl`]).
    if clients.is_empty() && config.clients.ocl_file.is_none() && config.clients.ocl_url.is_none() {
        return Err(ConfigError {
            key: "clients".into(),
            message: "no clients: set clients.ocl_file, clients.ocl_url or clients.static".into(),
        });
    }
    Ok(clients)
}

/// `[pages]`, with `pages.logo_file` read and checked (PNG or SVG, at most 64 KiB).
pub fn load_branding(config: &Config) -> Result<Branding, ConfigError> {
    let logo = match &config.pages.logo_file {
        None => None,
        Some(path) => {
            let error = |message: String| ConfigError {
                key: "pages.logo_file".into(),
                message,
            };
            let bytes = std::fs::read(path)
                .map_err(|e| error(format!("cannot read {}: {e}", path.display())))?;
            Some(logo_data_uri(&bytes).map_err(|e| error(format!("{}: {e}", path.display())))?)
        }
    };
    Ok(Branding::new(&config.pages, logo))
}

/// The sealing keys of `state.key_file`, or a random key for this process without one.
pub fn load_keys(config: &Config) -> Result<KeyRing, ConfigError> {
    let Some(path) = &config.state.key_file else {
        return Ok(KeyRing::random());
    };
    let error = |message: String| ConfigError {
        key: "state.key_file".into(),
        message,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| error(format!("cannot read {}: {e}", path.display())))?;
    KeyRing::from_key_file(&text).map_err(|e| error(format!("{}: {e}", path.display())))
}
