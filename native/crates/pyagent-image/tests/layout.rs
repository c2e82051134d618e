//! Root file systems from real OCI layouts: built by umoci (Debian's, as native/image/build.py
//! uses), and by hand for what umoci never writes (opaque whiteouts, hostile paths).

use std::path::{Path, PathBuf};
use std::process::Command;

use pyagent_image::{ImageError, ImageStore};
use sha2::{Digest, Sha256};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "pyagent-image-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn umoci(args: &[&str]) {
    let out = Command::new("umoci")
        .args(args)
        .output()
        .expect("umoci is not installed: run .ci/install-sandbox.sh (apt-get install umoci)");
    assert!(
        out.status.success(),
        "umoci {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rootless() -> Vec<&'static str> {
    if rustix_is_root() {
        vec![]
    } else {
        vec!["--rootless"]
    }
}

fn rustix_is_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0"))
            .unwrap_or(false)
}

/// `base`: busybox, /etc/marker, /etc/gone, /d/old. `v2`: the same bundle with /etc/gone and
/// /d/old deleted and /d/new added, a second layer with umoci's whiteouts.
fn umoci_layout(dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    let bundle = dir.join("bundle");
    let l = layout.to_str().unwrap();
    let b = bundle.to_str().unwrap();
    umoci(&["init", "--layout", l]);
    umoci(&["new", "--image", &format!("{l}:base")]);
    let base = format!("{l}:base");
    let mut unpack = vec!["unpack"];
    unpack.extend(rootless());
    unpack.extend(["--image", base.as_str(), b]);
    umoci(&unpack);
    let rootfs = bundle.join("rootfs");
    for d in ["bin", "etc", "d"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("/bin/busybox: run .ci/install-sandbox.sh (apt-get install busybox-static)");
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    std::fs::write(rootfs.join("etc/marker"), "from the image\n").unwrap();
    std::fs::write(rootfs.join("etc/gone"), "deleted in v2\n").unwrap();
    std::fs::write(rootfs.join("d/old"), "old\n").unwrap();
    umoci(&["repack", "--image", &format!("{l}:base"), b]);
    std::fs::remove_file(rootfs.join("etc/gone")).unwrap();
    std::fs::remove_file(rootfs.join("d/old")).unwrap();
    std::fs::write(rootfs.join("d/new"), "new\n").unwrap();
    umoci(&["repack", "--image", &format!("{l}:v2"), b]);
    layout
}

#[test]
fn layers_and_whiteouts_of_an_umoci_image() {
    let dir = temp("umoci");
    let layout = umoci_layout(&dir);
    let store = ImageStore::new(&layout, dir.join("cache"));

    let base = store.rootfs("base").unwrap();
    assert_eq!(
        std::fs::read_to_string(base.join("etc/marker")).unwrap(),
        "from the image\n"
    );
    assert!(base.join("etc/gone").is_file() && base.join("d/old").is_file());
    let v2 = store.rootfs("v2").unwrap();
    assert_ne!(base, v2);
    assert!(v2.join("etc/marker").is_file() && v2.join("d/new").is_file());
    assert!(!v2.join("etc/gone").exists(), "a whiteout deletes");
    assert!(!v2.join("d/old").exists());
    // Busybox runs from the unpacked root (permissions kept).
    let out = Command::new(v2.join("bin/busybox"))
        .arg("true")
        .status()
        .unwrap();
    assert!(out.success());
    // Cached by content: the second call is the same directory, nothing left behind.
    assert_eq!(store.rootfs("v2").unwrap(), v2);
    let cached: Vec<_> = std::fs::read_dir(dir.join("cache"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(cached.len(), 2, "{cached:?}");
    assert!(cached.iter().all(|n| n.starts_with("sha256-")));

    match store.rootfs("latest") {
        Err(ImageError::NotFound { available, .. }) => {
            assert_eq!(available, vec!["base".to_string(), "v2".to_string()])
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn concurrent_unpacks_of_one_image_agree() {
    let dir = temp("concurrent");
    let layout = umoci_layout(&dir);
    let store = ImageStore::new(&layout, dir.join("cache"));
    let dirs: Vec<PathBuf> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| store.rootfs("v2"))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    assert!(dirs.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(std::fs::read_dir(dir.join("cache")).unwrap().count(), 1);
}

#[test]
fn a_changed_blob_is_refused_and_nothing_is_cached() {
    let dir = temp("corrupt");
    let layout = umoci_layout(&dir);
    let store = ImageStore::new(&layout, dir.join("cache"));
    let resolved = store.resolve("base").unwrap();
    let layer = &resolved.layers[0];
    let path = layout
        .join("blobs/sha256")
        .join(layer.digest.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    match store.rootfs("base") {
        Err(ImageError::Corrupt { digest, .. }) => assert_eq!(digest, layer.digest),
        other => panic!("{other:?}"),
    }
    let left: Vec<_> = std::fs::read_dir(dir.join("cache")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(matches!(
        ImageStore::new(dir.join("nothing"), dir.join("c")).rootfs("base"),
        Err(ImageError::NoLayout { .. })
    ));
}

// -- hand-made layouts: what umoci does not write ------------------------------------------

struct Layer(Vec<u8>);

impl Layer {
    fn new() -> Self {
        Layer(Vec::new())
    }

    fn raw(mut self, name: &[u8], kind: tar::EntryType, data: &[u8], link: Option<&str>) -> Self {
        let mut h = tar::Header::new_ustar();
        // Written byte for byte: `set_path` refuses `..`, which is the point of some tests.
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, data).unwrap();
        let bytes = b.into_inner().unwrap();
        // Drop the builder's end-of-archive blocks; `done` adds them once.
        self.0.extend_from_slice(&bytes[..bytes.len() - 1024]);
        self
    }

    fn file(self, name: &str, data: &str) -> Self {
        self.raw(
            name.as_bytes(),
            tar::EntryType::Regular,
            data.as_bytes(),
            None,
        )
    }

    fn dir(self, name: &str) -> Self {
        self.raw(name.as_bytes(), tar::EntryType::Directory, b"", None)
    }

    fn done(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
}

fn put_blob(layout: &Path, bytes: &[u8]) -> (String, u64) {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len() as u64)
}

fn hand_layout(dir: &Path, layers: Vec<Vec<u8>>) -> PathBuf {
    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let (cfg, cfg_size) = put_blob(
        &layout,
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let (d, size) = put_blob(&layout, l);
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": size})
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": cfg_size},
        "layers": layers,
    });
    let (m, m_size) = put_blob(&layout, &serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": m_size,
            "annotations": {"org.opencontainers.image.ref.name": "example.org/hand:1"},
        }],
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    layout
}

#[test]
fn an_opaque_whiteout_hides_lower_contents_only() {
    let dir = temp("opaque");
    let lower = Layer::new()
        .dir("d/")
        .file("d/old", "old")
        .dir("d/keep/")
        .file("d/keep/x", "x")
        .file("other", "o")
        .done();
    let upper = Layer::new()
        .dir("d/keep/")
        .file("d/keep/y", "y")
        .file("d/.wh..wh..opq", "")
        .done();
    let layout = hand_layout(&dir, vec![lower, upper]);
    let store = ImageStore::new(&layout, dir.join("cache"));
    let root = store.rootfs("example.org/hand:1").unwrap();
    assert!(!root.join("d/old").exists());
    assert!(!root.join("d/keep/x").exists());
    assert!(root.join("d/keep/y").is_file());
    assert!(root.join("other").is_file());
    // By digest too.
    let digest = store.resolve("example.org/hand:1").unwrap().digest;
    assert_eq!(
        store.rootfs(&format!("example.org/hand@{digest}")).unwrap(),
        root
    );
}

#[test]
fn hostile_entries_never_write_outside_the_root() {
    let dir = temp("hostile");
    let outside = dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let layer = Layer::new()
        .file("../../outside/escaped", "no")
        .raw(
            b"link",
            tar::EntryType::Symlink,
            b"",
            Some(outside.to_str().unwrap()),
        )
        .file("link/through-symlink", "no")
        .file(".wh.link", "")
        .file("fine", "yes")
        .done();
    let layout = hand_layout(&dir, vec![layer]);
    let store = ImageStore::new(&layout, dir.join("cache"));
    let result = store.rootfs("example.org/hand:1");
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "wrote outside: {result:?}"
    );
    // tar refuses the write through the symlink: the image is refused, not half unpacked.
    match result {
        Err(ImageError::Corrupt { what, .. }) => assert!(what.contains("unpacking"), "{what}"),
        Ok(root) => panic!("unpacked {root:?}"),
        Err(e) => panic!("{e}"),
    }
}
