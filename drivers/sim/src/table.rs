//! The four Modbus data tables: the drivers' own [`Table`], so a table the simulator serves is
//! the table a point map names.

pub use fieldlink_drivers::vocabulary::Table;
