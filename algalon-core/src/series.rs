//! Algalon's own series: every `algalon_*` family, declared once.
//!
//! What [`crate::catalog`] is for DCGM fields, this table is for the series
//! DCGM has no name for: name, type, unit, labels and help. The encoder
//! writes each family's descriptor from its row, and README.md's table of
//! own series is [`markdown_table`]'s output (`make series-doc`; a test keeps
//! it in step).
//!
//! Own series follow Prometheus conventions, not DCGM's: base units named in
//! the series name (`_seconds`, `_bytes`, `_joules`, `_watts`, `_ratio`),
//! real counters ending in `_total`, info series ending in `_info`.

use prometheus_client::metrics::MetricType;

/// How an own series is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeriesKind {
    /// A value that goes up and down.
    Gauge,
    /// A monotonically increasing total; exposed with `_total`.
    Counter,
    /// Identity as labels on a constant 1; exposed with `_info`.
    Info,
}

impl SeriesKind {
    /// The name as the type appears in documentation.
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesKind::Gauge => "gauge",
            SeriesKind::Counter => "counter",
            SeriesKind::Info => "info",
        }
    }

    /// The suffix the exposition formats append to a family's name.
    fn suffix(self) -> &'static str {
        match self {
            SeriesKind::Gauge => "",
            SeriesKind::Counter => "_total",
            SeriesKind::Info => "_info",
        }
    }

    pub(crate) fn metric_type(self) -> MetricType {
        match self {
            SeriesKind::Gauge => MetricType::Gauge,
            SeriesKind::Counter => MetricType::Counter,
            SeriesKind::Info => MetricType::Info,
        }
    }
}

/// One own series family. See [`SERIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesDef {
    /// The family's identity.
    pub series: Series,
    /// The family name as registered (`algalon_samples`); the exposed
    /// series name adds the type's suffix, see [`SeriesDef::exposed_name`].
    pub name: &'static str,
    /// Gauge, counter or info.
    pub kind: SeriesKind,
    /// The base unit of the value (`seconds`, `bytes`, `joules`, `watts`,
    /// `ratio`), empty for a count or a 0/1 state.
    pub unit: &'static str,
    /// Whether every series carries the GPU's identity labels
    /// ([`GPU_LABELS`]) before [`labels`](SeriesDef::labels).
    pub gpu_labels: bool,
    /// Further labels, in the order written. A name ending in `?` is left
    /// out when there is no value for it (a process whose Slurm job is not
    /// known, a job that was not interrupted).
    pub labels: &'static [&'static str],
    /// Whether the user's own labels follow (job identity).
    pub user_labels: bool,
    /// The `# HELP` text.
    pub help: &'static str,
}

/// The identity labels of a GPU, as dcgm-exporter writes them; `?` marks
/// those left out when unknown (`device`: no minor number) or switched off
/// (`Hostname`: `--no-hostname`).
pub const GPU_LABELS: &[&str] = &[
    "gpu",
    "UUID",
    "pci_bus_id",
    "device?",
    "modelName",
    "Hostname?",
];

impl SeriesDef {
    /// The series name a scraper sees: the family name plus `_total` for a
    /// counter, `_info` for an info series.
    pub fn exposed_name(&self) -> String {
        format!("{}{}", self.name, self.kind.suffix())
    }

    /// Every label a series of this family may carry, in order, with
    /// whether it is optional (`?` in the table).
    pub fn label_names(&self) -> impl Iterator<Item = (&'static str, bool)> + use<> {
        let gpu: &'static [&'static str] = if self.gpu_labels { GPU_LABELS } else { &[] };
        gpu.iter()
            .chain(self.labels)
            .map(|l| match l.strip_suffix('?') {
                Some(name) => (name, true),
                None => (*l, false),
            })
    }
}

macro_rules! series {
    ($( $variant:ident => $name:literal, $kind:ident, $unit:literal, [$($gpu:ident)? $(; $($label:literal),*)?] $(+ $user:ident)?, $help:literal; )*) => {
        /// One of Algalon's own series families. See [`SERIES`] for names,
        /// types, units, labels and help.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Series {
            $( #[doc = $help] $variant, )*
        }

        /// Every own series, in [`Series`] order: `SERIES[s as usize].series == s`.
        pub static SERIES: &[SeriesDef] = &[
            $( SeriesDef {
                series: Series::$variant,
                name: $name,
                kind: SeriesKind::$kind,
                unit: $unit,
                gpu_labels: series!(@flag $($gpu)?),
                labels: &[$($($label),*)?],
                user_labels: series!(@flag $($user)?),
                help: $help,
            }, )*
        ];
    };
    (@flag) => { false };
    (@flag $x:ident) => { true };
}

