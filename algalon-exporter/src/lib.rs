//! `algalon-exporter` as a library: the modules the binary is made of.
//!
//! The binary (`src/main.rs`) is thin: the CLI ([`cli`]; dcgm-exporter's
//! options and variables in [`compat`], read by [`args`]), HTTP ([`routes`] served by [`connections`]),
//! web config ([`webconfig`], [`auth`]) and signals ([`app`]). Sampling and
//! encoding live in `algalon-core`. The modules are public so that the
//! integration tests and the fuzz targets under `fuzz/` can reach the parsers
//! directly; they are not a stable API (use `algalon-core`, the Python
//! package or the C ABI to embed Algalon).

#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod args;
pub mod auth;
pub mod check;
pub mod cli;
pub mod compat;
pub mod connections;
pub mod error;
pub mod healthcheck;
pub mod history;
pub mod hpc;
pub mod kubernetes;
pub mod logging;
pub mod routes;
pub mod sampling;
pub mod state;
pub mod telemetry;
pub mod watchdog;
pub mod webconfig;
