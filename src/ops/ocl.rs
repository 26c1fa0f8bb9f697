//! What `/ready` and `/metrics` know of the OCL from `clients.ocl_url`: when the list in use
//! was last confirmed by the stelselnode (a `200` taken, or a `304`), and whether it went stale.
//! Written by the server's refresher, read by the admin listener.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Why `/ready` fails for the OCL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OclNotReady {
    #[error("clients.ocl_url: no client list was ever loaded")]
    NeverLoaded,
    #[error(
        "clients.ocl_url: the client list in use was last confirmed {age_secs}s ago, more than clients.ocl_max_age: every authorization request is refused"
    )]
    Stale { age_secs: u64 },
}

#[derive(Debug)]
pub struct OclHealth {
    max_age: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Wall-clock time, so that a cached copy keeps its age across a restart.
    confirmed: Option<SystemTime>,
    /// Dropped by the refresher: older than `max_age` by its own clock.
    expired: bool,
}

impl OclHealth {
    pub fn new(max_age: Duration) -> Self {
        OclHealth {
            max_age,
            state: Mutex::default(),
        }
    }

    /// The list in use was confirmed at `at` (and is in use).
    pub fn confirmed(&self, at: SystemTime) {
        let mut state = self.lock();
        state.confirmed = Some(at);
        state.expired = false;
    }

    /// The list went stale and is no longer in use.
    pub fn expired(&self) {
        self.lock().expired = true;
    }

    /// Since the list in use was last confirmed.
    pub fn age(&self) -> Option<Duration> {
        let confirmed = self.lock().confirmed?;
        Some(
            SystemTime::now()
                .duration_since(confirmed)
                .unwrap_or_default(),
        )
    }

    pub fn ready(&self) -> Result<(), OclNotReady> {
        let expired = self.lock().expired;
        match self.age() {
            None => Err(OclNotReady::NeverLoaded),
            Some(age) if expired || age > self.max_age => Err(OclNotReady::Stale {
                age_secs: age.as_secs(),
            }),
            Some(_) => Ok(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding it leaves plain data: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_a_list_confirmed_within_max_age() {
        let health = OclHealth::new(Duration::from_secs(3600));
        assert_eq!(health.ready(), Err(OclNotReady::NeverLoaded));
        health.confirmed(SystemTime::now() - Duration::from_secs(60));
        assert_eq!(health.ready(), Ok(()));
        health.expired();
        assert!(matches!(health.ready(), Err(OclNotReady::Stale { .. })));
        health.confirmed(SystemTime::now() - Duration::from_secs(7200));
        assert!(matches!(
            health.ready(),
            Err(OclNotReady::Stale { age_secs }) if age_secs >= 7200
        ));
    }
}
