//! Owns the background sampler and re-encodes each snapshot into the
//! published bodies, on the sampler thread.
//!
//! A collectors reload that only narrows or relabels what is exported swaps
//! the encoder and re-encodes the latest snapshot at once. One that needs a
//! field the running sampler does not read starts a new sampler (a new NVML
//! session) first and switches over only when it is up, so a failure leaves
//! the old one serving. A generation number keeps a retiring sampler's last
//! in-flight sample from overwriting the new one's body.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use algalon_core::collectors::ExpKind;
use algalon_core::windows::EventWindows;
use algalon_core::{
    BackgroundSampler, CORE_FIELDS, CollectorConfig, Encoder, Extras, Field, LabelStyle,
    SampleProgress, Sampler, SamplerOptions, Snapshot,
};
use arc_swap::ArcSwap;

use crate::hpc::HpcJobs;

use crate::history::History;
use crate::state::{Published, Shared};
use crate::telemetry::Telemetry;

/// The running sampler and how its output is encoded.
#[derive(Debug)]
pub struct Sampling {
    base: SamplerOptions,
    interval: Duration,
    style: LabelStyle,
    published: Shared,
    encoder: Arc<ArcSwap<Encoder>>,
    /// Serialises publishing with encoder swaps.
    publish_lock: Arc<Mutex<()>>,
    generation: Arc<AtomicU64>,
    current: Mutex<Option<Running>>,
    nvml_library: String,
    /// The `/` page's recent readings; outlives sampler restarts on reload.
    history: Arc<Mutex<History>>,
    /// Where sample durations are recorded.
    telemetry: Arc<Telemetry>,
    /// dcgm-exporter's windowed counts and HPC jobs; outlives reloads.
    annotator: Arc<Mutex<Annotator>>,
    /// The XID and clock-event count windows.
    windows: (Duration, Duration),
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// dcgm-exporter's options that shape the GPU series besides the CSV.
#[derive(Debug, Clone, Default)]
pub struct SeriesOptions {
    /// Label names and values (`--hostname-label`, `-n`, `-o`, `-rbmn`).
    pub style: LabelStyle,
    /// `-x/--xid-count-window-size`.
    pub xid_window: Duration,
    /// `--clock-events-count-window-size`.
    pub clock_events_window: Duration,
    /// `--hpc-job-mapping-dir`.
    pub hpc_job_mapping_dir: Option<std::path::PathBuf>,
    /// Labels a face attaches to GPU and process series (`--kubernetes`).
    pub labeller: Option<Arc<dyn Labeller>>,
}

/// Attaches label sets to a snapshot's GPU and process series at each
/// encode ([`Extras::gpu_label_sets`], [`Extras::process_labels`]); must
/// answer from memory, it runs on the sampler's thread.
pub trait Labeller: Send + Sync + std::fmt::Debug {
    /// Fills `extras`' label sets for `snapshot`.
    fn label(&self, snapshot: &Snapshot, extras: &mut Extras);
}

/// What each encode adds to a snapshot: windowed counts and HPC jobs.
#[derive(Debug)]
struct Annotator {
    windows: EventWindows,
    hpc: Option<HpcJobs>,
    labeller: Option<Arc<dyn Labeller>>,
}

impl Annotator {
    /// The extras for `snapshot` under `config`: the windowed counts the
    /// file asks for, and the jobs the mapping directory lists now.
    fn extras(&mut self, snapshot: &Snapshot, config: &CollectorConfig) -> Arc<Extras> {
        let now = snapshot.taken_at;
        let mut extras = Extras {
            hpc_jobs: self.hpc.as_mut().map(HpcJobs::read).unwrap_or_default(),
            xid_counts: config
                .wants(ExpKind::XidErrorsCount)
                .then(|| self.windows.xid_counts(now)),
            clock_event_counts: config
                .wants(ExpKind::ClockEventsCount)
                .then(|| self.windows.clock_event_counts(now)),
            ..Extras::default()
        };
        if let Some(labeller) = &self.labeller {
            labeller.label(snapshot, &mut extras);
        }
        Arc::new(extras)
    }
}

#[derive(Debug)]
struct Running {
    bg: BackgroundSampler,
    fields: HashSet<Field>,
    progress: Arc<SampleProgress>,
}

/// Read besides the collectors' fields so the `/` page can draw power
/// against the limit; they appear in `/api/v1/gpus`, not in `/metrics`.
const PAGE_FIELDS: &[Field] = &[Field::EnforcedPowerLimit];

/// Which fields a sampler for `config` reads.
fn fields_of(config: &CollectorConfig) -> HashSet<Field> {
    config
        .fields()
        .chain(CORE_FIELDS.iter().copied())
        .chain(PAGE_FIELDS.iter().copied())
        .collect()
}

/// Sampler options for `config`.
fn options_for(base: &SamplerOptions, config: &CollectorConfig) -> SamplerOptions {
    let mut options = base.clone().with_collectors(config);
    for field in PAGE_FIELDS {
        if !options.fields.contains(field) {
            options.fields.push(*field);
        }
    }
    options
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sampling {
    /// Opens NVML, takes the first sample and starts sampling every
    /// `interval`. `base.fields` is ignored: `config` decides.
    pub fn start(
        base: SamplerOptions,
        config: CollectorConfig,
        interval: Duration,
        series: SeriesOptions,
        published: Shared,
        telemetry: Arc<Telemetry>,
    ) -> algalon_core::Result<Sampling> {
        let encoder = Arc::new(ArcSwap::from_pointee(make_encoder(
            config.clone(),
            series.style,
        )));
        let annotator = Annotator {
            windows: EventWindows::new(series.xid_window, series.clock_events_window),
            hpc: series.hpc_job_mapping_dir.map(HpcJobs::new),
            labeller: series.labeller,
        };
        let sampler = Sampler::new(options_for(&base, &config))?;
        let nvml_library = sampler.library().to_owned();
        let sampling = Sampling {
            base,
            interval,
            style: series.style,
            published,
            encoder,
            publish_lock: Arc::new(Mutex::new(())),
            generation: Arc::new(AtomicU64::new(1)),
            current: Mutex::new(None),
            nvml_library,
            history: Arc::new(Mutex::new(History::new(interval))),
            telemetry,
            annotator: Arc::new(Mutex::new(annotator)),
            windows: (series.xid_window, series.clock_events_window),
        };
        let progress = sampler.progress();
        let on_sample = sampling.on_sample(1, Arc::clone(&progress));
        let bg = BackgroundSampler::spawn(sampler, interval, on_sample)?;
        *lock(&sampling.current) = Some(Running {
            bg,
            fields: fields_of(&config),
            progress,
        });
        Ok(sampling)
    }

    /// The NVML library in use (path or soname).
    pub fn nvml_library(&self) -> &str {
        &self.nvml_library
    }

    /// The most recent snapshot, if sampling runs.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        lock(&self.current).as_ref().map(|r| r.bg.latest())
    }

    /// `/api/v1/fields` as JSON: the collectors config in use, checked
    /// against the last sample.
    pub fn fields_json(&self) -> Vec<u8> {
        let encoder = self.encoder.load();
        let latest = self.latest();
        let view = crate::api::FieldsView::new(
            encoder.config(),
            latest.as_deref(),
            (millis(self.windows.0), millis(self.windows.1)),
        );
        serde_json::to_vec(&view).unwrap_or_else(|e| {
            tracing::error!("cannot serialise the field list as JSON: {e}");
            b"{}".to_vec()
        })
    }

    /// The closure the sampler thread calls after each sample.
    fn on_sample(
        &self,
        generation: u64,
        progress: Arc<SampleProgress>,
    ) -> impl FnMut(&Arc<Snapshot>) + Send + 'static {
        let current = Arc::clone(&self.generation);
        let lock_ = Arc::clone(&self.publish_lock);
        let encoder = Arc::clone(&self.encoder);
        let published = Arc::clone(&self.published);
        let history = Arc::clone(&self.history);
        let telemetry = Arc::clone(&self.telemetry);
        let annotator = Arc::clone(&self.annotator);
        let mut last_down = 0usize;
        let mut was_up: HashMap<String, bool> = HashMap::new();
        move |snapshot: &Arc<Snapshot>| {
            let _guard = lock(&lock_);
            if current.load(Ordering::SeqCst) != generation {
                return;
            }
            telemetry.observe_sample(snapshot.duration);
            let started = std::time::Instant::now();
            let encoder = encoder.load();
            let extras = {
                let mut annotator = lock(&annotator);
                annotator.windows.record(snapshot);
                annotator.extras(snapshot, encoder.config())
            };
            let mut history = lock(&history);
            history.record(snapshot);
            let rendered = Published::render(snapshot, &encoder, &extras, &progress, &history);
            drop(history);
            let render_time = started.elapsed();
            log_gpu_changes(snapshot, &mut was_up);
            if rendered.down.len() != last_down {
                if rendered.down.is_empty() {
                    tracing::info!("every GPU is up again");
                } else {
                    tracing::warn!(
                        down = rendered.down.len(),
                        gpus = rendered.gpus,
                        "GPUs down: {}",
                        rendered.down.join("; ")
                    );
                }
                last_down = rendered.down.len();
            }
            tracing::debug!(
                seq = snapshot.seq,
                sample_ms = snapshot.duration.as_secs_f64() * 1000.0,
                encode_ms = render_time.as_secs_f64() * 1000.0,
                bytes = rendered.text.plain.len(),
                "sample published"
            );
            published.store(Arc::new(rendered));
        }
    }

