// The Shutdown builder without #[lichtara::main].

use std::time::Duration;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(
        lichtara::Shutdown::new()
            .timeout(Duration::from_secs(5))
            .hook("unit", 0, None, || async {})
            .hook("io", 1, Some(Duration::from_secs(1)), || async {
                Ok::<(), std::io::Error>(())
            })
            .hook(String::from("anyhow"), 2, None, || async { anyhow::Ok(()) })
            .run(async { Ok::<(), String>(()) }),
    );
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.hooks().len(), 3);
}
