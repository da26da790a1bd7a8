//! `algalon_snapshot` and `algalon_gpu_sample`: one sample of every GPU.

use std::ffi::c_char;
use std::sync::{Arc, OnceLock};

use algalon_core::{Encoder, Field, Format, GpuSample, Kind, Snapshot, unix_seconds};

use crate::error::{Fail, FfiResult, algalon_result, boundary, boundary_value};
use crate::util::{arg_out, arg_ref, arg_str, fixed, write_str};

/// Size of `algalon_gpu_sample.uuid`, NUL included (NVML's UUID buffer size).
pub const ALGALON_UUID_SIZE: usize = 96;
/// Size of `algalon_gpu_sample.name`, NUL included (NVML's name buffer size).
pub const ALGALON_NAME_SIZE: usize = 96;
/// Size of `algalon_gpu_sample.pci_bus_id`, NUL included (NVML's size).
pub const ALGALON_PCI_BUS_ID_SIZE: usize = 32;

/// One sample of every selected GPU, taken together. Immutable.
///
/// Ownership: returned by `algalon_sampler_sample` / `algalon_sampler_latest`;
/// the caller frees it with `algalon_snapshot_free`. It does not borrow the
/// sampler and may outlive it.
///
/// Thread safety: immutable, so any number of threads may read one snapshot
/// at once; `algalon_snapshot_free` once, when no thread reads it.
#[derive(Debug)]
pub struct algalon_snapshot {
    snap: Arc<Snapshot>,
    encoder: Arc<Encoder>,
    /// The Prometheus text, encoded on first ask (the size probe and the
    /// copy then cost one encoding).
    text: OnceLock<String>,
}

impl algalon_snapshot {
    pub(crate) fn new(snap: Arc<Snapshot>, encoder: Arc<Encoder>) -> Self {
        algalon_snapshot {
            snap,
            encoder,
            text: OnceLock::new(),
        }
    }

    fn gpu(&self, i: usize) -> FfiResult<&GpuSample> {
        self.snap.gpus.get(i).ok_or_else(|| {
            Fail::new(
                algalon_result::OutOfRange,
                format!(
                    "GPU position {i} is out of range: the snapshot has {} GPU(s)",
                    self.snap.gpus.len()
                ),
            )
        })
    }
}

/// The readings of one GPU, by value: a plain struct the caller owns
/// (typically on the stack). Every optional reading has a `has_*` flag; when
/// the flag is false the reading is absent (NVML cannot give it, or the GPU
/// is down) and its value field is 0 and must be ignored — 0 never means
/// "unknown".
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct algalon_gpu_sample {
    /// NVML index ("GPU 0"); with device selection it can differ from the
    /// position in the snapshot.
    pub index: u32,
    /// False when the GPU is lost or failing; its readings are then absent
    /// (`algalon_snapshot_gpu_down_reason` says why).
    pub up: bool,
    /// `GPU-…` UUID, NUL-terminated (empty only if NVML could not give it).
    pub uuid: [c_char; ALGALON_UUID_SIZE],
    /// Model name, e.g. `NVIDIA H100 80GB HBM3`, NUL-terminated.
    pub name: [c_char; ALGALON_NAME_SIZE],
    /// PCI bus id, e.g. `00000000:18:00.0`, NUL-terminated.
    pub pci_bus_id: [c_char; ALGALON_PCI_BUS_ID_SIZE],
    /// Whether `minor_number` is known.
    pub has_minor_number: bool,
    /// Minor number of `/dev/nvidiaN`.
    pub minor_number: u32,
    /// Whether `gpu_util_percent` is known.
    pub has_gpu_util: bool,
    /// GPU utilization, % (`DCGM_FI_DEV_GPU_UTIL`).
    pub gpu_util_percent: f64,
    /// Whether `memory_util_percent` is known.
    pub has_memory_util: bool,
    /// Memory-controller utilization, % (`DCGM_FI_DEV_MEM_COPY_UTIL`).
    pub memory_util_percent: f64,
    /// Whether `memory_used_bytes` is known.
    pub has_memory_used: bool,
    /// Framebuffer memory used, bytes.
    pub memory_used_bytes: u64,
    /// Whether `memory_free_bytes` is known.
    pub has_memory_free: bool,
    /// Framebuffer memory free, bytes.
    pub memory_free_bytes: u64,
    /// Whether `memory_total_bytes` is known.
    pub has_memory_total: bool,
    /// Framebuffer memory total, bytes.
    pub memory_total_bytes: u64,
    /// Whether `temperature_c` is known.
    pub has_temperature: bool,
    /// GPU temperature, °C.
    pub temperature_c: f64,
    /// Whether `power_w` is known.
    pub has_power: bool,
    /// Power draw, W.
    pub power_w: f64,
    /// Whether `power_limit_w` is known.
    pub has_power_limit: bool,
    /// Enforced power limit, W.
    pub power_limit_w: f64,
    /// Whether `energy_mj` is known (GPUs before Volta have no counter).
    pub has_energy: bool,
    /// NVML's total-energy counter, mJ since the driver loaded.
    pub energy_mj: u64,
    /// Whether `sm_clock_mhz` is known.
    pub has_sm_clock: bool,
    /// SM clock, MHz.
    pub sm_clock_mhz: u32,
    /// Whether `mem_clock_mhz` is known.
    pub has_mem_clock: bool,
    /// Memory clock, MHz.
    pub mem_clock_mhz: u32,
    /// Processes seen on the GPU (0 unless `algalon_options_set_processes`).
    pub process_count: u32,
}

