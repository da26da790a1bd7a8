//! Renders every exposition seed for the Python round-trip test:
//! `render_seeds SEED_DIR OUT_DIR` writes, per seed `NAME`,
//! `NAME.snapshot.prom`, `NAME.snapshot.om`, `NAME.jobs.prom`,
//! `NAME.jobs.om` and `NAME.expected.json` (the values that went in).

use std::path::PathBuf;
use std::process::ExitCode;

use algalon_fuzz_support::encoding::{Input, render};

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [seeds, out] = args.as_slice() else {
        eprintln!("usage: render_seeds SEED_DIR OUT_DIR");
        return ExitCode::from(2);
    };
    match run(seeds, out) {
        Ok(n) => {
            println!(
                "rendered {n} seeds from {} into {}",
                seeds.display(),
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("render_seeds: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(seeds: &PathBuf, out: &PathBuf) -> Result<usize, String> {
    let read_dir = std::fs::read_dir(seeds).map_err(|e| format!("{}: {e}", seeds.display()))?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut n = 0;
    for entry in read_dir {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: not a UTF-8 file name", path.display()))?
            .to_owned();
        let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let input = Input::decode(&data);
        let r = render(&input);
        let expected =
            serde_json::to_string_pretty(&input.expected_json()).map_err(|e| e.to_string())?;
        for (suffix, text) in [
            ("snapshot.prom", &r.snapshot_text),
            ("snapshot.om", &r.snapshot_openmetrics),
            ("jobs.prom", &r.jobs_text),
            ("jobs.om", &r.jobs_openmetrics),
            ("expected.json", &expected),
        ] {
            let file = out.join(format!("{name}.{suffix}"));
            std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
        }
        n += 1;
    }
    Ok(n)
}
