//! Algalon started the way NVIDIA's own manifests, Helm chart and docs start
//! dcgm-exporter, against the fake NVML: it starts, listens where the
//! Service expects, and serves dcgm-exporter's series and labels.
//!
//! The manifests, values, option list and render template are NVIDIA's
//! files, vendored unchanged under `testing/upstream/dcgm-exporter/`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use algalon_exporter::cli::{Cli, command};
use algalon_exporter::compat::{ALGALON_ENV, DCGM_OPTIONS};
use common::{Exporter, fake_nvml, run_to_failure, scenario};

fn upstream(name: &str) -> String {
    let path = workspace()
        .join("testing/upstream/dcgm-exporter")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The text between the first `open` after `from` and its matching `close`.
fn between<'a>(text: &'a str, from: &str, open: char, close: char) -> &'a str {
    let start = text
        .find(from)
        .unwrap_or_else(|| panic!("{from:?} not found"))
        + from.len();
    let rest = &text[start..];
    let open_at = rest.find(open).expect("opening bracket");
    if open == close {
        let inner = &rest[open_at + 1..];
        return &inner[..inner.find(close).expect("closing quote")];
    }
    let mut depth = 0;
    for (i, c) in rest[open_at..].char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return &rest[open_at + 1..open_at + i];
            }
        }
    }
    panic!("unbalanced {open}{close} after {from:?}")
}

/// The quoted strings in `text`.
fn quoted(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// dcgm-exporter's flags from `app.go`: (long name, alias, variable).
fn app_go_flags() -> BTreeSet<(String, Option<String>, String)> {
    let app = upstream("app.go");
    // The `const (…)` block of option names: `CLIFieldsFile = "collectors"`, …
    let start = app
        .find("CLIFieldsFile ")
        .expect("the option name constants");
    let block = &app[start..start + app[start..].find(')').expect("end of the block")];
    let consts: Vec<(String, String)> = block
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once('=')?;
            Some((name.trim().to_owned(), quoted(value).first()?.clone()))
        })
        .collect();
    let long_of = |constant: &str| {
        consts
            .iter()
            .find(|(c, _)| c == constant)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("constant {constant} not in app.go"))
    };
    let mut flags = BTreeSet::new();
    for block in app.split("&cli.").skip(1) {
        let block = &block[..block.find("\n\t\t}").unwrap_or(block.len())];
        let field = |key: &str| {
            block
                .lines()
                .find(|l| l.trim_start().starts_with(key))
                .map(|l| l.split_once(':').expect("key: value").1.trim().to_owned())
        };
        let Some(name) = field("Name:") else {
            continue;
        };
        let long = long_of(name.trim_end_matches(','));
        let alias = field("Aliases:").and_then(|a| quoted(&a).first().cloned());
        let env = field("EnvVars:")
            .and_then(|e| quoted(&e).first().cloned())
            .unwrap_or_else(|| panic!("{long} has no variable"));
        flags.insert((long, alias, env));
    }
    flags
}

#[test]
fn the_option_table_is_dcgm_exporters() {
    let flags = app_go_flags();
    assert!(
        flags.len() >= 38,
        "{} flags parsed from app.go",
        flags.len()
    );
    let table: BTreeSet<_> = DCGM_OPTIONS
        .iter()
        .map(|o| {
            (
                o.long.to_owned(),
                o.alias.map(str::to_owned),
                o.env.to_owned(),
            )
        })
        .collect();
    assert_eq!(
        table.difference(&flags).collect::<Vec<_>>(),
        Vec::<&(String, Option<String>, String)>::new(),
        "rows that app.go does not have"
    );
    assert_eq!(
        flags.difference(&table).collect::<Vec<_>>(),
        Vec::<&(String, Option<String>, String)>::new(),
        "app.go flags missing from the table"
    );
    // Every name and alias is an option of the command line.
    let cmd = command();
    for o in DCGM_OPTIONS {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(o.long))
            .unwrap_or_else(|| panic!("--{} is not an option", o.long));
        match o.alias {
            Some(a) if a.len() == 1 => {
                let c = a.chars().next().expect("one char");
                assert_eq!(arg.get_short(), Some(c), "-{a} for --{}", o.long);
            }
            Some(a) => assert!(
                arg.get_all_aliases().unwrap_or_default().contains(&a),
                "--{a} for --{}",
                o.long
            ),
            None => {}
        }
    }
    for (long, _) in ALGALON_ENV {
        assert!(cmd.get_arguments().any(|a| a.get_long() == Some(long)));
    }
}

