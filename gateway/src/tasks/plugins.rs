//! The import plugins, as Glance's (`image_import_plugins`): `image_conversion` turns the
//! staged data into `[image_conversion] output_format` with `qemu-img convert`, and
//! `inject_image_metadata` sets `[inject_metadata_properties] inject` on images imported by
//! users without one of its `ignore_user_roles`. copy-image runs neither.
//!
//! The conversion follows Glance since its 2024 advisory (OSSN-0090): the staged file is first
//! judged by glint's format inspector against the declared `disk_format` (a mismatch, a qcow2
//! with a backing or data file, a disallowed VMDK are refused before qemu-img touches the
//! file); then `qemu-img info` must agree on the format and report no backing or data file;
//! only then `qemu-img convert -f <declared> -O <output_format>` runs. It runs on a thread of
//! its own (it blocks), with the converted file renamed over the staged one.

use std::io::Read;
use std::path::{Path, PathBuf};

use futures_channel::oneshot;

/// What a conversion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Converted {
    /// The image's new `disk_format`.
    pub disk_format: String,
    /// `qemu-img info`'s virtual size.
    pub virtual_size: Option<u64>,
}

/// Converts the staged file at `path`, declared `source`, to `target`, off the runtime.
/// `Ok(None)`: nothing to convert (already `target`, or an ISO).
pub(super) async fn convert(
    path: PathBuf,
    source: String,
    target: String,
    policy: formats::Policy,
) -> Result<Option<Converted>, String> {
    let (done, result) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("glint-convert".into())
        .spawn(move || {
            let _ = done.send(convert_blocking(&path, &source, &target, &policy));
        });
    if let Err(e) = spawned {
        return Err(format!("cannot start the conversion: {e}"));
    }
    result
        .await
        .map_err(|_| "the conversion stopped unexpectedly".to_owned())?
}

fn convert_blocking(
    path: &Path,
    source: &str,
    target: &str,
    policy: &formats::Policy,
) -> Result<Option<Converted>, String> {
    // 1. glint's inspector, over the whole file, against the declared format.
    let mut inspector = formats::Inspector::new(Some(source), policy);
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("cannot read the staged data: {e}"))?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| format!("cannot read the staged data: {e}"))?;
        if n == 0 {
            break;
        }
        inspector
            .feed(&buffer[..n])
            .map_err(|refusal| format!("Image format mismatch or unsafe image: {refusal}"))?;
    }
    let inspection = inspector.finish();
    if let Err(refusal) = inspection.verdict {
        return Err(format!("Image format mismatch or unsafe image: {refusal}"));
    }
    // Glance's plugin compares the detected format itself (a raw declaration would pass the
    // inspector's own check with any content): gpt is raw; an ISO is left as it is.
    let detected = match inspection.format {
        formats::Format::Gpt => formats::Format::Raw,
        other => other,
    };
    if detected == formats::Format::Iso {
        if source == "iso" {
            return Ok(None);
        }
        return Err("Image has disallowed configuration: an ISO declared otherwise".to_owned());
    }
    if detected.name() != source {
        return Err(format!(
            "Image format mismatch: declared {source}, inspection found {detected}"
        ));
    }
    // 2. qemu-img must agree.
    let info = std::process::Command::new("qemu-img")
        .args(["info", "-f", source, "--output=json"])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run qemu-img: {e}"))?;
    if !info.status.success() {
        return Err(format!(
            "qemu-img info failed: {}",
            String::from_utf8_lossy(&info.stderr).trim()
        ));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&info.stdout)
        .map_err(|e| format!("qemu-img info answered no JSON: {e}"))?;
    if metadata["format"].as_str() != Some(source) {
        return Err("Image metadata disagrees about format".to_owned());
    }
    if metadata.get("backing-filename").is_some() {
        return Err("QCOW images with backing files are not allowed".to_owned());
    }
    if !metadata["format-specific"]["data"]["data-file"].is_null() {
        return Err("QCOW images with data-file set are not allowed".to_owned());
    }
    let virtual_size = metadata["virtual-size"].as_u64();
    if source == target {
        return Ok(None);
    }
    // 3. Convert beside the staged file, then rename over it.
    let mut dest = path.as_os_str().to_owned();
    dest.push(format!(".{target}"));
    let dest = PathBuf::from(dest);
    let converted = std::process::Command::new("qemu-img")
        .args(["convert", "-f", source, "-O", target])
        .arg(path)
        .arg(&dest)
        .output()
        .map_err(|e| format!("cannot run qemu-img: {e}"))?;
    if !converted.status.success() {
        let _ = std::fs::remove_file(&dest);
        return Err(format!(
            "qemu-img convert failed: {}",
            String::from_utf8_lossy(&converted.stderr).trim()
        ));
    }
    std::fs::rename(&dest, path).map_err(|e| {
        let _ = std::fs::remove_file(&dest);
        format!("cannot replace the staged data: {e}")
    })?;
    Ok(Some(Converted {
        disk_format: target.to_owned(),
        virtual_size,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu_img() -> bool {
        std::process::Command::new("qemu-img")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    #[test]
    fn converts_qcow2_to_raw_and_refuses_a_mismatch() {
        if !qemu_img() {
            eprintln!("qemu-img missing: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image");
        let made = std::process::Command::new("qemu-img")
            .args(["create", "-f", "qcow2"])
            .arg(&path)
            .arg("1M")
            .output()
            .unwrap();
        assert!(made.status.success());
        let policy = formats::Policy::default();
        // Declared raw, but qcow2: refused before qemu-img converts anything.
        let mismatch = convert_blocking(&path, "raw", "raw", &policy).unwrap_err();
        assert!(mismatch.contains("mismatch"), "{mismatch}");
        let converted = convert_blocking(&path, "qcow2", "raw", &policy)
            .unwrap()
            .unwrap();
        assert_eq!(converted.disk_format, "raw");
        assert_eq!(converted.virtual_size, Some(1 << 20));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
        // Already the target format: nothing to do.
        assert_eq!(
            convert_blocking(&path, "raw", "raw", &policy).unwrap(),
            None
        );
    }
}
