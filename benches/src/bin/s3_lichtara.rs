//! S3 with lichtara: one hook never finishes; the global deadline is 1 s.

#[lichtara::cleanup]
async fn never_finishes() {
    std::future::pending::<()>().await;
}

#[lichtara::main(timeout = "1s")]
async fn main() {
    println!("READY");
    lichtara::signalled().await;
}