/// The `name: value` pairs of a container's `env:` list (entries with a
/// literal value; `valueFrom` ones are left out).
fn container_env(container: &serde_norway::Value) -> Vec<(String, String)> {
    container["env"]
        .as_sequence()
        .expect("env list")
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_owned(),
                e["value"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

fn port_of(address: &str) -> u16 {
    address
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {address:?}"))
}

/// Every GPU series' label names, in order, for metric `name`.
fn label_names(text: &str, name: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .map(|l| {
            let inner = &l[name.len() + 1..l.rfind('}').expect("closing brace")];
            let mut names = Vec::new();
            let mut in_value = false;
            let mut escaped = false;
            let mut current = String::new();
            for c in inner.chars() {
                match (in_value, c) {
                    (true, '\\') if !escaped => escaped = true,
                    (true, '"') if !escaped => in_value = false,
                    (true, _) => escaped = false,
                    (false, '"') => in_value = true,
                    (false, '=') => names.push(std::mem::take(&mut current)),
                    (false, ',') => {}
                    (false, c) => current.push(c),
                }
            }
            names
        })
        .collect()
}

/// dcgm-exporter's GPU label names before any label field or attribute,
/// from its render template: `with_mig` and `with_host` choose the
/// template's optional parts.
fn template_labels(with_mig: bool, with_host: bool) -> Vec<String> {
    let template = upstream("render_metrics.go");
    let gpu = between(&template, "gpuMetricsFormat = ", '`', '`');
    let line = gpu
        .lines()
        .find(|l| l.starts_with("{{ $counter.FieldName }}{"))
        .expect("the series line");
    let mut names = Vec::new();
    let mut section_on = true;
    let mut rest = line.trim_start_matches("{{ $counter.FieldName }}{");
    while let Some(eq) = rest.find("=\"{{") {
        let before = &rest[..eq];
        if before.contains("{{if $metric.MigProfile}}") {
            section_on = with_mig;
        } else if before.contains("{{if $metric.Hostname }}") {
            section_on = with_host;
        }
        let name = before
            .rsplit([',', '}'])
            .next()
            .expect("a label name")
            .trim_start_matches('{');
        // `{{ $metric.UUID }}` is the label name "UUID" (gpu_collector.go).
        let name = if before.ends_with("{{ $metric.UUID }}") {
            "UUID"
        } else {
            name
        };
        if section_on {
            names.push(name.to_owned());
        }
        rest = &rest[eq + 4..];
        rest = &rest[rest.find("}}\"").expect("end of value") + 3..];
    }
    names
}

/// Checks that every DCGM GPU series of `text` carries dcgm-exporter's
/// labels, in its order, and returns how many series it checked.
fn check_gpu_series(text: &str, with_host: bool) -> usize {
    check_gpu_series_as(text, with_host, false)
}

/// [`check_gpu_series`], with dcgm-exporter's `-o` (`uuid` for `UUID`,
/// series named as the 1.x CSV's rows) when `old_namespace`.
fn check_gpu_series_as(text: &str, with_host: bool, old_namespace: bool) -> usize {
    let mut want = template_labels(false, with_host);
    if old_namespace {
        // gpu_collector.go: `uuid := "UUID"; if useOld { uuid = "uuid" }`.
        for label in &mut want {
            if label == "UUID" {
                "uuid".clone_into(label);
            }
        }
    }
    let names: BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("DCGM_FI_") || l.starts_with("dcgm_"))
        .filter_map(|l| l.split('{').next())
        .collect();
    let mut checked = 0;
    for name in names {
        for labels in label_names(text, name) {
            assert!(
                labels.len() >= want.len() && labels[..want.len()] == want[..],
                "{name}: labels {labels:?}, dcgm-exporter's template gives {want:?} first"
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn the_render_template_reads_as_expected() {
    assert_eq!(
        template_labels(false, true),
        [
            "gpu",
            "UUID",
            "pci_bus_id",
            "device",
            "modelName",
            "Hostname"
        ]
    );
    assert_eq!(
        template_labels(true, false),
        [
            "gpu",
            "UUID",
            "pci_bus_id",
            "device",
            "modelName",
            "GPU_I_PROFILE",
            "GPU_I_ID"
        ]
    );
}

#[test]
fn the_environment_only_daemonset() {
    let docs: Vec<serde_norway::Value> =
        serde_norway::Deserializer::from_str(&upstream("dcgm-exporter.yaml"))
            .map(|d| serde::Deserialize::deserialize(d).expect("YAML document"))
            .collect();
    let daemonset = docs
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("a DaemonSet");
    let service = docs
        .iter()
        .find(|d| d["kind"] == "Service")
        .expect("a Service");
    let container = &daemonset["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container["args"].is_null(),
        "configured by environment only"
    );
    let env = container_env(container);
    let service_port = service["spec"]["ports"][0]["port"].as_u64().expect("port");
    let container_port = container["ports"][0]["containerPort"]
        .as_u64()
        .expect("containerPort");

    // Read exactly as the container would read it: the address is the
    // Service's port.
    let cli = Cli::parse_from_env(["dcgm-exporter"], |name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.into())
    })
    .expect("the manifest's environment parses");
    assert_eq!(u64::from(port_of(&cli.address)), service_port);
    assert_eq!(service_port, container_port);
    assert!(cli.kubernetes.enabled, "DCGM_EXPORTER_KUBERNETES=true");

    // Run it, on a free loopback port instead of :9400 (the same variable
    // decides where it listens).
    let mut cmd = common::command(&scenario("h100x8.json"));
    for (name, value) in &env {
        let value = if name == "DCGM_EXPORTER_LISTEN" {
            "127.0.0.1:0"
        } else {
            value
        };
        cmd.env(name, value);
    }
    cmd.env("ALGALON_NVML_LIB", fake_nvml());
    let exporter = Exporter::spawn(cmd);
    let text = exporter.metrics();
    assert!(check_gpu_series(&text, true) >= 8 * 10, "{text}");
    assert!(
        text.contains("DCGM_FI_DEV_GPU_UTIL{gpu=\"7\""),
        "all 8 GPUs"
    );
    let log = exporter.log().join("\n");
    // No kubelet here: the GPU series come without pod labels, with one
    // warning naming the socket, and the exporter's gauge says so.
    assert_eq!(
        log.matches(
            "kubelet pod-resources API: /var/lib/kubelet/pod-resources/kubelet.sock does not exist"
        )
        .count(),
        1,
        "one warning:\n{log}"
    );
    assert!(text.contains("\nalgalon_kubernetes_up 0\n"), "{text}");
    assert!(!text.contains("pod=\""), "{text}");
    assert!(
        log.contains("dcgm-exporter variables in use: DCGM_EXPORTER_LISTEN (--address), DCGM_EXPORTER_KUBERNETES (--kubernetes)"),
        "{log}"
    );
}

/// A directory standing in for the image's `/etc/dcgm-exporter/`, holding
/// NVIDIA's three CSVs.
fn etc_dcgm_exporter() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let compat = workspace().join("../shared/compat");
    for (from, name) in [
        (compat.join("default-counters.csv"), "default-counters.csv"),
        (
            compat.join("dcp-metrics-included.csv"),
            "dcp-metrics-included.csv",
        ),
        (
            workspace().join("testing/upstream/dcgm-exporter/1.x-compatibility-metrics.csv"),
            "1.x-compatibility-metrics.csv",
        ),
    ] {
        std::fs::copy(&from, dir.path().join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
    dir
}

/// Starts the exporter with `args` as the Helm chart's template passes them
/// (its environment too: DCGM_EXPORTER_KUBERNETES=true, and the listen
/// address, here a free loopback port), `/etc/dcgm-exporter/` pointing at
/// `etc`.
fn start_like_the_chart(args: &[String], etc: &Path) -> Exporter {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("/etc/dcgm-exporter/", &format!("{}/", etc.display())))
        .collect();
    let mut cmd = common::command(&scenario("h100x8.json"));
    cmd.env("DCGM_EXPORTER_KUBERNETES", "true")
        .env("DCGM_EXPORTER_LISTEN", "127.0.0.1:0")
        .env("NODE_NAME", "gpu-node-1")
        .arg("--nvml-lib")
        .arg(fake_nvml())
        .args(&args);
    Exporter::spawn(cmd)
}

/// The chart's `arguments` and every "Example arguments" list in the
/// comments beside them.
fn chart_arguments() -> (Vec<String>, Vec<Vec<String>>) {
    let values = upstream("values.yaml");
    let parsed: serde_norway::Value = serde_norway::from_str(&values).expect("values.yaml");
    let default: Vec<String> = parsed["arguments"]
        .as_sequence()
        .expect("arguments")
        .iter()
        .map(|a| a.as_str().expect("string").to_owned())
        .collect();
    let examples = values
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let list = &l[l.find("[\"")?..=l.find("\"]")? + 1];
            Some(serde_json::from_str::<Vec<String>>(list).expect("a JSON list"))
        })
        .collect();
    (default, examples)
}

#[test]
fn the_helm_charts_arguments_and_its_examples() {
    let etc = etc_dcgm_exporter();
    let (default, examples) = chart_arguments();
    assert_eq!(default[0], "-f", "{default:?}");
    let exporter = start_like_the_chart(&default, etc.path());
    let text = exporter.metrics();
    assert!(check_gpu_series(&text, true) >= 8 * 10, "{text}");
    // The DaemonSet's NODE_NAME (downward API) is the host label's value,
    // as dcgm-exporter's hostname.go reads it.
    assert!(text.contains(r#",Hostname="gpu-node-1""#), "{text}");

    let example = |args: &[&str]| -> Vec<String> {
        let want: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        assert!(
            examples.contains(&want),
            "{want:?} is not among {examples:?}"
        );
        want
    };
    // -n: no Hostname label.
    let exporter = start_like_the_chart(&example(&["-n"]), etc.path());
    let text = exporter.metrics();
    assert!(check_gpu_series(&text, false) > 0, "{text}");
    assert!(!text.contains("Hostname="), "{text}");
    // -d g+i and -d g:0-3: GPUs, by dcgm-exporter's device syntax.
    let exporter = start_like_the_chart(&example(&["-d", "g+i"]), etc.path());
    assert_eq!(gpus(&exporter.metrics()), (0..8).collect::<Vec<_>>());
    let exporter = start_like_the_chart(&example(&["-d", "g:0-3"]), etc.path());
    assert_eq!(gpus(&exporter.metrics()), (0..4).collect::<Vec<_>>());
    // -r and -m: accepted, each named once at start with why it does nothing.
    for (args, needle) in [
        (
            &["-r", "host123:5555"][..],
            "-r/--remote-hostengine-info has no effect",
        ),
        (
            &["-m", "default:exporter-metrics-config-map"],
            "-m/--configmap-data has no effect",
        ),
    ] {
        let exporter = start_like_the_chart(&example(args), etc.path());
        assert!(check_gpu_series(&exporter.metrics(), true) > 0);
        let line = exporter.wait_log(needle, Duration::from_secs(5));
        assert!(line.contains("WARN"), "{line}");
        assert_eq!(
            exporter.log().iter().filter(|l| l.contains(needle)).count(),
            1
        );
    }
    assert_eq!(examples.len(), 5, "{examples:?}: a new example to try");
}

/// The `gpu` label values of DCGM_FI_DEV_GPU_UTIL.
fn gpus(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|l| l.strip_prefix("DCGM_FI_DEV_GPU_UTIL{gpu=\""))
        .filter_map(|rest| rest.split('"').next()?.parse().ok())
        .collect()
}

#[test]
fn each_of_nvidias_csvs_with_f() {
    let etc = etc_dcgm_exporter();
    for (file, expect) in [
        ("default-counters.csv", "DCGM_FI_DEV_FB_USED{"),
        ("dcp-metrics-included.csv", "DCGM_FI_PROF_GR_ENGINE_ACTIVE{"),
        // dcgm-exporter names a series as the CSV row spells it; with -o
        // its UUID label is dcgm-exporter 1.x's `uuid`.
        ("1.x-compatibility-metrics.csv", "dcgm_fi_prof_dram_active{"),
    ] {
        let path = etc.path().join(file);
        let old = file.starts_with("1.x");
        let mut args = vec!["-c", "200", "-f", path.to_str().expect("utf-8")];
        if old {
            args.push("-o");
        }
        let exporter = Exporter::start("h100x8.json", &args);
        // Profiling rates need two samples.
        let text = common::wait_for(Duration::from_secs(10), expect, || {
            Some(exporter.metrics()).filter(|t| t.contains(expect))
        });
        assert!(check_gpu_series_as(&text, true, old) > 0, "{file}");
        if old {
            assert!(text.contains("# TYPE dcgm_sm_clock gauge"), "{text}");
            assert!(!text.contains("DCGM_FI_DEV_SM_CLOCK"), "{text}");
        }
        // dcgm-exporter's XID labels follow the CSV's label fields.
        let xid = text
            .lines()
            .find(|l| l.starts_with("DCGM_FI_DEV_XID_ERRORS{") || l.starts_with("dcgm_xid_errors{"))
            .unwrap_or_else(|| panic!("{file}: no XID series in {text}"));
        assert!(
            xid.ends_with(r#",err_code="0",err_msg="No Error"} 0"#),
            "{file}: {xid}"
        );
        let log = exporter.log().join("\n");
        assert!(!log.contains("ERROR"), "{file}: {log}");
        // /api/v1/fields lists what is served and what is not, with why.
        let fields: serde_json::Value =
            serde_json::from_str(&exporter.get("/api/v1/fields").text()).expect("JSON");
        assert!(
            fields["exported"].as_array().is_some_and(|e| !e.is_empty()),
            "{fields}"
        );
        for skipped in fields["not_exported"].as_array().expect("a list") {
            assert!(
                skipped["reason"].as_str().is_some_and(|r| !r.is_empty())
                    && skipped["line"].as_u64().is_some(),
                "{file}: {skipped}"
            );
        }
        if file.starts_with("1.x") {
            // The file lists the PCIe byte counters twice.
            assert!(
                log.contains(
                    "dcgm_fi_prof_pcie_tx_bytes is not exported: line 18 already names this field"
                ),
                "{log}"
            );
        }
    }
}

#[test]
fn bad_input_stays_strict() {
    let etc = etc_dcgm_exporter();
    // The parser's cases are unit tests in cli.rs; here, that the binary
    // turns a bad option, variable or file into one line and a failed exit.
    for (args, env, needle) in [
        (
            &["-c", "abc"][..],
            &[][..],
            "invalid value 'abc' for '--collect-interval <MS>'",
        ),
        (&["-d", "g:9-2"], &[], "device range \"9-2\" runs backwards"),
        (
            &["-f", "/nonexistent/counters.csv"],
            &[],
            "/nonexistent/counters.csv",
        ),
        (
            &["-m", "exporter-metrics-config-map"],
            &[("DCGM_EXPORTER_KUBERNETES", "yes please")],
            "NAMESPACE:NAME",
        ),
        (
            &[],
            &[("DCGM_EXPORTER_KUBERNETES", "yes please")],
            "DCGM_EXPORTER_KUBERNETES=\"yes please\"",
        ),
    ] {
        let mut cmd = common::command(&scenario("h100x8.json"));
        cmd.arg("--nvml-lib")
            .arg(fake_nvml())
            .args(["-a", "127.0.0.1:0"])
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (status, lines) = run_to_failure(cmd);
        assert!(!status.success(), "{args:?} {env:?} must fail");
        assert_eq!(lines.len(), 1, "{args:?} {env:?}: one line, got {lines:#?}");
        assert!(lines[0].starts_with("algalon-exporter: "), "{lines:?}");
        assert!(lines[0].contains(needle), "{args:?} {env:?}: {lines:?}");
    }
    // A CSV without a row (an emptied ConfigMap, say) exports nothing: an error.
    let empty = etc.path().join("empty.csv");
    std::fs::write(
        &empty,
        "# DCGM FIELD, Prometheus metric type, help message\n\n",
    )
    .expect("write");
    let mut cmd = common::command(&scenario("h100x8.json"));
    cmd.arg("--nvml-lib")
        .arg(fake_nvml())
        .args(["-a", "127.0.0.1:0", "-f"])
        .arg(&empty);
    let (status, lines) = run_to_failure(cmd);
    assert_eq!(status.code(), Some(1));
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains(&format!("{}: no field to export", empty.display())),
        "{lines:?}"
    );

    // A CSV's bad rows are reported together, one line each.
    let csv = etc.path().join("bad.csv");
    std::fs::write(
        &csv,
        "DCGM_FI_DEV_GPU_UTIL, gauge, ok\nDCGM_FI_DEV_GPU_TMP, gauge, typo\n\
         DCGM_FI_DEV_FB_USED, gaugee, typo\n",
    )
    .expect("write");
    let mut cmd = common::command(&scenario("h100x8.json"));
    cmd.arg("--nvml-lib")
        .arg(fake_nvml())
        .args(["-a", "127.0.0.1:0", "-f"])
        .arg(&csv);
    let (status, lines) = run_to_failure(cmd);
    assert_eq!(status.code(), Some(1));
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].contains(&format!("{}:2: unknown DCGM field", csv.display())),
        "{lines:?}"
    );
    assert!(
        lines[0].contains("did you mean DCGM_FI_DEV_GPU_TEMP?"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains(&format!("{}:3: unknown Prometheus type", csv.display())),
        "{lines:?}"
    );
}

/// dcgm-exporter 4.x's series options together, as a Slurm node with a
/// Kubernetes-style NODE_NAME would run them: the XID labels, the
/// lowercase host label from NODE_NAME, dashes in model names, HPC job
/// files and the windowed XID and clock-event counts.
#[test]
fn series_options_render_as_dcgm_exporter_renders_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("counters.csv");
    std::fs::write(
        &csv,
        "DCGM_FI_DEV_GPU_UTIL, gauge, util\n\
         DCGM_FI_DEV_XID_ERRORS, gauge, last XID\n\
         DCGM_EXP_XID_ERRORS_COUNT, gauge, XIDs in the window\n\
         DCGM_EXP_CLOCK_EVENTS_COUNT, gauge, clock events in the window\n",
    )
    .expect("write CSV");
    let jobs = dir.path().join("jobs");
    std::fs::create_dir(&jobs).expect("mkdir");
    std::fs::write(jobs.join("3"), "slurm-42\n").expect("job file");
    let mut cmd = common::command(&scenario("h100x8.json"));
    // At t=95 GPU 3 has had XID 94 (t=60) and GPU 0 is power-capped.
    cmd.env("ALGALON_FAKE_NVML_FROZEN_TIME", "95")
        .env("NODE_NAME", "node-7")
        .arg("--nvml-lib")
        .arg(fake_nvml())
        .args(["-a", "127.0.0.1:0", "-c", "200", "-f"])
        .arg(&csv)
        .args([
            "-x",
            "60000",
            "--clock-events-count-window-size",
            "1000",
            "--hostname-label",
            "hostname",
            "-rbmn",
            "--hpc-job-mapping-dir",
        ])
        .arg(&jobs);
    let exporter = Exporter::spawn(cmd);
    let id3 = r#"gpu="3",UUID="GPU-"#;
    let text = common::wait_for(Duration::from_secs(10), "XID 94 counted", || {
        Some(exporter.metrics()).filter(|t| {
            t.lines()
                .any(|l| l.starts_with("DCGM_EXP_XID_ERRORS_COUNT{") && l.contains(r#"xid="94""#))
        })
    });
    let line = |name: &str, needle: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(needle))
            .unwrap_or_else(|| panic!("no {name} with {needle} in\n{text}"))
            .to_owned()
    };
    let xid = line("DCGM_FI_DEV_XID_ERRORS", id3);
    assert!(
        xid.contains(r#",modelName="NVIDIA-H100-80GB-HBM3",hostname="node-7",err_code="94",err_msg="Contained ECC error",hpc_job="slurm-42"} 94"#),
        "{xid}"
    );
    let count = line("DCGM_EXP_XID_ERRORS_COUNT", id3);
    assert!(
        count.ends_with(
            r#"hostname="node-7",window_size_in_ms="60000",xid="94",hpc_job="slurm-42"} 1"#
        ),
        "{count}"
    );
    let quiet = line("DCGM_EXP_XID_ERRORS_COUNT", r#"gpu="0""#);
    assert!(
        quiet.ends_with(r#"hostname="node-7",window_size_in_ms="60000"} 0"#),
        "{quiet}"
    );
    let clock = line("DCGM_EXP_CLOCK_EVENTS_COUNT", r#"gpu="0""#);
    assert!(
        clock.contains(r#",clock_event="power_cap",window_size_in_ms="1000"} "#),
        "{clock}"
    );
    let n: u64 = clock
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a count");
    // Samples every 200 ms in a 1000 ms window: at most 6 of them.
    assert!((1..=6).contains(&n), "{clock}");
    assert!(!text.contains("Hostname="), "{text}");
    // The two GPU series of GPU 3 carry its job; GPU 0's do not.
    assert!(line("DCGM_FI_DEV_GPU_UTIL", id3).contains(r#"hpc_job="slurm-42""#));
    assert!(!line("DCGM_FI_DEV_GPU_UTIL", r#"gpu="0""#).contains("hpc_job"));
}

/// `--web-systemd-socket`: the exporter serves on the socket systemd passes
/// (here handed over as systemd does: fd 3, LISTEN_FDS=1, LISTEN_PID = the
/// exporter's pid, by a Python stand-in that execs it) and binds nothing of
/// its own; without a socket it fails at start with one line.
#[test]
fn systemd_socket_activation() {
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c")
        .arg(
            "import os, socket, sys\n\
             s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(16)\n\
             if s.fileno() != 3: os.dup2(s.fileno(), 3)\n\
             os.set_inheritable(3, True)\n\
             os.environ['LISTEN_FDS'] = '1'\n\
             os.environ['LISTEN_PID'] = str(os.getpid())\n\
             os.execv(sys.argv[1], sys.argv[1:])\n",
        )
        .arg(common::BIN)
        .arg("--nvml-lib")
        .arg(fake_nvml())
        .args(["--web-systemd-socket", "-a", "127.0.0.1:1"]);
    for var in algalon_exporter::compat::all_variables() {
        cmd.env_remove(var);
    }
    cmd.env("ALGALON_FAKE_NVML_SCENARIO", scenario("h100x8.json"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let exporter = Exporter::spawn(cmd);
    assert_ne!(exporter.addr.port(), 1, "--address is not bound");
    assert!(exporter.metrics().contains("DCGM_FI_DEV_GPU_UTIL{"));

    let mut cmd = common::command(&scenario("h100x8.json"));
    cmd.env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1")
        .arg("--nvml-lib")
        .arg(fake_nvml())
        .arg("--web-systemd-socket");
    let (status, lines) = run_to_failure(cmd);
    assert!(!status.success());
    let text = lines.join("\n");
    assert!(
        text.contains("--web-systemd-socket: no socket was passed"),
        "{text}"
    );
}

/// A SIGHUP that adds dcgm-exporter's windowed XID count to the CSV serves
/// it at once, with the XIDs the running sampler has already seen.
#[test]
fn a_reload_that_adds_the_xid_count_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("counters.csv");
    std::fs::write(&csv, "DCGM_FI_DEV_XID_ERRORS, gauge, last XID\n").expect("write");
    let mut cmd = common::command(&scenario("h100x8.json"));
    // At t=95 GPU 3 has had XID 94 (t=60).
    cmd.env("ALGALON_FAKE_NVML_FROZEN_TIME", "95")
        .arg("--nvml-lib")
        .arg(fake_nvml())
        .args(["-a", "127.0.0.1:0", "-c", "200", "-f"])
        .arg(&csv);
    let exporter = Exporter::spawn(cmd);
    common::wait_for(Duration::from_secs(10), "XID 94", || {
        Some(exporter.metrics()).filter(|t| t.contains(r#"err_code="94""#))
    });
    assert!(!exporter.metrics().contains("DCGM_EXP_XID_ERRORS_COUNT"));
    std::fs::write(
        &csv,
        "DCGM_FI_DEV_XID_ERRORS, gauge, last XID\n\
         DCGM_EXP_XID_ERRORS_COUNT, gauge, XIDs in the window\n",
    )
    .expect("rewrite");
    exporter.signal("HUP");
    let text = common::wait_for(Duration::from_secs(10), "the count series", || {
        Some(exporter.metrics()).filter(|t| t.contains("DCGM_EXP_XID_ERRORS_COUNT{"))
    });
    let gpu3 = text
        .lines()
        .find(|l| l.starts_with(r#"DCGM_EXP_XID_ERRORS_COUNT{gpu="3""#))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        gpu3.ends_with(r#",window_size_in_ms="300000",xid="94"} 1"#),
        "{gpu3}"
    );
}
