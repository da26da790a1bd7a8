//! The command line's tests: dcgm-exporter's forms, variables, defaults.

use super::*;
use crate::compat;

#[test]
fn devices_forms() {
    assert_eq!(parse_devices("f"), Ok(Devices::All));
    assert_eq!(parse_devices("all"), Ok(Devices::All));
    assert_eq!(parse_devices("g"), Ok(Devices::All));
    assert_eq!(
        parse_devices("g:0,2-4"),
        Ok(Devices::List(vec![
            "0".into(),
            "2".into(),
            "3".into(),
            "4".into()
        ]))
    );
    assert_eq!(
        parse_devices("1, GPU-5e2d-aa"),
        Ok(Devices::List(vec!["1".into(), "GPU-5e2d-aa".into()]))
    );
    assert_eq!(parse_devices("0,0"), Ok(Devices::List(vec!["0".into()])));
    assert!(parse_devices("3-1").is_err());
    assert!(parse_devices("0,,1").is_err());
    assert_eq!(parse_devices("i:0"), Ok(Devices::All));
    assert!(parse_devices("i:x").is_err());
    assert_eq!(parse_devices("g+i"), Ok(Devices::All));
    assert_eq!(
        parse_devices("g:1+i:0"),
        Ok(Devices::List(vec!["1".into()]))
    );
}

#[test]
fn staleness_threshold() {
    assert_eq!(
        default_stale_after(Duration::from_secs(5)),
        Duration::from_secs(15)
    );
    assert_eq!(
        default_stale_after(Duration::from_secs(1)),
        Duration::from_secs(11)
    );
    assert_eq!(
        default_stale_after(Duration::from_secs(30)),
        Duration::from_secs(90)
    );
}

#[test]
fn cli_is_well_formed() {
    command().debug_assert();
}

/// Parses `args` with only the variables in `env` set.
fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Cli, clap::Error> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let argv = std::iter::once("algalon-exporter").chain(args.iter().copied());
    Cli::parse_from_env(argv, move |name| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| OsString::from(v))
    })
}

fn ok(args: &[&str], env: &[(&str, &str)]) -> Cli {
    parse(args, env).unwrap_or_else(|e| panic!("{args:?} {env:?}: {}", one_line_error(&e)))
}

#[test]
fn defaults() {
    let cli = ok(&[], &[]);
    // dcgm-exporter's listen address; its interval is 30000 ms, Algalon
    // keeps 5000 ms so data is 5 s fresh.
    assert_eq!(cli.address, ":9400");
    assert_eq!(cli.collect_interval_ms, 5000);
    assert_eq!(cli.devices, Devices::All);
    assert!(!cli.no_hostname && !cli.processes && !cli.kubernetes.enabled);
    assert!(
        cli.no_effect.dump_compression,
        "dcgm-exporter's default is true"
    );
    assert_eq!(cli.xid_count_window_ms, 300_000);
    assert!(cli.given.is_empty(), "{:?}", cli.given);
}

#[test]
fn dcgm_exporter_variables_set_their_options() {
    let cli = ok(
        &[],
        &[
            ("DCGM_EXPORTER_LISTEN", ":9500"),
            ("DCGM_EXPORTER_INTERVAL", "1000"),
            ("DCGM_EXPORTER_KUBERNETES", "true"),
            ("DCGM_EXPORTER_DEVICES_STR", "g:0-1"),
            ("DCGM_EXPORTER_NO_HOSTNAME", "1"),
            (
                "DCGM_EXPORTER_COLLECTORS",
                "/etc/dcgm-exporter/dcp-metrics-included.csv",
            ),
            ("NVIDIA_RESOURCE_NAMES", "nvidia.com/a100,nvidia.com/a10"),
            ("DCGM_EXPORTER_DUMP_COMPRESSION", "false"),
            ("DCGM_EXPORTER_DEBUG", "t"),
        ],
    );
    assert_eq!(cli.address, ":9500");
    assert_eq!(cli.collect_interval_ms, 1000);
    assert!(cli.kubernetes.enabled && cli.no_hostname && cli.debug);
    assert_eq!(cli.log_level(), LogLevel::Debug);
    assert!(!cli.no_effect.dump_compression);
    assert_eq!(cli.devices, Devices::List(vec!["0".into(), "1".into()]));
    assert_eq!(
        cli.kubernetes.nvidia_resource_names,
        ["nvidia.com/a100", "nvidia.com/a10"]
    );
    let listen = cli
        .given
        .iter()
        .find(|g| g.long == "address")
        .expect("given");
    assert_eq!(listen.origin, compat::Origin::Env("DCGM_EXPORTER_LISTEN"));
}

