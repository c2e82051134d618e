//! The exec helper of pyagent-sandbox; see `pyagent_sandbox::helper`. Not meant to be run by
//! hand: it expects a plan in its environment and a status pipe on stdin.

fn main() {
    pyagent_sandbox::helper::main_if_invoked();
    eprintln!(
        "pyagent-sandbox-exec is started by the pyagent daemon (first argument {})",
        pyagent_sandbox::HELPER_ARG
    );
    std::process::exit(2);
}
