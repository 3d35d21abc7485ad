//! The README's "Testing your shutdown logic", as a test: a resource's
//! cleanup checked in-process, on a paused clock, with a SIGTERM trigger.

#[lichtara::cleanup(order = 2, timeout = "3s")]
struct Database {
    url: String,
}

impl lichtara::Cleanup for Database {
    async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
        assert!(self.url.starts_with("postgres://"));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn the_database_is_closed_on_sigterm() {
    let report = lichtara::testing::Run::new()
        .trigger(lichtara::Trigger::Signal {
            name: "SIGTERM",
            number: 15,
        })
        .run(async {
            let _db = lichtara::manage(Database {
                url: "postgres://test".into(),
            });
            lichtara::signalled().await;
        })
        .await;
    assert_eq!(report.exit_code(), 0, "{report}");
    let db = report
        .hooks()
        .iter()
        .find(|h| h.name().ends_with("Database"))
        .unwrap();
    assert_eq!(db.detail(), Some("1 instance"));
}