#[test]
fn algalon_variables_win_and_the_command_line_wins_over_both() {
    let env = [
        ("ALGALON_ADDRESS", ":9600"),
        ("DCGM_EXPORTER_LISTEN", ":9500"),
        ("DCGM_EXPORTER_INTERVAL", "2000"),
        ("ALGALON_COLLECT_INTERVAL", ""),
    ];
    let cli = ok(&[], &env);
    assert_eq!(cli.address, ":9600");
    assert_eq!(cli.collect_interval_ms, 2000, "an empty variable is unset");
    let address = cli
        .given
        .iter()
        .find(|g| g.long == "address")
        .expect("given");
    assert_eq!(address.origin, compat::Origin::Env("ALGALON_ADDRESS"));
    assert_eq!(address.shadowed, Some("DCGM_EXPORTER_LISTEN"));

    let cli = ok(&["-a", ":9700", "-c", "300"], &env);
    assert_eq!(
        (cli.address.as_str(), cli.collect_interval_ms),
        (":9700", 300)
    );
    let address = cli
        .given
        .iter()
        .find(|g| g.long == "address")
        .expect("given");
    assert_eq!(address.origin, compat::Origin::CommandLine);
    assert_eq!(address.shadowed, Some("ALGALON_ADDRESS"));
}

#[test]
fn an_empty_variable_counts_as_unset() {
    let cli = ok(
        &[],
        &[("ALGALON_COLLECTORS", ""), ("DCGM_EXPORTER_KUBERNETES", "")],
    );
    assert_eq!(cli.collectors, None);
    assert!(!cli.kubernetes.enabled);
    assert!(cli.given.is_empty(), "{:?}", cli.given);
}

#[test]
fn go_style_options_and_booleans() {
    let cli = ok(
        &[
            "-collectors",
            "/x.csv",
            "-rbmn",
            "--kubernetes=false",
            "-no-hostname=true",
            "-dump-compression=false",
            "--debug",
            "-c=250",
        ],
        &[("DCGM_EXPORTER_KUBERNETES", "true")],
    );
    assert_eq!(
        cli.collectors.as_deref(),
        Some(std::path::Path::new("/x.csv"))
    );
    assert!(cli.replace_blanks_in_model_name && cli.no_hostname && cli.debug);
    assert!(!cli.kubernetes.enabled, "the command line's false wins");
    assert!(!cli.no_effect.dump_compression);
    assert_eq!(cli.collect_interval_ms, 250);
    // A value that looks like a Go-style option stays a value.
    let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
    let kept = args(&[
        "algalon-exporter",
        "-f",
        "-debug",
        "--address",
        "-collectors",
    ]);
    assert_eq!(args::go_style_args(&command(), kept.clone()), kept);
    let after_separator = args(&["algalon-exporter", "--", "-debug"]);
    assert_eq!(
        args::go_style_args(&command(), after_separator.clone()),
        after_separator
    );
}

#[test]
fn every_dcgm_exporter_option_parses() {
    for args in [
        &[
            "-k",
            "-o",
            "-n",
            "--fake-gpus",
            "--enable-dcgm-log",
            "--enable-pprof",
        ][..],
        &[
            "-r",
            "host123:5555",
            "-m",
            "default:exporter-metrics-config-map",
        ],
        &[
            "-p",
            "g:0,2-4",
            "-s",
            "i",
            "-x",
            "60000",
            "--clock-events-count-window-size",
            "1",
        ],
        &[
            "--dcgm-log-level",
            "VERB",
            "--dump-enabled",
            "--dump-directory",
            "/tmp/d",
        ],
        &[
            "--dump-retention",
            "0",
            "--dump-compression",
            "--disable-startup-validate",
        ],
        &[
            "--enable-gpu-bind-unbind-watch",
            "--gpu-bind-unbind-poll-interval",
            "2s",
        ],
        &["--web-systemd-socket", "--hpc-job-mapping-dir", "/run/jobs"],
        &[
            "--kubernetes-enable-pod-labels",
            "--kubernetes-enable-pod-uid",
        ],
        &[
            "--kubernetes-gpu-id-type",
            "device-name",
            "--kubernetes-virtual-gpus",
        ],
        &[
            "--kubernetes-pod-label-allowlist-regex",
            "^app$,team",
            "--kubernetes-enable-dra",
        ],
        &[
            "--pod-resources-kubelet-socket",
            "/k.sock",
            "--nvidia-resource-names",
            "a,b",
        ],
        &[
            "-d",
            "g+i",
            "--log-format",
            "json",
            "--web-config-file",
            "/w.yml",
        ],
        &["--hostname-label", "hostname", "-v"],
    ] {
        let cli = ok(args, &[]);
        assert!(!cli.given.is_empty() || args.contains(&"-v"), "{args:?}");
    }
}

