//! README.md's generated tables are what the code prints, not hand-kept
//! copies: the metric list (`make metrics-doc`, the core's catalog), the
//! table of Algalon's own series (`make series-doc`, the core's series
//! table) and the table of dcgm-exporter's options and variables
//! (`make options-doc`, the exporter's option table).

use algalon_core::CollectorConfig;
use algalon_core::catalog::markdown_table;

/// README.md's text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
fn section(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let begin = format!("<!-- {name}:begin -->\n");
    let end = format!("<!-- {name}:end -->");
    let start = readme
        .find(&begin)
        .unwrap_or_else(|| panic!("README has no {begin}"))
        + begin.len();
    let stop = readme[start..]
        .find(&end)
        .unwrap_or_else(|| panic!("README has no {end}"))
        + start;
    readme[start..stop].to_owned()
}

#[test]
fn readme_metric_table_matches_the_catalog() {
    let defaults: Vec<_> = CollectorConfig::default().fields().collect();
    assert_eq!(
        section("metrics"),
        markdown_table(&defaults),
        "README.md's metric table is stale: replace it with the output of `make metrics-doc`"
    );
}

#[test]
fn readme_series_table_matches_the_series_table() {
    assert_eq!(
        section("series"),
        algalon_core::series::markdown_table(),
        "README.md's table of own series is stale: replace it with the output of `make series-doc`"
    );
}

#[test]
fn readme_dcgm_options_table_matches_the_code() {
    assert_eq!(
        section("dcgm-options"),
        algalon_exporter::compat::markdown_table(),
        "README.md's dcgm-exporter table is stale: replace it with the output of `make options-doc`"
    );
}
