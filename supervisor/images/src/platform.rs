//! Platforms (`os/arch[/variant]`) and which manifests of a multi-platform index an import takes.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A platform as written on the command line: `linux/amd64`, `linux/arm64/v8`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// Which manifests of an index to import and unpack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PlatformSelector {
    /// The host's platform (the default).
    #[default]
    Host,
    /// Exactly this platform.
    Only(Platform),
    /// Every platform the index lists (attestation manifests, `unknown/unknown`, excepted).
    All,
}

impl Platform {
    /// The platform this process runs on, in Go's names (`amd64`, not `x86_64`).
    pub fn host() -> Self {
        Self {
            os: oci_spec::image::Os::default().to_string(),
            architecture: oci_spec::image::Arch::default().to_string(),
            variant: None,
        }
    }

    /// Whether an index entry's platform satisfies this one. A variant is compared only when
    /// this one names it.
    pub(crate) fn matches(&self, other: &oci_spec::image::Platform) -> bool {
        self.os == other.os().to_string()
            && self.architecture == other.architecture().to_string()
            && (self.variant.is_none() || self.variant.as_deref() == other.variant().as_deref())
    }

    pub(crate) fn from_oci(p: &oci_spec::image::Platform) -> Self {
        Self {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone(),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidName {
            what: "platform",
            value: s.to_string(),
            reason: "expected os/arch or os/arch/variant",
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(invalid());
        }
        match parts[..] {
            [os, arch] => Ok(Self {
                os: os.into(),
                architecture: arch.into(),
                variant: None,
            }),
            [os, arch, variant] => Ok(Self {
                os: os.into(),
                architecture: arch.into(),
                variant: Some(variant.into()),
            }),
            _ => Err(invalid()),
        }
    }
}
