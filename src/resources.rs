//! The files a [`Config`] names, read and checked: the client list and the state keys. Kept
//! apart from `config` so that parsing the config stays free of I/O.

use crate::config::{Config, ConfigError, ConfigErrors};
use crate::seal::KeyRing;
use crate::vert::ClientList;
use crate::vert::clients::parse_ocl;

pub struct Resources {
    pub clients: ClientList,
    pub keys: KeyRing,
    /// False when no `state.key_file` is set and the keys are random for this process.
    pub keys_from_file: bool,
}

impl Resources {
    /// Reads `clients.ocl_file` and `state.key_file`; every problem is reported, named by key.
    pub fn load(config: &Config) -> Result<Resources, ConfigErrors> {
        let clients = load_clients(config);
        let keys = load_keys(config);
        match (clients, keys) {
            (Ok(clients), Ok(keys)) => Ok(Resources {
                clients,
                keys,
                keys_from_file: config.state.key_file.is_some(),
            }),
            (clients, keys) => Err(ConfigErrors(
                clients.err().into_iter().chain(keys.err()).collect(),
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
    if clients.is_empty() && config.clients.ocl_file.is_none() {
        return Err(ConfigError {
            key: "clients".into(),
            message: "no clients: set clients.ocl_file or clients.static".into(),
        });
    }
    Ok(clients)
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
