#[lichtara::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    std::fs::metadata(".")?;
    Ok(())
}
