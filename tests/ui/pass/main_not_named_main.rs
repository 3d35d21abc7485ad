// Like #[tokio::main], the attribute works on any function.

#[lichtara::main(crate = "lichtara", flavor = "current_thread")]
async fn run() -> Result<(), String> {
    Ok(())
}

fn main() {
    run().unwrap();
}
