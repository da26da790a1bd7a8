//! `fake-nvml`: a `libnvidia-ml.so.1` test double.
//!
//! Built as a cdylib, this crate exports the NVML C functions that
//! nvml-wrapper (Algalon's core), nvidia-ml-py, nvitop and gpustat call, with
//! the exact struct layouts of `nvml-wrapper-sys`. Its answers come from a
//! JSON *scenario* (GPU models, time-varying readings, processes, MIG, XID
//! events and injected faults) named by `ALGALON_FAKE_NVML_SCENARIO`, so the
//! whole stack runs its real NVML code path without a GPU:
//!
//! ```sh
//! cargo build -p fake-nvml
//! mkdir -p target/fake-nvml
//! cp target/debug/libnvidia_ml.so target/fake-nvml/libnvidia-ml.so.1
//! ALGALON_FAKE_NVML_SCENARIO=testing/scenarios/h100x8.json \
//!   LD_LIBRARY_PATH=target/fake-nvml python3 -c \
//!   'import pynvml as n; n.nvmlInit(); print(n.nvmlDeviceGetCount())'
//! ```
//!
//! Environment, read at each init that takes the refcount from 0 to 1:
//!
//! | variable | effect |
//! |---|---|
//! | `ALGALON_FAKE_NVML_SCENARIO` | scenario JSON path (required; unset → `NVML_ERROR_DRIVER_NOT_LOADED`) |
//! | `ALGALON_FAKE_NVML_FROZEN_TIME` | freeze scenario time at this many seconds |
//! | `ALGALON_FAKE_NVML_LATENCY_MS` | extra delay for every device call |
//! | `ALGALON_FAKE_NVML_CLOCK_FILE` | file holding scenario time in seconds, re-read at every call |
//! | `ALGALON_FAKE_NVML_CALL_LOG` | file every call appends its name to (read once per process) |
//!
//! As an rlib the crate offers [`scenario`] — the scenario types and the
//! exact values the library will serve at a given time — so other crates'
//! tests can compute expectations from the same file, plus [`ffi`] (the
//! exported functions, callable in-process) and per-function
//! [`call_count`]s.
//!
//! ```
//! use nvidia_ml::scenario::Scenario;
//!
//! let s = Scenario::from_json_str(r#"{
//!     "driver_version": "550.54.15", "nvml_version": "12.550.54.15",
//!     "cuda_driver_version": 12040,
//!     "gpus": [{"count": 2, "name": "NVIDIA L4",
//!               "uuid": "GPU-00000000-0000-0000-0000-000000000001",
//!               "pci_bus_id": "00000000:3B:00.0",
//!               "memory": {"total_mib": 23034, "used_mib": 512},
//!               "power_w": {"steps": [[0, 30], [10, 70]]},
//!               "energy_counter": true}]
//! }"#).unwrap();
//! let gpu1 = &s.devices()[1];
//! assert_eq!(gpu1.spec.uuid, "GPU-00000000-0000-0000-0000-000000000002");
//! assert_eq!(gpu1.spec.pci_bus_id, "00000000:3C:00.0");
//! assert_eq!(gpu1.energy_mj(20.0), Some(10 * 30_000 + 10 * 70_000));
//! ```
#![deny(missing_docs)]

pub mod ffi;
pub mod names;
pub mod scenario;
mod state;

pub use state::{
    CALL_LOG_ENV, CLOCK_FILE_ENV, FROZEN_TIME_ENV, LATENCY_ENV, SCENARIO_ENV, call_count,
    reset_call_counts,
};