    /// Applies a reloaded collectors config; on error the old one keeps serving.
    pub fn apply(&self, config: CollectorConfig) -> algalon_core::Result<()> {
        let mut current = lock(&self.current);
        let needed = fields_of(&config);
        let new_encoder = Arc::new(make_encoder(config.clone(), self.style));
        if let Some(running) = current.as_ref()
            && needed.is_subset(&running.fields)
        {
            // Same sampler: swap the encoder and re-encode the latest sample
            // now, so the next scrape already sees the new config.
            let _guard = lock(&self.publish_lock);
            self.encoder.store(new_encoder);
            let latest = running.bg.latest();
            let extras = lock(&self.annotator).extras(&latest, &config);
            let rendered = Published::render(
                &latest,
                &self.encoder.load(),
                &extras,
                &running.progress,
                &lock(&self.history),
            );
            self.published.store(Arc::new(rendered));
            return Ok(());
        }
        // New fields: a new sampler, started before the old one is retired.
        let sampler = Sampler::new(options_for(&self.base, &config))?;
        let progress = sampler.progress();
        let (old_generation, old_encoder) = {
            let _guard = lock(&self.publish_lock);
            let old = self.generation.fetch_add(1, Ordering::SeqCst);
            (old, self.encoder.swap(new_encoder))
        };
        let generation = old_generation + 1;
        let on_sample = self.on_sample(generation, Arc::clone(&progress));
        match BackgroundSampler::spawn(sampler, self.interval, on_sample) {
            Ok(bg) => {
                let running = Running {
                    bg,
                    fields: needed,
                    progress,
                };
                if let Some(old) = current.replace(running) {
                    retire(old.bg);
                }
                Ok(())
            }
            Err(e) => {
                let _guard = lock(&self.publish_lock);
                self.generation.store(old_generation, Ordering::SeqCst);
                self.encoder.store(old_encoder);
                Err(e)
            }
        }
    }