fn mib_bytes(gpu: &GpuSample, field: Field) -> Option<u64> {
    gpu.get_f64(field).map(|mib| (mib as u64) << 20)
}

fn as_u32(v: Option<f64>) -> Option<u32> {
    v.map(|v| v as u32)
}

impl From<&GpuSample> for algalon_gpu_sample {
    fn from(g: &GpuSample) -> Self {
        fn split<T: Default>(v: Option<T>) -> (bool, T) {
            match v {
                Some(v) => (true, v),
                None => (false, T::default()),
            }
        }
        let (has_minor_number, minor_number) = split(g.minor_number);
        let (has_gpu_util, gpu_util_percent) = split(g.gpu_util());
        let (has_memory_util, memory_util_percent) = split(g.get_f64(Field::MemCopyUtil));
        let (has_memory_used, memory_used_bytes) = split(g.memory_used_bytes());
        let (has_memory_free, memory_free_bytes) = split(mib_bytes(g, Field::FbFree));
        let (has_memory_total, memory_total_bytes) = split(g.memory_total_bytes());
        let (has_temperature, temperature_c) = split(g.temperature_c());
        let (has_power, power_w) = split(g.power_w());
        let (has_power_limit, power_limit_w) = split(g.get_f64(Field::EnforcedPowerLimit));
        let (has_energy, energy_mj) = split(g.energy_mj());
        let (has_sm_clock, sm_clock_mhz) = split(as_u32(g.get_f64(Field::SmClock)));
        let (has_mem_clock, mem_clock_mhz) = split(as_u32(g.get_f64(Field::MemClock)));
        algalon_gpu_sample {
            index: g.index,
            up: g.up,
            uuid: fixed(&g.uuid),
            name: fixed(&g.name),
            pci_bus_id: fixed(&g.pci_bus_id),
            has_minor_number,
            minor_number,
            has_gpu_util,
            gpu_util_percent,
            has_memory_util,
            memory_util_percent,
            has_memory_used,
            memory_used_bytes,
            has_memory_free,
            memory_free_bytes,
            has_memory_total,
            memory_total_bytes,
            has_temperature,
            temperature_c,
            has_power,
            power_w,
            has_power_limit,
            power_limit_w,
            has_energy,
            energy_mj,
            has_sm_clock,
            sm_clock_mhz,
            has_mem_clock,
            mem_clock_mhz,
            process_count: u32::try_from(g.processes.len()).unwrap_or(u32::MAX),
        }
    }
}

/// Frees a snapshot. NULL does nothing.
///
/// # Safety
///
/// `snapshot` must be NULL or a snapshot handle not freed yet, read by no
/// other thread now or afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_snapshot_free(snapshot: *mut algalon_snapshot) {
    boundary_value((), || {
        if !snapshot.is_null() {
            // SAFETY: a live handle from this library, by contract.
            drop(unsafe { Box::from_raw(snapshot) });
        }
    })
}

