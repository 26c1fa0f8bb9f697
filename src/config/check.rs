//! The machinery of reading `proxy.toml`: a section and its keys, each value read as its type
//! with its default, every problem collected with the key it is about.

use std::time::Duration;

use http::HeaderName;
use toml::{Table, Value};

use super::ConfigError;
use super::keys::{self, DefaultValue, KeyKind};
use crate::vert::Client;
use crate::vert::clients::is_hostname;

/// A section of the file, with the keys it may hold.
pub(super) struct Section<'a> {
    pub(super) name: &'static str,
    pub(super) table: Option<&'a Table>,
}

impl<'a> Section<'a> {
    /// The value the file gives for `key`, a key of [`keys::KEYS`] (every read goes through
    /// here, so none reads a key the table does not have).
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        assert!(
            keys::known(self.name, key),
            "{}.{key} is not in config::keys::KEYS",
            self.name
        );
        self.table.and_then(|t| t.get(key))
    }

    /// Whether the file gives `key`.
    pub(super) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn spec(&self, key: &str) -> &'static keys::Key {
        keys::key(self.name, key)
    }

    pub(super) fn key(&self, key: &str) -> String {
        format!("{}.{key}", self.name)
    }
}

/// Collects errors while values are read, so that one run reports them all.
#[derive(Default)]
pub(super) struct Check {
    pub(super) errors: Vec<ConfigError>,
}

