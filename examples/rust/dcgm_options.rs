//! Prints the Markdown table of dcgm-exporter's options and variables and
//! what Algalon does with each (README.md embeds it between
//! `<!-- dcgm-options:begin -->` and `<!-- dcgm-options:end -->`).

fn main() {
    print!("{}", algalon_exporter::compat::markdown_table());
}
