//! The cloud's top-level modules import each other in one direction, exactly as the table in
//! docs/ARCHITECTURE.md ("Module layering") states.

use std::path::Path;

#[test]
fn modules_form_the_stated_dag() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("../docs/ARCHITECTURE.md")).unwrap();
    if let Err(problems) = fieldlink_testkit::layering::check(
        &root.join("src"),
        &doc,
        "### `fieldlink-cloud` (`cloud/src/`)",
    ) {
        panic!("cloud/src against docs/ARCHITECTURE.md:\n{problems}");
    }
}