    /// Stops sampling, waiting at most `grace` for an in-flight NVML call.
    pub fn stop(&self, grace: Duration) {
        let Some(running) = lock(&self.current).take() else {
            return;
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("algalon-stop".into())
            .spawn(move || {
                running.bg.stop();
                let _ = tx.send(());
            });
        if spawned.is_ok() && rx.recv_timeout(grace).is_err() {
            tracing::warn!(
                "the sampler did not stop within {:.1} s (NVML call still in progress); exiting anyway",
                grace.as_secs_f64()
            );
        }
    }
}

/// Logs each GPU that went down or came back since the last sample, once,
/// with its index, UUID and the failing call as fields.
fn log_gpu_changes(snapshot: &Snapshot, was_up: &mut HashMap<String, bool>) {
    for gpu in &snapshot.gpus {
        let before = was_up.insert(gpu.uuid.clone(), gpu.up);
        match (before, gpu.up) {
            (Some(true) | None, false) => {
                let (call, error) = gpu.down_reason.as_ref().map_or(("", String::new()), |r| {
                    (r.call, crate::api::nvml_text(&r.error))
                });
                tracing::warn!(
                    gpu = gpu.index,
                    uuid = %gpu.uuid,
                    call,
                    error = %error,
                    "GPU {} is down",
                    gpu.index
                );
            }
            (Some(false), true) => {
                tracing::info!(gpu = gpu.index, uuid = %gpu.uuid, "GPU {} is up again", gpu.index);
            }
            _ => {}
        }
    }
    if was_up.len() > snapshot.gpus.len() {
        was_up.retain(|uuid, _| snapshot.gpu_by_uuid(uuid).is_some());
    }
}

/// Stops a replaced sampler without waiting on it: a hung NVML call must
/// not hold up the reload.
fn retire(bg: BackgroundSampler) {
    let spawned = std::thread::Builder::new()
        .name("algalon-retire".into())
        .spawn(move || bg.stop());
    if let Err(e) = spawned {
        tracing::warn!("cannot start a thread to stop the old sampler: {e}");
    }
}

fn make_encoder(config: CollectorConfig, style: LabelStyle) -> Encoder {
    // The revision the binary was built from, beside the version.
    Encoder::new(config)
        .with_build_label("revision", env!("ALGALON_GIT_REVISION"))
        .with_label_style(style)
}
