fn main() {
    // Looks scoped to `main`, but a hook is registered for the whole program.
    #[lichtara::cleanup]
    async fn flush() {}
}