series! {
    // Per GPU, from each sample.
    GpuUp => "algalon_gpu_up", Gauge, "", [gpu],
        "Whether NVML answers for this GPU (1) or it is lost or failing (0).";
    XidErrors => "algalon_xid_errors", Counter, "", [gpu; "xid"],
        "XID errors reported by the driver since the sampler started, by XID.";
    // Per process on a GPU (process sampling on).
    ProcessGpuMemory => "algalon_process_gpu_memory_bytes", Gauge, "bytes",
        [gpu; "pid", "process_name?", "slurm_job_id?", "pod_uid?"],
        "GPU memory used by a process, in bytes.";
    ProcessSmUtilization => "algalon_process_gpu_sm_utilization_ratio", Gauge, "ratio",
        [gpu; "pid", "process_name?", "slurm_job_id?", "pod_uid?"],
        "SM utilization of a process over the last interval (0-1).";
    ProcessMemoryUtilization => "algalon_process_gpu_memory_utilization_ratio", Gauge, "ratio",
        [gpu; "pid", "process_name?", "slurm_job_id?", "pod_uid?"],
        "Memory-controller utilization of a process over the last interval (0-1).";
    // The sampler itself.
    Build => "algalon_build", Info, "",
        [; "version", "driver_version?", "nvml_version?", "cuda_driver_version?", "revision?"],
        "Algalon version and the NVIDIA driver and NVML it runs on.";
    SampleDuration => "algalon_sample_duration_seconds", Gauge, "seconds", [],
        "Time the last sample of all GPUs took, NVML calls included.";
    SampleTimestamp => "algalon_sample_timestamp_seconds", Gauge, "seconds", [],
        "Unix time at which the last sample started; now minus this is the sample age.";
    Samples => "algalon_samples", Counter, "", [],
        "Samples taken since the sampler started.";
    NvmlErrors => "algalon_nvml_errors", Counter, "", [; "gpu?", "call", "error"],
        "NVML calls that failed (other than \"not supported\") since the sampler started, by GPU (no gpu label: a host-level call), call and error.";
    // Jobs (the Python and C faces' job reports).
    Job => "algalon_job", Info, "", [; "job_id", "job_name"] + user,
        "A job or window measured by Algalon: its name and identity (Slurm, torchrun, Kubernetes, user labels).";
    JobDuration => "algalon_job_duration_seconds", Gauge, "seconds", [; "job_id", "job_name", "slurm_job_id?", "slurm_step_id?", "slurm_procid?", "slurm_array_job_id?", "slurm_array_task_id?", "torchelastic_run_id?", "rank?", "local_rank?", "k8s_namespace?", "k8s_pod?"],
        "Time between the first and the last sample of the job.";
    JobRunning => "algalon_job_running", Gauge, "", [; "job_id", "job_name", "slurm_job_id?", "slurm_step_id?", "slurm_procid?", "slurm_array_job_id?", "slurm_array_task_id?", "torchelastic_run_id?", "rank?", "local_rank?", "k8s_namespace?", "k8s_pod?"],
        "Whether the job's window is still open (1) or ended (0).";
    JobInterrupted => "algalon_job_interrupted", Gauge, "", [; "job_id", "job_name", "slurm_job_id?", "slurm_step_id?", "slurm_procid?", "slurm_array_job_id?", "slurm_array_task_id?", "torchelastic_run_id?", "rank?", "local_rank?", "k8s_namespace?", "k8s_pod?", "exception?"],
        "Whether the job ended by an exception (1, with its type as the exception label: KeyboardInterrupt, ...) instead of finishing its with block (0).";
    JobProgress => "algalon_job_progress", Counter, "", [; "job_id", "job_name", "slurm_job_id?", "slurm_step_id?", "slurm_procid?", "slurm_array_job_id?", "slurm_array_task_id?", "torchelastic_run_id?", "rank?", "local_rank?", "k8s_namespace?", "k8s_pod?", "unit"],
        "Progress the job reported (samples, tokens, …), by unit.";
    JobGpuEnergy => "algalon_job_gpu_energy_joules", Counter, "joules",
        [; "job_id", "job_name", "slurm_job_id?", "slurm_step_id?", "slurm_procid?", "slurm_array_job_id?", "slurm_array_task_id?", "torchelastic_run_id?", "rank?", "local_rank?", "k8s_namespace?", "k8s_pod?", "gpu", "UUID", "source"],
        "Energy the GPU used during the job, in joules; source says whether from NVML's energy counter or integrated power.";
    JobGpuUtilization => "algalon_job_gpu_utilization_ratio", Gauge, "ratio",
        [; "job_id", "job_name", "slurm_job_id?", "slurm_step_id?", "slurm_procid?", "slurm_array_job_id?", "slurm_array_task_id?", "torchelastic_run_id?", "rank?", "local_rank?", "k8s_namespace?", "k8s_pod?", "gpu", "UUID"],
        "Mean GPU utilization during the job (0-1).";
    JobGpuUtilizationMax => "algalon_job_gpu_utilization_max_ratio", Gauge, "ratio",
        [; "job_id", "job_name", "slurm_job_id?", "slurm_step_id?", "slurm_procid?", "slurm_array_job_id?", "slurm_array_task_id?", "torchelastic_run_id?", "rank?", "local_rank?", "k8s_namespace?", "k8s_pod?", "gpu", "UUID"],
        "Highest GPU utilization during the job (0-1).";
    JobGpuMemoryPeak => "algalon_job_gpu_memory_peak_bytes", Gauge, "bytes",
        [; "job_id", "job_name", "slurm_job_id?", "slurm_step_id?", "slurm_procid?", "slurm_array_job_id?", "slurm_array_task_id?", "torchelastic_run_id?", "rank?", "local_rank?", "k8s_namespace?", "k8s_pod?", "gpu", "UUID", "GPU_I_PROFILE?", "GPU_I_ID?"],
        "Highest GPU memory used during the job, in bytes (a MIG device's own framebuffer, with GPU_I_PROFILE and GPU_I_ID).";
    JobGpuPowerMean => "algalon_job_gpu_power_mean_watts", Gauge, "watts",
        [; "job_id", "job_name", "slurm_job_id?", "slurm_step_id?", "slurm_procid?", "slurm_array_job_id?", "slurm_array_task_id?", "torchelastic_run_id?", "rank?", "local_rank?", "k8s_namespace?", "k8s_pod?", "gpu", "UUID"],
        "Mean GPU power draw during the job, in watts.";
    JobGpuProcessMemoryPeak => "algalon_job_gpu_process_memory_peak_bytes", Gauge, "bytes",
        [; "job_id", "job_name", "slurm_job_id?", "slurm_step_id?", "slurm_procid?", "slurm_array_job_id?", "slurm_array_task_id?", "torchelastic_run_id?", "rank?", "local_rank?", "k8s_namespace?", "k8s_pod?", "gpu", "UUID", "GPU_I_PROFILE?", "GPU_I_ID?"],
        "Highest GPU memory used by the job's own processes, in bytes.";
    JobMigParentEnergy => "algalon_job_mig_parent_energy_joules", Counter, "joules",
        [; "job_id", "job_name", "slurm_job_id?", "slurm_step_id?", "slurm_procid?", "slurm_array_job_id?", "slurm_array_task_id?", "torchelastic_run_id?", "rank?", "local_rank?", "k8s_namespace?", "k8s_pod?", "gpu", "UUID", "GPU_I_PROFILE", "GPU_I_ID?", "source"],
        "Energy the whole parent GPU of the job's MIG device used during the job, in joules: shared by all its instances, not the job's own (see algalon_job_mig_energy_estimate_joules).";
    JobMigEnergyEstimate => "algalon_job_mig_energy_estimate_joules", Counter, "joules",
        [; "job_id", "job_name", "slurm_job_id?", "slurm_step_id?", "slurm_procid?", "slurm_array_job_id?", "slurm_array_task_id?", "torchelastic_run_id?", "rank?", "local_rank?", "k8s_namespace?", "k8s_pod?", "gpu", "UUID", "GPU_I_PROFILE", "GPU_I_ID?", "source"],
        "Estimated energy of the job's MIG device: its parent GPU's energy during the job times the instance's share of the GPU's compute slices (3/7 for a 3g instance on an H100).";
    JobMigSmActive => "algalon_job_mig_sm_active_ratio", Gauge, "ratio",
        [; "job_id", "job_name", "slurm_job_id?", "slurm_step_id?", "slurm_procid?", "slurm_array_job_id?", "slurm_array_task_id?", "torchelastic_run_id?", "rank?", "local_rank?", "k8s_namespace?", "k8s_pod?", "gpu", "UUID", "GPU_I_PROFILE", "GPU_I_ID?"],
        "Mean DCGM_FI_PROF_SM_ACTIVE of the job's MIG device during the job (0-1; GPUs with GPM).";
    JobMigSmOccupancy => "algalon_job_mig_sm_occupancy_ratio", Gauge, "ratio",
        [; "job_id", "job_name", "slurm_job_id?", "slurm_step_id?", "slurm_procid?", "slurm_array_job_id?", "slurm_array_task_id?", "torchelastic_run_id?", "rank?", "local_rank?", "k8s_namespace?", "k8s_pod?", "gpu", "UUID", "GPU_I_PROFILE", "GPU_I_ID?"],
        "Mean DCGM_FI_PROF_SM_OCCUPANCY of the job's MIG device during the job (0-1; GPUs with GPM).";
    JobMigTensorActive => "algalon_job_mig_tensor_active_ratio", Gauge, "ratio",
        [; "job_id", "job_name", "slurm_job_id?", "slurm_step_id?", "slurm_procid?", "slurm_array_job_id?", "slurm_array_task_id?", "torchelastic_run_id?", "rank?", "local_rank?", "k8s_namespace?", "k8s_pod?", "gpu", "UUID", "GPU_I_PROFILE", "GPU_I_ID?"],
        "Mean DCGM_FI_PROF_PIPE_TENSOR_ACTIVE of the job's MIG device during the job (0-1; GPUs with GPM).";
    JobMigDramActive => "algalon_job_mig_dram_active_ratio", Gauge, "ratio",
        [; "job_id", "job_name", "slurm_job_id?", "slurm_step_id?", "slurm_procid?", "slurm_array_job_id?", "slurm_array_task_id?", "torchelastic_run_id?", "rank?", "local_rank?", "k8s_namespace?", "k8s_pod?", "gpu", "UUID", "GPU_I_PROFILE", "GPU_I_ID?"],
        "Mean DCGM_FI_PROF_DRAM_ACTIVE of the job's MIG device during the job (0-1; GPUs with GPM).";
}

