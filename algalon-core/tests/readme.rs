//! README.md's metric list is the catalog's, not a hand-kept copy.

use algalon_core::CollectorConfig;
use algalon_core::catalog::markdown_table;

#[test]
fn readme_metric_table_matches_the_catalog() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let begin = "<!-- metrics:begin -->\n";
    let end = "<!-- metrics:end -->";
    let start = readme
        .find(begin)
        .expect("README has <!-- metrics:begin -->")
        + begin.len();
    let stop = readme[start..]
        .find(end)
        .expect("README has <!-- metrics:end -->")
        + start;
    let defaults: Vec<_> = CollectorConfig::default().fields().collect();
    assert_eq!(
        &readme[start..stop],
        markdown_table(&defaults),
        "README.md's metric table is stale: replace it with the output of `make metrics-doc`"
    );
}