/// Writes the number of GPUs in the snapshot to `*out`.
///
/// # Safety
///
/// `snapshot` must be a live snapshot; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_snapshot_gpu_count(
    snapshot: *const algalon_snapshot,
    out: *mut usize,
) -> algalon_result {
    boundary("algalon_snapshot_gpu_count", || {
        // SAFETY: the caller's contract.
        let snapshot = unsafe { arg_ref(snapshot, "snapshot") }?;
        let out = arg_out(out, "out")?;
        // SAFETY: checked non-NULL; valid by contract.
        unsafe { out.write(snapshot.snap.gpus.len()) };
        Ok(())
    })
}

/// Copies the readings of the GPU at position `i` (0 ≤ i <
/// `algalon_snapshot_gpu_count`, in NVML index order) into `*out`.
/// `ALGALON_RESULT_OUT_OF_RANGE` when `i` is too large.
///
/// Ownership: `*out` is the caller's struct; nothing in it points into the
/// snapshot.
///
/// # Safety
///
/// `snapshot` must be a live snapshot; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_snapshot_gpu(
    snapshot: *const algalon_snapshot,
    i: usize,
    out: *mut algalon_gpu_sample,
) -> algalon_result {
    boundary("algalon_snapshot_gpu", || {
        // SAFETY: the caller's contract.
        let snapshot = unsafe { arg_ref(snapshot, "snapshot") }?;
        let out = arg_out(out, "out")?;
        let sample = algalon_gpu_sample::from(snapshot.gpu(i)?);
        // SAFETY: checked non-NULL; valid by contract.
        unsafe { out.write(sample) };
        Ok(())
    })
}

/// Writes the reading of any catalog field of the GPU at position `i` to
/// `*out`, in DCGM's unit for the field (MiB, %, W, mJ, MHz, …), by its DCGM
/// name, e.g. `"DCGM_FI_DEV_SM_CLOCK"`. Counters above 2^53 lose precision
/// as a double (use `algalon_gpu_sample.energy_mj` for the exact energy).
///
/// `ALGALON_RESULT_UNKNOWN_FIELD` for a name not in the catalog,
/// `ALGALON_RESULT_INVALID_ARGUMENT` for a label field (text, such as
/// `DCGM_FI_DRIVER_VERSION`), `ALGALON_RESULT_NOT_AVAILABLE` when the GPU has
/// no such reading (not supported, GPU down, or a field the sampler does not
/// read: see `algalon_options_set_collectors_file`).
///
/// # Safety
///
/// `snapshot` must be a live snapshot; `field` a NUL-terminated string;
/// `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_snapshot_gpu_field(
    snapshot: *const algalon_snapshot,
    i: usize,
    field: *const c_char,
    out: *mut f64,
) -> algalon_result {
    boundary("algalon_snapshot_gpu_field", || {
        // SAFETY: the caller's contract.
        let snapshot = unsafe { arg_ref(snapshot, "snapshot") }?;
        // SAFETY: the caller's contract.
        let name = unsafe { arg_str(field, "field") }?;
        let out = arg_out(out, "out")?;
        let gpu = snapshot.gpu(i)?;
        let field = Field::from_name(name).ok_or_else(|| {
            let hint = algalon_core::catalog::closest_name(name)
                .map(|n| format!(" (did you mean {n}?)"))
                .unwrap_or_default();
            Fail::new(
                algalon_result::UnknownField,
                format!("no field named {name:?} in Algalon's catalog{hint}"),
            )
        })?;
        if field.def().kind == Kind::Label {
            return Err(Fail::new(
                algalon_result::InvalidArgument,
                format!("{name} is a label (text), not a numeric reading"),
            ));
        }
        let value = gpu.get_f64(field).ok_or_else(|| {
            Fail::new(
                algalon_result::NotAvailable,
                format!(
                    "GPU {} has no {name} reading (not supported, not permitted, GPU down, or not in the sampler's field set)",
                    gpu.index
                ),
            )
        })?;
        // SAFETY: checked non-NULL; valid by contract.
        unsafe { out.write(value) };
        Ok(())
    })
}

