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
        let mut errors = Vec::new();
        let mut error = |key: &str, message: String| {
            errors.push(ConfigError {
                key: key.into(),
                message,
            })
        };

        let mut clients = Vec::new();
        if let Some(path) = &config.clients.ocl_file {
            match std::fs::read_to_string(path) {
                Err(e) => error(
                    "clients.ocl_file",
                    format!("cannot read {}: {e}", path.display()),
                ),
                Ok(xml) => match parse_ocl(&xml) {
                    Ok(list) => clients.extend(list),
                    Err(e) => error("clients.ocl_file", format!("{}: {e}", path.display())),
                },
            }
        }
        // Static entries come first: they override the OCL's name for the same host.
        let mut all = config.clients.static_clients.clone();
        all.extend(clients);
        let clients = ClientList::new(all);
        if clients.is_empty() && config.clients.ocl_file.is_none() {
            error(
                "clients",
                "no clients: set clients.ocl_file or clients.static".into(),
            );
        }

        let keys = match &config.state.key_file {
            None => Some(KeyRing::random()),
            Some(path) => match std::fs::read_to_string(path) {
                Err(e) => {
                    error(
                        "state.key_file",
                        format!("cannot read {}: {e}", path.display()),
                    );
                    None
                }
                Ok(text) => match KeyRing::from_key_file(&text) {
                    Ok(ring) => Some(ring),
                    Err(e) => {
                        error("state.key_file", format!("{}: {e}", path.display()));
                        None
                    }
                },
            },
        };

        match keys {
            Some(keys) if errors.is_empty() => Ok(Resources {
                clients,
                keys,
                keys_from_file: config.state.key_file.is_some(),
            }),
            _ => Err(ConfigErrors(errors)),
        }
    }
}
