use std::process::ExitCode;

#[lichtara::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    ExitCode::SUCCESS
}