impl Check {
    pub(super) fn error(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            key: key.into(),
            message: message.into(),
        });
    }

    pub(super) fn section<'a>(&mut self, root: &'a Table, name: &'static str) -> Section<'a> {
        self.table_in(root, name, name)
    }

    /// `[parent.key]`: a table inside a section, named `name` in errors.
    pub(super) fn subsection<'a>(
        &mut self,
        parent: &Section<'a>,
        name: &'static str,
        key: &str,
    ) -> Section<'a> {
        match parent.table {
            Some(table) => self.table_in(table, name, key),
            None => Section { name, table: None },
        }
    }

    pub(super) fn table_in<'a>(
        &mut self,
        root: &'a Table,
        name: &'static str,
        key: &str,
    ) -> Section<'a> {
        let table = match root.get(key) {
            None => None,
            Some(Value::Table(t)) => Some(t),
            Some(_) => {
                self.error(name, "must be a table ([section])");
                None
            }
        };
        if let Some(t) = table {
            for key in t.keys() {
                if !keys::known(name, key) {
                    self.error(format!("{name}.{key}"), "unknown key");
                }
            }
        }
        Section { name, table }
    }

    pub(super) fn typed<'a, T>(
        &mut self,
        s: &Section<'a>,
        key: &str,
        what: &str,
        get: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Option<T> {
        let value = s.get(key)?;
        let got = get(value);
        if got.is_none() {
            self.error(
                s.key(key),
                format!("expected {what}, found {}", value.type_str()),
            );
        }
        got
    }

    pub(super) fn string<'a>(&mut self, s: &Section<'a>, key: &str) -> Option<&'a str> {
        self.typed(s, key, "a string", Value::as_str)
    }

    /// A string with its default from the table.
    pub(super) fn text<'a>(&mut self, s: &Section<'a>, key: &str) -> &'a str {
        let DefaultValue::Text(default) = s.spec(key).default else {
            panic!("{}: no text default", s.key(key))
        };
        self.string(s, key).unwrap_or(default)
    }

    pub(super) fn boolean(&mut self, s: &Section<'_>, key: &str) -> bool {
        let DefaultValue::Bool(default) = s.spec(key).default else {
            panic!("{}: no boolean default", s.key(key))
        };
        self.typed(s, key, "true or false", Value::as_bool)
            .unwrap_or(default)
    }

    /// An integer within the table's bounds.
    pub(super) fn integer(&mut self, s: &Section<'_>, key: &str) -> usize {
        let spec = s.spec(key);
        let (KeyKind::Integer { min, max }, DefaultValue::Integer(default)) =
            (spec.kind, spec.default)
        else {
            panic!("{}: not an integer with a default", s.key(key))
        };
        match self.typed(s, key, "an integer", Value::as_integer) {
            None => default,
            Some(n) => match usize::try_from(n) {
                Ok(n) if (min..=max).contains(&n) => n,
                _ => {
                    self.error(s.key(key), format!("must be between {min} and {max}"));
                    default
                }
            },
        }
    }

    pub(super) fn duration(&mut self, s: &Section<'_>, key: &str) -> Duration {
        let default = s.spec(key).default_duration();
        match self.string(s, key) {
            None => default,
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => {
                    self.error(s.key(key), "must be longer than 0s");
                    default
                }
                Err(_) => {
                    self.error(
                        s.key(key),
                        format!("{text:?} is not a duration like \"500ms\", \"30s\" or \"30m\""),
                    );
                    default
                }
            },
        }
    }

    pub(super) fn parsed<T: std::str::FromStr>(
        &mut self,
        s: &Section<'_>,
        key: &str,
        what: &str,
    ) -> Option<T> {
        let text = self.text(s, key);
        let parsed = text.parse().ok();
        if parsed.is_none() {
            self.error(s.key(key), format!("{text:?} is not {what}"));
        }
        parsed
    }

    pub(super) fn header(&mut self, s: &Section<'_>, key: &str) -> HeaderName {
        let DefaultValue::Text(default) = s.spec(key).default else {
            panic!("{}: no header default", s.key(key))
        };
        let default = HeaderName::from_bytes(default.as_bytes()).expect("defaults parse");
        let Some(text) = self.string(s, key) else {
            return default;
        };
        match HeaderName::from_bytes(text.as_bytes()) {
            Ok(name) if !crate::hop_by_hop::is_hop_by_hop(&name) => name,
            Ok(_) => {
                self.error(s.key(key), "a hop-by-hop header cannot carry the signal");
                default
            }
            Err(_) => {
                self.error(s.key(key), format!("{text:?} is not a valid header name"));
                default
            }
        }
    }

    /// An array of strings, each converted; errors name the element (`key[2]`). Absent, the
    /// table's default.
    pub(super) fn list<T>(
        &mut self,
        s: &Section<'_>,
        key: &str,
        convert: impl Fn(&str) -> Result<T, String>,
    ) -> Vec<T> {
        if !s.has(key) {
            return match s.spec(key).default {
                DefaultValue::List(items) => items
                    .iter()
                    .map(|i| convert(i).expect("defaults parse"))
                    .collect(),
                _ => Vec::new(),
            };
        }
        let Some(items) = self.typed(s, key, "an array", Value::as_array) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let k = format!("{}[{i}]", s.key(key));
            match item.as_str().map(&convert) {
                Some(Ok(v)) => out.push(v),
                Some(Err(e)) => self.error(k, e),
                None => self.error(k, format!("expected a string, found {}", item.type_str())),
            }
        }
        out
    }

    pub(super) fn static_clients(&mut self, s: &Section<'_>) -> Vec<Client> {
        let Some(items) = self.typed(s, "static", "an array of tables", Value::as_array) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let key = format!("clients.static[{i}]");
            let Some(t) = item.as_table() else {
                self.error(key, "expected { hostname = \"…\", name = \"…\" }");
                continue;
            };
            for k in t.keys() {
                if k != "hostname" && k != "name" {
                    self.error(format!("{key}.{k}"), "unknown key");
                }
            }
            let hostname = match t.get("hostname").map(Value::as_str) {
                Some(Some(h)) if is_hostname(h) => Some(h.to_owned()),
                Some(Some(h)) => {
                    self.error(
                        format!("{key}.hostname"),
                        format!("{h:?} is not a lower-case hostname (the client_id)"),
                    );
                    None
                }
                Some(None) => {
                    self.error(format!("{key}.hostname"), "expected a string");
                    None
                }
                None => {
                    self.error(format!("{key}.hostname"), "missing");
                    None
                }
            };
            let name = match t.get("name").map(Value::as_str) {
                Some(Some(n)) if !n.trim().is_empty() => Some(n.trim().to_owned()),
                Some(_) => {
                    self.error(format!("{key}.name"), "expected a non-empty string");
                    None
                }
                None => hostname.clone(),
            };
            if let (Some(hostname), Some(name)) = (hostname, name) {
                out.push(Client { hostname, name });
            }
        }
        out
    }
}
