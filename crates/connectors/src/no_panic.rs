//! A guard around third-party parsers of outside bytes that panic instead of returning an
//! error: mysql_common's binlog parser (a cut event, an event shorter than its checksum) and
//! apache-avro's schema parser (`Name::parse` unwraps an invalid name: found by the
//! `registry_schema` fuzz target with `{"type":"record","name":"9n",…}` reached through a union
//! branch). A registry answer, a registration request or a damaged file must give an error,
//! never a crash, so those calls run under [`no_panic`] (the workspace keeps the default
//! `panic = "unwind"`).

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f`, turning a panic into an error naming `what`.
pub fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("malformed input");
        format!("{what}: the parser failed on malformed input ({why})")
    })
}

/// `apache_avro::Schema::parse_str`, never panicking.
pub fn avro_schema_from_str(text: &str) -> Result<apache_avro::Schema, String> {
    no_panic("an Avro schema", || apache_avro::Schema::parse_str(text))?.map_err(|e| e.to_string())
}

/// `apache_avro::Schema::parse`, never panicking.
pub fn avro_schema_from_json(json: &serde_json::Value) -> Result<apache_avro::Schema, String> {
    no_panic("an Avro schema", || apache_avro::Schema::parse(json))?.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_name_apache_avro_unwraps_is_an_error() {
        // The fuzz finding: apache-avro 0.21 panics on this instead of refusing it.
        let text =
            r#"{"type":"record","name":"9n","fields":[{"name":"next","ty(e":["null","n"]}]}"#;
        assert!(avro_schema_from_str(text).is_err());
        let e = no_panic("x", || -> u8 { panic!("boom") }).unwrap_err();
        assert!(e.contains("boom"), "{e}");
        assert!(avro_schema_from_str(r#"{"type":"long"}"#).is_ok());
    }
}
