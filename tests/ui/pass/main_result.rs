// `?` inside main works with the error type the signature names.

#[lichtara::main(timeout = "20s")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = "42".parse()?;
    assert_eq!(n, 42);
    Ok(())
}
