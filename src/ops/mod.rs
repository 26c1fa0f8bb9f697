//! Operations: the admin listener (`/live`, `/ready`, `/metrics`), the metrics, the request
//! counter layer, and the logs.

pub mod admin;
pub mod metrics;
pub mod ocl;
pub mod record;
pub mod telemetry;
