//! The cloud's top-level modules import each other in one direction, exactly as the table in
//! docs/ARCHITECTURE.md ("Module layering") states.

#[test]
fn modules_form_the_stated_dag() {
    fieldlink_testkit::layering::assert_crate_matches(
        env!("CARGO_MANIFEST_DIR"),
        "### `fieldlink-cloud` (`cloud/src/`)",
    );
}
