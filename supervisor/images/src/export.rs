//! Exporting images as an OCI image layout archive: `oci-layout`, every blob the images keep
//! under `blobs/sha256/`, and `index.json` naming each image (`org.opencontainers.image.ref.name`
//! and `io.containerd.image.name`), so [`crate::ImageStore::import`], `skopeo` and `umoci` read
//! it back. Blobs are streamed from the store, never buffered whole.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;

use oci_spec::image::{Descriptor, ImageIndexBuilder, MediaType};

use crate::digest::Digest;
use crate::error::{io_err, Error, Result};
use crate::ImageStore;

pub(crate) fn export(
    store: &ImageStore,
    namespace: &str,
    names: &[&str],
    writer: impl Write,
) -> Result<()> {
    let mut manifests = Vec::new();
    let mut blobs = BTreeSet::new();
    for name in names {
        let record = store
            .meta
            .image(namespace, name)?
            .ok_or_else(|| Error::ImageNotFound {
                namespace: namespace.to_string(),
                name: name.to_string(),
            })?;
        let mut d = Descriptor::new(
            MediaType::from(record.target.media_type.as_str()),
            record.target.size,
            &record.target.digest,
        );
        d.set_annotations(Some(HashMap::from([
            (
                "org.opencontainers.image.ref.name".to_string(),
                name.to_string(),
            ),
            ("io.containerd.image.name".to_string(), name.to_string()),
        ])));
        manifests.push(d);
        blobs.extend(record.blobs);
    }
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .expect("every required index field is set");

    let out = std::path::PathBuf::from("<export stream>");
    let mut tar = tar::Builder::new(writer);
    let append = |tar: &mut tar::Builder<_>, path: &str, bytes: &[u8]| {
        let mut header = file_header(bytes.len() as u64);
        tar.append_data(&mut header, path, bytes)
            .map_err(io_err("write", &out))
    };
    append(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    for digest in &blobs {
        append_blob(store, &mut tar, digest)?;
    }
    let index = index.to_string().expect("an index serialises");
    append(&mut tar, "index.json", index.as_bytes())?;
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(io_err("write", &out))
}

fn append_blob(
    store: &ImageStore,
    tar: &mut tar::Builder<impl Write>,
    digest: &Digest,
) -> Result<()> {
    let size = store
        .content
        .size(digest)?
        .ok_or_else(|| Error::MissingBlob {
            digest: digest.clone(),
            referenced_by: "an exported image".to_string(),
        })?;
    let file = store.content.open_blob(digest)?;
    let mut header = file_header(size);
    tar.append_data(&mut header, format!("blobs/sha256/{}", digest.hex()), file)
        .map_err(io_err("export", store.content.path(digest)))
}

fn file_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header
}
