#![no_main]

//! The exporter's web config parser (exporter-toolkit YAML: TLS, basic
//! auth, headers) never panics, and its errors name the file.

use std::path::Path;

use algalon_exporter::webconfig::WebConfig;
use libfuzzer_sys::fuzz_target;

const PATH: &str = "/nonexistent/algalon-fuzz/web.yml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Stay hermetic and fast: no `*_file` keys (the target would read
    // whatever file the input names; escapes could spell one) and no bcrypt
    // cost above 5 (a valid cost-16 hash takes seconds to check, by design).
    if text.contains("_file")
        || text.contains('\\')
        || text
            .split('$')
            .any(|part| part.parse::<u32>().is_ok_and(|c| c > 5))
    {
        return;
    }
    if let Err(e) = WebConfig::parse(text, Path::new(PATH)) {
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("web config {PATH}")),
            "error does not name the file: {msg:?}"
        );
    }
});
