//! [`Secret`]: a setting that must never be shown — the Keystone service password today, S3
//! secret keys and database passwords later.
//!
//! Its value is readable only through [`Secret::expose`], which the code that sends it (and
//! nothing else) calls. Everything else — `Debug`, `Display`, `Serialize` (so `glint
//! check-config`), `tracing` fields, error messages built with `format!` — sees `***`.
//! How a secret can be given (the key itself, `<key>_file`, a `GLINT_*` variable) is the
//! loader's business (`config::load`): it recognises secrets by type, so a new secret setting
//! needs nothing but this type.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What every secret is shown as.
pub const REDACTED: &str = "***";

/// The name a secret serializes under (a newtype struct), by which `config::schema` knows a
/// setting is a secret. Serializers that do not care about names (TOML, JSON) see only
/// [`REDACTED`].
pub(crate) const SECRET_TYPE_NAME: &str = "glint::Secret";

/// A secret setting: shown as `***` everywhere, read with [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends it (never for logs or messages).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no value was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(SECRET_TYPE_NAME, REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        deserializer.deserialize_str(SecretVisitor)
    }
}

/// Accepts a string. Anything else is refused with a message that does not repeat the value
/// (serde's default `invalid type` message would quote it).
struct SecretVisitor;

impl SecretVisitor {
    fn refuse<E: de::Error>(what: &str) -> Result<Secret, E> {
        Err(E::custom(format!(
            "a secret must be a string, not {what} (the value is not shown)"
        )))
    }
}

impl Visitor<'_> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Secret, E> {
        Ok(Secret::new(value))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Secret, E> {
        Ok(Secret(value))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
        Self::refuse("a boolean")
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
        Self::refuse("a number")
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
        Self::refuse("a number")
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
        Self::refuse("a number")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Holder {
        password: Secret,
    }

    #[test]
    fn redacted_in_debug_display_and_serialize() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "hunter2");
        let holder = Holder { password: s };
        assert_eq!(format!("{holder:?}"), "Holder { password: *** }");
        let toml = toml::to_string(&holder).unwrap();
        assert_eq!(toml.trim(), "password = \"***\"");
        assert!(!serde_json::to_string(&holder).unwrap().contains("hunter2"));
    }

    #[test]
    fn a_wrong_type_is_refused_without_repeating_the_value() {
        let err = toml::from_str::<Holder>("password = 271828").unwrap_err();
        assert!(err.message().contains("a secret must be a string"), "{err}");
        assert!(!err.message().contains("271828"), "{err}");
        let ok: Holder = toml::from_str("password = \"x\"").unwrap();
        assert_eq!(ok.password.expose(), "x");
    }
}
