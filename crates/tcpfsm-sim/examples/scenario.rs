//! Runs a built-in scenario and prints it, without the CLI:
//! `cargo run -p tcpfsm-sim --example scenario -- client-close|FILE.tcpfsm [ascii|json|svg] [seed]`.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map(String::as_str).unwrap_or("handshake");
    let format = args.get(2).map(String::as_str).unwrap_or("ascii");
    let seed = args.get(3).and_then(|s| s.parse().ok());
    // A path ending in .tcpfsm is a script file; anything else names a built-in.
    let run = if name.ends_with(".tcpfsm") {
        match std::fs::read_to_string(name) {
            Ok(src) => Some(tcpfsm_sim::run_source(name, &src, seed)),
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(2);
            }
        }
    } else {
        tcpfsm_sim::run_builtin(name, seed)
    };
    let outcome = match run {
        None => {
            eprintln!("unknown scenario {name}");
            std::process::exit(2);
        }
        Some(Err(e)) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
        Some(Ok(o)) => o,
    };
    let opts = tcpfsm_sim::render::Options::default();
    match format {
        "json" => print!("{}", tcpfsm_sim::render::json(&outcome.trace)),
        "svg" => print!("{}", tcpfsm_sim::render::svg(&outcome.trace, &opts)),
        _ => print!("{}", tcpfsm_sim::render::ascii(&outcome.trace, &opts)),
    }
    for f in &outcome.failures {
        eprintln!("FAILED: {f}");
    }
}
