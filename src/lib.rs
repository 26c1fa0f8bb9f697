//! medmij-vert-proxy: a reverse proxy that adds the MedMij Vertegenwoordiging extension to a
//! legacy OAuth Authorization Server. See README.md for the deployment picture.
#![forbid(unsafe_code)]

pub mod vert;
