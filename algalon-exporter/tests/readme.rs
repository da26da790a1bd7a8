//! README.md's "Coming from dcgm-exporter" table is the option table's, not
//! a hand-kept copy.

use algalon_exporter::compat::markdown_table;

#[test]
fn readme_dcgm_options_table_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let begin = "<!-- dcgm-options:begin -->\n";
    let end = "<!-- dcgm-options:end -->";
    let start = readme
        .find(begin)
        .expect("README has <!-- dcgm-options:begin -->")
        + begin.len();
    let stop = readme[start..]
        .find(end)
        .expect("README has <!-- dcgm-options:end -->")
        + start;
    assert_eq!(
        &readme[start..stop],
        markdown_table(),
        "README.md's dcgm-exporter table is stale: replace it with the output of `make options-doc`"
    );
}