impl Series {
    /// This series' table row.
    pub fn def(self) -> &'static SeriesDef {
        &SERIES[self as usize]
    }

    /// The family name as registered (see [`SeriesDef::name`]).
    pub fn name(self) -> &'static str {
        self.def().name
    }
}

/// The Markdown table of every own series, as README.md embeds it between
/// `<!-- series:begin -->` and `<!-- series:end -->` (`make series-doc`).
pub fn markdown_table() -> String {
    let mut out = String::from("| series | type | unit | labels | help |\n|---|---|---|---|---|\n");
    for def in SERIES {
        let mut labels: Vec<String> = Vec::new();
        if def.gpu_labels {
            labels.push("GPU identity".to_owned());
        }
        labels.extend(def.labels.iter().map(|l| format!("`{l}`")));
        if def.user_labels {
            labels.push("user labels".to_owned());
        }
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            def.exposed_name(),
            def.kind.as_str(),
            def.unit,
            labels.join(", "),
            def.help.replace('|', "\\|"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::is_valid_label_name;

    #[test]
    fn table_is_in_enum_order() {
        for (i, def) in SERIES.iter().enumerate() {
            assert_eq!(def.series as usize, i, "{}", def.name);
            assert_eq!(def.series.def().name, def.name);
        }
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        let mut seen = std::collections::HashSet::new();
        for def in SERIES {
            let exposed = def.exposed_name();
            assert!(seen.insert(exposed.clone()), "{exposed} twice");
            assert!(def.name.starts_with("algalon_"), "{}", def.name);
            // The suffixes are the exposition's; a family name carrying one
            // would be exposed as `_total_total`.
            assert!(
                !def.name.ends_with("_total") && !def.name.ends_with("_info"),
                "{}",
                def.name
            );
            if !def.unit.is_empty() {
                assert!(
                    def.name.ends_with(&format!("_{}", def.unit)),
                    "{} does not end in its unit {}",
                    def.name,
                    def.unit
                );
            }
            for (label, _) in def.label_names() {
                assert!(is_valid_label_name(label), "{}: {label}", def.name);
            }
            assert!(!def.help.is_empty() && !def.help.contains('\n'));
        }
    }

    #[test]
    fn gpu_identity_labels_are_documented() {
        let gpu_up = Series::GpuUp.def();
        let names: Vec<_> = gpu_up.label_names().collect();
        assert_eq!(names[0], ("gpu", false));
        assert!(names.contains(&("Hostname", true)));
        assert!(
            markdown_table()
                .contains("| `algalon_xid_errors_total` | counter |  | GPU identity, `xid` |")
        );
    }
}
