//! `algalon-exporter`: serves every NVIDIA GPU's NVML readings as Prometheus
//! metrics under dcgm-exporter's names, labels and flags. See `--help`.
//!
//! The modules live in the library half of this crate (`src/lib.rs`).

#![forbid(unsafe_code)]

use algalon_exporter::{app, check, cli, healthcheck, logging};
use std::process::ExitCode;

use clap::error::ErrorKind;

fn main() -> ExitCode {
    let cli = match cli::Cli::from_env() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            // A usage error is one line, like every other start-up error.
            eprintln!("algalon-exporter: {}", cli::one_line_error(&e));
            return ExitCode::from(2);
        }
    };
    if cli.version {
        print_version(&cli);
        return ExitCode::SUCCESS;
    }
    if cli.check_config {
        let valid = check::run(&cli, &mut std::io::stdout(), &mut std::io::stderr());
        return if valid {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    if let Some(url) = &cli.healthcheck {
        let url = if url == "auto" {
            healthcheck::auto_url(&cli.address, cli.web_config_file.as_deref())
        } else {
            url.clone()
        };
        return if healthcheck::run(&url) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    logging::init(cli.log_format, cli.log_level());
    match app::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            for line in e.lines() {
                eprintln!("algalon-exporter: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Version, commit, and the NVML this host would use (loading it is the
/// only way to know).
fn print_version(cli: &cli::Cli) {
    use std::io::Write as _;
    // `--version | head -1` closes the pipe early: that is not an error.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "algalon-exporter {} (git {})",
        env!("CARGO_PKG_VERSION"),
        env!("ALGALON_GIT_HASH")
    );
    let options = algalon_core::SamplerOptions {
        nvml_lib: cli.nvml_lib.clone(),
        fields: Vec::new(),
        devices: None,
        processes: false,
        xid_events: false,
        ..algalon_core::SamplerOptions::default()
    };
    let _ = match algalon_core::Sampler::new(options) {
        Ok(sampler) => writeln!(
            out,
            "NVML {} ({})",
            sampler.nvml_version().unwrap_or("version unknown"),
            sampler.library()
        ),
        Err(e) => writeln!(out, "NVML not available: {e}"),
    };
}
