//! Prints the Markdown table of Algalon's own `algalon_*` series (README.md
//! embeds it between `<!-- series:begin -->` and `<!-- series:end -->`).

fn main() {
    print!("{}", algalon_core::series::markdown_table());
}