/// Copies why the GPU at position `i` is down (e.g. `nvmlDeviceGetUUID
/// failed: GPU is lost`) into `buf` by the string protocol (see
/// `algalon_last_error`). `ALGALON_RESULT_NOT_AVAILABLE` when it is up.
///
/// # Safety
///
/// `snapshot` must be a live snapshot; `buf` valid for `len` bytes of writes
/// (or NULL with `len` 0); `out_n` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_snapshot_gpu_down_reason(
    snapshot: *const algalon_snapshot,
    i: usize,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> algalon_result {
    boundary("algalon_snapshot_gpu_down_reason", || {
        // SAFETY: the caller's contract.
        let snapshot = unsafe { arg_ref(snapshot, "snapshot") }?;
        let gpu = snapshot.gpu(i)?;
        let reason = gpu.down_reason.as_ref().ok_or_else(|| {
            Fail::new(
                algalon_result::NotAvailable,
                format!("GPU {} is up: it has no down reason", gpu.index),
            )
        })?;
        // SAFETY: the caller's contract.
        unsafe { write_str(&reason.to_string(), buf, len, out_n) }
    })
}

/// Copies the snapshot as Prometheus text (format 0.0.4, dcgm-exporter's
/// names and labels, the fields of the sampler's collectors set) into `buf`
/// by the string protocol: call with `buf = NULL, len = 0` to get the size
/// needed in `*out_n` (`ALGALON_RESULT_INSUFFICIENT_SIZE`), allocate that,
/// and call again. The text is encoded once per snapshot handle, so the
/// second call only copies.
///
/// # Safety
///
/// `snapshot` must be a live snapshot; `buf` valid for `len` bytes of writes
/// (or NULL with `len` 0); `out_n` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_snapshot_encode(
    snapshot: *const algalon_snapshot,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> algalon_result {
    boundary("algalon_snapshot_encode", || {
        // SAFETY: the caller's contract.
        let snapshot = unsafe { arg_ref(snapshot, "snapshot") }?;
        let text = snapshot.text.get_or_init(|| {
            snapshot
                .encoder
                .encode(&snapshot.snap, Format::PrometheusText)
        });
        // SAFETY: the caller's contract.
        unsafe { write_str(text, buf, len, out_n) }
    })
}

/// Writes the snapshot's sequence number (1 for a sampler's first sample,
/// then +1 per sample) to `*out`.
///
/// # Safety
///
/// `snapshot` must be a live snapshot; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_snapshot_seq(
    snapshot: *const algalon_snapshot,
    out: *mut u64,
) -> algalon_result {
    boundary("algalon_snapshot_seq", || {
        // SAFETY: the caller's contract.
        let snapshot = unsafe { arg_ref(snapshot, "snapshot") }?;
        let out = arg_out(out, "out")?;
        // SAFETY: checked non-NULL; valid by contract.
        unsafe { out.write(snapshot.snap.seq) };
        Ok(())
    })
}

/// Writes when the sample started, in seconds since the Unix epoch, to
/// `*out`.
///
/// # Safety
///
/// `snapshot` must be a live snapshot; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_snapshot_taken_at(
    snapshot: *const algalon_snapshot,
    out: *mut f64,
) -> algalon_result {
    boundary("algalon_snapshot_taken_at", || {
        // SAFETY: the caller's contract.
        let snapshot = unsafe { arg_ref(snapshot, "snapshot") }?;
        let out = arg_out(out, "out")?;
        // SAFETY: checked non-NULL; valid by contract.
        unsafe { out.write(unix_seconds(snapshot.snap.taken_at)) };
        Ok(())
    })
}

/// Copies the NVIDIA driver version (e.g. `550.54.15`) into `buf` by the
/// string protocol (see `algalon_last_error`);
/// `ALGALON_RESULT_NOT_AVAILABLE` when NVML could not give it.
///
/// # Safety
///
/// `snapshot` must be a live snapshot; `buf` valid for `len` bytes of writes
/// (or NULL with `len` 0); `out_n` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_snapshot_driver_version(
    snapshot: *const algalon_snapshot,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> algalon_result {
    boundary("algalon_snapshot_driver_version", || {
        // SAFETY: the caller's contract.
        let snapshot = unsafe { arg_ref(snapshot, "snapshot") }?;
        let version = snapshot.snap.driver_version.as_deref().ok_or_else(|| {
            Fail::new(
                algalon_result::NotAvailable,
                "NVML did not give the driver version",
            )
        })?;
        // SAFETY: the caller's contract.
        unsafe { write_str(version, buf, len, out_n) }
    })
}
