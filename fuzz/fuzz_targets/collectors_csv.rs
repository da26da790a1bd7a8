#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| algalon_fuzz_support::check_collectors_csv(data));
