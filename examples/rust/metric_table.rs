//! Prints the Markdown table of every metric Algalon can export (README.md
//! embeds it between `<!-- metrics:begin -->` and `<!-- metrics:end -->`).

use algalon_core::CollectorConfig;
use algalon_core::catalog::markdown_table;

fn main() {
    let defaults: Vec<_> = CollectorConfig::default().fields().collect();
    print!("{}", markdown_table(&defaults));
}
