//! Names that end up in paths: checked with runc's rule before anything touches the filesystem.

use std::fmt;

use crate::RuntimeError;

/// runc's limit on a container id.
pub const MAX_LEN: usize = 128;

/// `^[A-Za-z0-9][A-Za-z0-9_.-]*$`, at most [`MAX_LEN`] characters: runc's rule, which also keeps
/// `..` and `/` out of every path built from the name.
fn validate(what: &'static str, value: &str) -> Result<(), RuntimeError> {
    let invalid = |reason| RuntimeError::InvalidName {
        what,
        value: value.to_string(),
        reason,
    };
    let mut chars = value.chars();
    match chars.next() {
        None => return Err(invalid("must not be empty")),
        Some(c) if !c.is_ascii_alphanumeric() => {
            return Err(invalid("must start with a letter or a digit"))
        }
        Some(_) => {}
    }
    if value.len() > MAX_LEN {
        return Err(invalid("must be at most 128 characters"));
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(invalid("may hold only letters, digits, '_', '.' and '-'"));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: &str) -> Result<Self, RuntimeError> {
                validate($what, value)?;
                Ok($name(value.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A container id, unique within its namespace.
    ContainerId,
    "container id"
);
name_type!(
    /// A namespace: its containers have their own runc root and state directory.
    Namespace,
    "namespace"
);
name_type!(
    /// A checkpoint's name: the directory under `<bundle>/checkpoints/` that holds it.
    CheckpointName,
    "checkpoint name"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_runc_ids() {
        for ok in ["a", "web-1", "A.b_c-9", "0", &"x".repeat(128)] {
            assert!(ContainerId::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_what_could_escape_a_path() {
        for bad in [
            "",
            "../x",
            "..",
            ".x",
            "a/b",
            "-a",
            "_a",
            "a b",
            "é",
            &"x".repeat(129),
            "a\0",
        ] {
            let err = ContainerId::new(bad).unwrap_err();
            assert!(err.to_string().starts_with("invalid container id"), "{err}");
        }
        assert!(Namespace::new("../etc")
            .unwrap_err()
            .to_string()
            .starts_with("invalid namespace"));
        for bad in ["..", "a/b", "../c1", ""] {
            let err = CheckpointName::new(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("invalid checkpoint name"),
                "{err}"
            );
        }
    }
}
