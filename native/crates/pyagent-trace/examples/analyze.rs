//! Prints the report of a command's output: `cmd 2>&1 | cargo run -p pyagent-trace --example
//! analyze -- [USER_ROOT...]` (all of it read as stderr).

use std::io::Read as _;

fn main() {
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("reading stdin: {e}");
        std::process::exit(2);
    }
    let roots: Vec<String> = std::env::args().skip(1).collect();
    let roots: Vec<&str> = roots.iter().map(String::as_str).collect();
    let report = pyagent_trace::analyze("", &text, None, &roots);
    match serde_json::to_string_pretty(&report) {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("serialising: {e}");
            std::process::exit(1);
        }
    }
}