#[test]
fn malformed_values_are_errors_naming_their_source() {
    for (args, env, needle) in [
        (&["-c", "abc"][..], &[][..], "--collect-interval"),
        (&["-d", "g:9-2"], &[], "runs backwards"),
        (&["-m", "default"], &[], "NAMESPACE:NAME"),
        (&["-p", "g:x"], &[], "\"x\" is not a number"),
        (&["--dcgm-log-level", "debug"], &[], "possible values"),
        (
            &["--kubernetes-gpu-id-type", "name"],
            &[],
            "possible values",
        ),
        (&["-x=-5"], &[], "--xid-count-window-size"),
        (
            &[],
            &[("DCGM_EXPORTER_INTERVAL", "abc")],
            "DCGM_EXPORTER_INTERVAL=\"abc\"",
        ),
        (
            &[],
            &[("DCGM_EXPORTER_KUBERNETES", "maybe")],
            "DCGM_EXPORTER_KUBERNETES",
        ),
        (&[], &[("ALGALON_DEVICES", "3-1")], "ALGALON_DEVICES"),
    ] {
        let err = parse(args, env).expect_err(needle);
        let line = one_line_error(&err);
        assert!(line.contains(needle), "{args:?} {env:?}: {line}");
        assert!(!line.contains('\n'), "{line}");
    }
}

#[test]
fn start_notes_name_options_without_effect() {
    use compat::Note;
    let cli = ok(
        &["-r", "host:5555", "-o", "--kubernetes-enable-pod-uid"],
        &[
            ("DCGM_EXPORTER_ENABLE_PPROF", "false"),
            ("DCGM_EXPORTER_USE_FAKE_GPUS", "true"),
        ],
    );
    let notes = compat::start_notes(&cli);
    let text = |n: &Note| match n {
        Note::Info(t) | Note::Warn(t) => t.clone(),
    };
    let all: Vec<String> = notes.iter().map(text).collect();
    let has = |needle: &str| all.iter().filter(|t| t.contains(needle)).count();
    assert_eq!(
        has("-r/--remote-hostengine-info has no effect"),
        1,
        "{all:#?}"
    );
    assert_eq!(has("--use-old-namespace"), 0, "implemented: {all:#?}");
    assert_eq!(
        has("DCGM_EXPORTER_USE_FAKE_GPUS (--fake-gpus) has no effect"),
        1
    );
    assert_eq!(has("fake NVML"), 1, "{all:#?}");
    assert_eq!(
        has("--enable-pprof has no effect"),
        0,
        "false is the default"
    );
    assert_eq!(
        has("without --kubernetes these have no effect"),
        1,
        "{all:#?}"
    );
    assert_eq!(has("pod, namespace and container labels"), 0);

    // --kubernetes works: no start-up note; DRA is not mapped yet.
    let cli = ok(&["-k"], &[]);
    assert!(compat::start_notes(&cli).is_empty());
    let cli = ok(&["-k", "--kubernetes-enable-dra"], &[]);
    let notes = compat::start_notes(&cli);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        matches!(&notes[0], Note::Warn(t) if t.contains("--kubernetes-enable-dra has no effect"))
    );
}

#[test]
fn mig_instance_parts_of_devices_select_instances() {
    use algalon_core::devices::InstanceSet;
    use compat::Note;
    let warned = |args: &[&str]| {
        let cli = ok(args, &[]);
        compat::start_notes(&cli)
            .iter()
            .filter(|n| matches!(n, Note::Warn(t) if t.contains("names MIG instances alone")))
            .count()
    };
    assert_eq!(warned(&["-d", "g+i"]), 0);
    assert_eq!(warned(&["-d", "i:0,1"]), 1);
    assert_eq!(warned(&["-d", "g:1+i:0"]), 0);
    assert_eq!(warned(&["-d", "f"]), 0);
    assert_eq!(warned(&[]), 0);
    assert_eq!(ok(&["-d", "g+i"], &[]).device_instances, InstanceSet::All);
    assert_eq!(
        ok(&["-d", "g:0+i:1,3"], &[]).device_instances,
        InstanceSet::List(vec![1, 3])
    );
    assert_eq!(ok(&["-d", "f"], &[]).device_instances, InstanceSet::None);
    assert_eq!(ok(&[], &[]).device_instances, InstanceSet::None);
    let cli = ok(&[], &[("DCGM_EXPORTER_DEVICES_STR", "i")]);
    assert_eq!(cli.devices, Devices::All);
    assert_eq!(cli.device_instances, InstanceSet::All);
    assert!(cli.device_instances_only);
}

#[test]
fn staleness_threshold_follows_the_interval() {
    let cli = ok(&["-c", "30000"], &[]);
    assert_eq!(cli.stale_after(), Duration::from_secs(90));
}
